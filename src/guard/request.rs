//! What an engine API request would do to containers, read from its method, path, query and
//! body. Pure: the proxy and the plugin both hand their requests here, so the two front ends
//! cannot disagree about what a request is.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

/// An operation on one existing container that the list can forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Remove,
    Stop,
    Kill,
    Pause,
    Rename,
    Update,
}

impl Operation {
    fn from_verb(verb: &str) -> Option<Operation> {
        Some(match verb {
            "stop" => Operation::Stop,
            "kill" => Operation::Kill,
            "pause" => Operation::Pause,
            "rename" => Operation::Rename,
            "update" => Operation::Update,
            _ => return None,
        })
    }

    pub fn word(self) -> &'static str {
        match self {
            Operation::Remove => "remove",
            Operation::Stop => "stop",
            Operation::Kill => "kill",
            Operation::Pause => "pause",
            Operation::Rename => "rename",
            Operation::Update => "update",
        }
    }
}

/// A container create as the request describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Create {
    /// `None`: the engine picks a random name.
    pub name: Option<String>,
    pub image: String,
    pub labels: HashMap<String, String>,
}

/// What a request does, as far as the list is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `POST /containers/create`; `None` when the body was not seen (the engine passes an
    /// authorization plugin no body of 1 MiB or more, nor one that is not JSON).
    Create(Option<Create>),
    /// An operation on the container the path names (by name, full id or id prefix).
    Change {
        operation: Operation,
        container: String,
        /// A rename's new name.
        to: Option<String>,
    },
    /// `POST /containers/prune`: removes every stopped container.
    Prune,
    /// Disabling, removing, upgrading or reconfiguring a managed plugin.
    Plugin { name: String },
    /// Anything else (reads, start, restart, exec, images, volumes, networks): passes.
    Other,
}

impl Request {
    /// The `operation` label of `guestlist_refused_total`.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::Create(_) => "create",
            Request::Change { operation, .. } => operation.word(),
            Request::Prune => "prune",
            Request::Plugin { .. } => "plugin",
            Request::Other => "other",
        }
    }

    /// Whether `body` is needed to tell what the request does.
    pub fn wants_body(method: &str, path: &str) -> bool {
        matches!(route(method, path), Route::Create { .. })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The endpoint a request is for, before its body is read.
enum Route {
    Create { libpod: bool },
    Change(Operation, String),
    Prune,
    Plugin(String),
    Other,
}

/// `uri` is the request target: the path with its query, as sent (`/v1.41/containers/x/stop?t=1`).
fn route(method: &str, uri: &str) -> Route {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if segments.first().is_some_and(|s| is_version(s)) {
        segments.remove(0);
    }
    // Podman's own API (`podman --remote`) has the same container endpoints under /libpod.
    let libpod = segments.first().is_some_and(|s| s == "libpod");
    if libpod {
        segments.remove(0);
    }
    let method = method.to_ascii_uppercase();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["containers", "create"]) => Route::Create { libpod },
        ("POST", ["containers", "prune"]) => Route::Prune,
        ("DELETE", ["containers", name]) => Route::Change(Operation::Remove, name.to_string()),
        ("POST", ["containers", name, verb]) => match Operation::from_verb(verb) {
            Some(op) => Route::Change(op, name.to_string()),
            None => Route::Other,
        },
        ("DELETE", ["plugins", name]) => Route::Plugin(name.to_string()),
        ("POST", ["plugins", name, "disable" | "upgrade" | "set"]) => {
            Route::Plugin(name.to_string())
        }
        _ => Route::Other,
    }
}

/// `v1.41`, `v4.3.0`: the API version prefix, which is optional.
fn is_version(segment: &str) -> bool {
    segment.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// The value of `key` in the query of `uri`.
fn query(uri: &str, key: &str) -> Option<String> {
    let (_, query) = uri.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// Read one request. `body` is `None` when it was not seen.
pub fn parse(method: &str, uri: &str, body: Option<&[u8]>) -> Request {
    match route(method, uri) {
        Route::Create { libpod } => Request::Create(body.map(|b| create(uri, b, libpod))),
        Route::Change(operation, container) => Request::Change {
            to: (operation == Operation::Rename)
                .then(|| query(uri, "name"))
                .flatten(),
            operation,
            container,
        },
        Route::Prune => Request::Prune,
        Route::Plugin(name) => Request::Plugin { name },
        Route::Other => Request::Other,
    }
}

/// A create's name, image and labels. A body that does not parse tells nothing: it becomes a
/// create of an unnamed container of no image, which only the scope's absence or an allow rule
/// lets through (the engine then refuses the body itself).
fn create(uri: &str, body: &[u8], libpod: bool) -> Create {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // Docker names the container in the query and describes it in `Image` and `Labels`;
    // Podman's own API puts everything in a body of lower-case keys.
    let (name, image, labels) = match libpod {
        false => (query(uri, "name"), &json["Image"], &json["Labels"]),
        true => (
            json["name"].as_str().map(String::from),
            &json["image"],
            &json["labels"],
        ),
    };
    let labels = string_map(labels);
    Create {
        name: name.map(|n| n.trim_start_matches('/').to_string()),
        image: image.as_str().unwrap_or_default().to_string(),
        labels,
    }
}

/// A JSON object of strings (labels), its other values left out.
pub fn string_map(object: &Value) -> HashMap<String, String> {
    object
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn change(operation: Operation, container: &str) -> Request {
        Request::Change {
            operation,
            container: container.into(),
            to: None,
        }
    }

    #[test]
    fn removals_are_read_with_or_without_version_and_query() {
        for uri in [
            "/containers/web",
            "/v1.41/containers/web",
            "/v1.45/containers/web?force=1&v=0",
            "//v1.24//containers/web/",
            "/v4.3.0/libpod/containers/web?force=true",
        ] {
            assert_eq!(
                parse("DELETE", uri, None),
                change(Operation::Remove, "web"),
                "{uri}"
            );
        }
        assert_eq!(
            parse("delete", "/containers/3f2a", None),
            change(Operation::Remove, "3f2a")
        );
    }

    #[test]
    fn each_guarded_operation_is_read_and_others_pass() {
        for (verb, op) in [
            ("stop", Operation::Stop),
            ("kill", Operation::Kill),
            ("pause", Operation::Pause),
            ("update", Operation::Update),
        ] {
            let uri = format!("/v1.41/containers/web/{verb}?t=3");
            assert_eq!(parse("POST", &uri, None), change(op, "web"));
        }
        for (method, uri) in [
            ("POST", "/containers/web/start"),
            ("POST", "/containers/web/restart"),
            ("POST", "/containers/web/unpause"),
            ("POST", "/containers/web/exec"),
            ("POST", "/containers/web/attach?stream=1"),
            ("GET", "/containers/web/json"),
            ("GET", "/containers/json?all=1"),
            ("GET", "/containers/web/stop"),
            ("DELETE", "/images/busybox"),
            ("POST", "/networks/create"),
            ("DELETE", "/volumes/data"),
            ("GET", "/_ping"),
            ("HEAD", "/_ping"),
            ("POST", "/containers/web/rename-not"),
        ] {
            assert_eq!(parse(method, uri, None), Request::Other, "{method} {uri}");
        }
    }

    #[test]
    fn a_rename_carries_its_new_name() {
        assert_eq!(
            parse(
                "POST",
                "/v1.41/containers/web-guestlist-new/rename?name=web",
                None
            ),
            Request::Change {
                operation: Operation::Rename,
                container: "web-guestlist-new".into(),
                to: Some("web".into()),
            }
        );
    }

    #[test]
    fn a_create_is_read_from_query_and_body() {
        let body = br#"{"Image":"busybox:1","Labels":{"team":"web","n":1},"Cmd":["sh"]}"#;
        assert_eq!(
            parse(
                "POST",
                "/v1.41/containers/create?name=web&platform=",
                Some(body)
            ),
            Request::Create(Some(Create {
                name: Some("web".into()),
                image: "busybox:1".into(),
                labels: HashMap::from([("team".into(), "web".into())]),
            }))
        );
        assert_eq!(
            parse("POST", "/containers/create", Some(b"{}")),
            Request::Create(Some(Create::default())),
            "no name: the engine picks one"
        );
        assert_eq!(
            parse("POST", "/containers/create?name=x", None),
            Request::Create(None),
            "a body not seen"
        );
        assert_eq!(
            parse("POST", "/containers/create?name=%2Fweb", Some(b"not json")),
            Request::Create(Some(Create {
                name: Some("web".into()),
                ..Create::default()
            }))
        );
        assert!(Request::wants_body(
            "POST",
            "/v1.41/containers/create?name=x"
        ));
        assert!(!Request::wants_body("POST", "/v1.41/containers/x/stop"));
    }

    #[test]
    fn a_podman_create_is_read_from_its_own_body() {
        let body = br#"{"name":"web","image":"busybox","labels":{"team":"web"}}"#;
        assert_eq!(
            parse("POST", "/v4.3.0/libpod/containers/create", Some(body)),
            Request::Create(Some(Create {
                name: Some("web".into()),
                image: "busybox".into(),
                labels: HashMap::from([("team".into(), "web".into())]),
            }))
        );
    }

    #[test]
    fn prunes_and_plugin_changes_are_read() {
        assert_eq!(
            parse("POST", "/v1.41/containers/prune?filters=%7B%7D", None),
            Request::Prune
        );
        assert_eq!(
            parse("POST", "/v1.41/plugins/guard:latest/disable?force=1", None),
            Request::Plugin {
                name: "guard:latest".into()
            }
        );
        assert_eq!(
            parse("DELETE", "/plugins/guard", None),
            Request::Plugin {
                name: "guard".into()
            }
        );
        assert_eq!(parse("POST", "/plugins/guard/enable", None), Request::Other);
    }

    #[test]
    fn a_version_like_container_name_is_not_taken_for_a_version() {
        assert_eq!(
            parse("DELETE", "/containers/v1", None),
            change(Operation::Remove, "v1")
        );
        assert_eq!(
            parse("DELETE", "/v1.41/containers/v1", None),
            change(Operation::Remove, "v1")
        );
    }
}
