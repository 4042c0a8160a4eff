//! Which engine endpoint a request reaches, matched as the engine's router matches it. Pure.
//!
//! Every endpoint that changes anything is in `ROUTES`, with what it does to containers. A
//! request for a method and path that no route takes, or that more than one takes, is
//! `Unknown`: the guard refuses it when it would change something rather than guess (the engine
//! answers 404 to most of them anyway). The README's "Endpoints" section is this table in words.

use std::sync::OnceLock;

use regex::Regex;

use super::target::Dialect;

/// An operation on one existing container that `enforce` would undo on a protected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Remove,
    Stop,
    Kill,
    Pause,
    Rename,
    Update,
    /// `network connect`: the container gains a network.
    Connect,
    /// `network disconnect`: the container loses a network.
    Disconnect,
    /// A checkpoint, which stops the container unless told otherwise.
    Checkpoint,
}

impl Operation {
    pub fn word(self) -> &'static str {
        match self {
            Operation::Remove => "remove",
            Operation::Stop => "stop",
            Operation::Kill => "kill",
            Operation::Pause => "pause",
            Operation::Rename => "rename",
            Operation::Update => "update",
            Operation::Connect => "connect a network to",
            Operation::Disconnect => "disconnect a network from",
            Operation::Checkpoint => "checkpoint",
        }
    }
}

/// Something that makes an existing container run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Start,
    Restart,
    Unpause,
    /// Podman's restore of a checkpointed container.
    Restore,
}

impl Run {
    pub fn word(self) -> &'static str {
        match self {
            Run::Start => "start",
            Run::Restart => "restart",
            Run::Unpause => "unpause",
            Run::Restore => "restore",
        }
    }
}

/// What an endpoint does, as far as the list is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Creates a container (the body says what).
    Create,
    /// Removes stopped containers (container prune, Podman's system and pod prunes).
    Prune,
    /// Changes the container the path names.
    Change(Operation),
    /// Makes the container the path names run.
    Run(Run),
    /// Connects (`true`) or disconnects the container the body names (`Container`) to the
    /// network the path names.
    Network(bool),
    /// Removes the image, volume or network the path names, doing the operation to every
    /// container that uses it (Podman removes them with `force`; dockerd takes a network from
    /// the stopped containers attached to it, which then cannot start).
    RemoveWithUsers(Resource, Operation),
    /// Podman's batch image removal (`DELETE /libpod/images/remove`).
    RemoveImages,
    /// A Podman pod operation: the same on each of its containers.
    Pod(PodOperation),
    /// Podman's pod create: an infra container, unless the body says none.
    PodCreate,
    /// Podman's kube play and kube down (create and remove what a YAML document names), and
    /// quadlets (systemd units that run containers).
    Kube,
    /// Podman's storage check, which removes containers with `repair_lossy`.
    SystemCheck,
    /// Swarm init and join: swarm's containers are its own once a swarm is active.
    SwarmJoin,
    /// Disables, removes, upgrades or reconfigures the plugin the path names.
    Plugin,
    /// Changes nothing the list protects: images, volumes, networks, exec, builds, swarm
    /// services, secrets, ...
    Harmless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Image,
    Volume,
    Network,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodOperation {
    Change(Operation),
    Run(Run),
}

/// Which engines serve a route, and under which prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// dockerd, and Podman's compatible API.
    Compat,
    /// dockerd only.
    Docker,
    /// Podman's compatible API only (the same path on dockerd does something else).
    PodmanCompat,
    /// Podman's own API, under `/libpod`.
    Libpod,
}

/// A route: method, path template and endpoint. In the template `{}` is the variable the guard
/// reads (a container, image, volume, network, pod or plugin), `{_}` one it does not; both
/// match any run of characters on dockerd (`{name:.*}`) and within one segment on Podman.
/// `{*}` is read too, and crosses segments on both (image names).
struct Route {
    method: &'static str,
    template: &'static str,
    served: Served,
    endpoint: Endpoint,
}

const fn route(
    method: &'static str,
    template: &'static str,
    served: Served,
    endpoint: Endpoint,
) -> Route {
    Route {
        method,
        template,
        served,
        endpoint,
    }
}

use Endpoint as E;
use Served::{Compat, Docker, Libpod, PodmanCompat};

const ROUTES: &[Route] = &[
    // Containers, on both APIs.
    route("POST", "/containers/create", Compat, E::Create),
    route("POST", "/containers/create", Libpod, E::Create),
    route("POST", "/containers/prune", Compat, E::Prune),
    route("POST", "/containers/prune", Libpod, E::Prune),
    route(
        "DELETE",
        "/containers/{}",
        Compat,
        E::Change(Operation::Remove),
    ),
    route(
        "DELETE",
        "/containers/{}",
        Libpod,
        E::Change(Operation::Remove),
    ),
    route(
        "POST",
        "/containers/{}/stop",
        Compat,
        E::Change(Operation::Stop),
    ),
    route(
        "POST",
        "/containers/{}/stop",
        Libpod,
        E::Change(Operation::Stop),
    ),
    route(
        "POST",
        "/containers/{}/kill",
        Compat,
        E::Change(Operation::Kill),
    ),
    route(
        "POST",
        "/containers/{}/kill",
        Libpod,
        E::Change(Operation::Kill),
    ),
    route(
        "POST",
        "/containers/{}/pause",
        Compat,
        E::Change(Operation::Pause),
    ),
    route(
        "POST",
        "/containers/{}/pause",
        Libpod,
        E::Change(Operation::Pause),
    ),
    route(
        "POST",
        "/containers/{}/rename",
        Compat,
        E::Change(Operation::Rename),
    ),
    route(
        "POST",
        "/containers/{}/rename",
        Libpod,
        E::Change(Operation::Rename),
    ),
    route(
        "POST",
        "/containers/{}/update",
        Compat,
        E::Change(Operation::Update),
    ),
    route(
        "POST",
        "/containers/{}/update",
        Libpod,
        E::Change(Operation::Update),
    ),
    route(
        "POST",
        "/containers/{}/checkpoints",
        Docker,
        E::Change(Operation::Checkpoint),
    ),
    route(
        "POST",
        "/containers/{}/checkpoint",
        Libpod,
        E::Change(Operation::Checkpoint),
    ),
    route("POST", "/containers/{}/start", Compat, E::Run(Run::Start)),
    route("POST", "/containers/{}/start", Libpod, E::Run(Run::Start)),
    route(
        "POST",
        "/containers/{}/restart",
        Compat,
        E::Run(Run::Restart),
    ),
    route(
        "POST",
        "/containers/{}/restart",
        Libpod,
        E::Run(Run::Restart),
    ),
    route(
        "POST",
        "/containers/{}/unpause",
        Compat,
        E::Run(Run::Unpause),
    ),
    route(
        "POST",
        "/containers/{}/unpause",
        Libpod,
        E::Run(Run::Unpause),
    ),
    route(
        "POST",
        "/containers/{}/restore",
        Libpod,
        E::Run(Run::Restore),
    ),
    // Attaching, waiting, resizing a terminal, exec, files, mounts: the container stays what
    // it is (an exec can still end it from inside: the README says so).
    route("POST", "/containers/{}/attach", Compat, E::Harmless),
    route("POST", "/containers/{}/attach", Libpod, E::Harmless),
    route("POST", "/containers/{}/wait", Compat, E::Harmless),
    route("POST", "/containers/{}/wait", Libpod, E::Harmless),
    route("POST", "/containers/{}/resize", Compat, E::Harmless),
    route("POST", "/containers/{}/resize", Libpod, E::Harmless),
    route("POST", "/containers/{}/exec", Compat, E::Harmless),
    route("POST", "/containers/{}/exec", Libpod, E::Harmless),
    route("PUT", "/containers/{}/archive", Compat, E::Harmless),
    route("PUT", "/containers/{}/archive", Libpod, E::Harmless),
    route("POST", "/containers/{}/copy", Docker, E::Harmless),
    route("POST", "/containers/{}/init", Libpod, E::Harmless),
    route("POST", "/containers/{}/mount", Libpod, E::Harmless),
    route("POST", "/containers/{}/unmount", Libpod, E::Harmless),
    route(
        "DELETE",
        "/containers/{_}/checkpoints/{_}",
        Docker,
        E::Harmless,
    ),
    route("POST", "/exec/{_}/start", Compat, E::Harmless),
    route("POST", "/exec/{_}/start", Libpod, E::Harmless),
    route("POST", "/exec/{_}/resize", Compat, E::Harmless),
    route("POST", "/exec/{_}/resize", Libpod, E::Harmless),
    route("POST", "/exec/{_}/remove", Libpod, E::Harmless),
    route("POST", "/commit", Compat, E::Harmless),
    route("POST", "/commit", Libpod, E::Harmless),
    // Networks.
    route("POST", "/networks/create", Compat, E::Harmless),
    route("POST", "/networks/create", Libpod, E::Harmless),
    route("POST", "/networks/prune", Compat, E::Harmless),
    route("POST", "/networks/prune", Libpod, E::Harmless),
    route("POST", "/networks/{}/connect", Compat, E::Network(true)),
    route("POST", "/networks/{}/connect", Libpod, E::Network(true)),
    route("POST", "/networks/{}/disconnect", Compat, E::Network(false)),
    route("POST", "/networks/{}/disconnect", Libpod, E::Network(false)),
    route("POST", "/networks/{_}/update", Libpod, E::Harmless),
    route(
        "DELETE",
        "/networks/{}",
        Docker,
        E::RemoveWithUsers(Resource::Network, Operation::Disconnect),
    ),
    route(
        "DELETE",
        "/networks/{}",
        PodmanCompat,
        E::RemoveWithUsers(Resource::Network, Operation::Remove),
    ),
    route(
        "DELETE",
        "/networks/{}",
        Libpod,
        E::RemoveWithUsers(Resource::Network, Operation::Remove),
    ),
    // Images: dockerd never removes a container for an image; Podman does with `force`.
    route("POST", "/images/create", Compat, E::Harmless),
    route("POST", "/images/load", Compat, E::Harmless),
    route("POST", "/images/prune", Compat, E::Harmless),
    route("POST", "/images/{*}/push", Compat, E::Harmless),
    route("POST", "/images/{*}/tag", Compat, E::Harmless),
    route("DELETE", "/images/{*}", Docker, E::Harmless),
    route(
        "DELETE",
        "/images/{*}",
        PodmanCompat,
        E::RemoveWithUsers(Resource::Image, Operation::Remove),
    ),
    route("DELETE", "/images/remove", Libpod, E::RemoveImages),
    route(
        "DELETE",
        "/images/{*}",
        Libpod,
        E::RemoveWithUsers(Resource::Image, Operation::Remove),
    ),
    route("POST", "/images/pull", Libpod, E::Harmless),
    route("POST", "/images/import", Libpod, E::Harmless),
    route("POST", "/images/load", Libpod, E::Harmless),
    route("POST", "/images/prune", Libpod, E::Harmless),
    route("POST", "/images/{*}/push", Libpod, E::Harmless),
    route("POST", "/images/{*}/tag", Libpod, E::Harmless),
    route("POST", "/images/{*}/untag", Libpod, E::Harmless),
    route("POST", "/images/scp/{*}", Libpod, E::Harmless),
    route("POST", "/build", Compat, E::Harmless),
    route("POST", "/build", Libpod, E::Harmless),
    route("POST", "/build/prune", Docker, E::Harmless),
    route("POST", "/build/cancel", Docker, E::Harmless),
    route("POST", "/session", Docker, E::Harmless),
    route("POST", "/grpc", Docker, E::Harmless),
    route("POST", "/auth", Compat, E::Harmless),
    // Volumes: only Podman's own API removes a volume's users, with `force`.
    route("POST", "/volumes/create", Compat, E::Harmless),
    route("POST", "/volumes/create", Libpod, E::Harmless),
    route("POST", "/volumes/prune", Compat, E::Harmless),
    route("POST", "/volumes/prune", Libpod, E::Harmless),
    route("PUT", "/volumes/{_}", Docker, E::Harmless),
    route("DELETE", "/volumes/{}", Compat, E::Harmless),
    route(
        "DELETE",
        "/volumes/{}",
        Libpod,
        E::RemoveWithUsers(Resource::Volume, Operation::Remove),
    ),
    // Swarm: its services are its own; joining one is what grants that.
    route("POST", "/swarm/init", Compat, E::SwarmJoin),
    route("POST", "/swarm/join", Compat, E::SwarmJoin),
    route("POST", "/swarm/leave", Docker, E::Harmless),
    route("POST", "/swarm/update", Docker, E::Harmless),
    route("POST", "/swarm/unlock", Docker, E::Harmless),
    route("POST", "/services/create", Docker, E::Harmless),
    route("POST", "/services/{_}/update", Docker, E::Harmless),
    route("DELETE", "/services/{_}", Docker, E::Harmless),
    route("POST", "/nodes/{_}/update", Docker, E::Harmless),
    route("DELETE", "/nodes/{_}", Docker, E::Harmless),
    route("POST", "/secrets/create", Compat, E::Harmless),
    route("POST", "/secrets/{_}/update", Compat, E::Harmless),
    route("DELETE", "/secrets/{_}", Compat, E::Harmless),
    route("POST", "/secrets/create", Libpod, E::Harmless),
    route("DELETE", "/secrets/{_}", Libpod, E::Harmless),
    route("POST", "/configs/create", Docker, E::Harmless),
    route("POST", "/configs/{_}/update", Docker, E::Harmless),
    route("DELETE", "/configs/{_}", Docker, E::Harmless),
    // Plugins: the guard's own is protected (`Plugin`); installing others changes no container.
    route("POST", "/plugins/pull", Docker, E::Harmless),
    route("POST", "/plugins/create", Docker, E::Harmless),
    route("POST", "/plugins/{}/enable", Docker, E::Harmless),
    route("POST", "/plugins/{}/push", Docker, E::Harmless),
    route("POST", "/plugins/{}/disable", Docker, E::Plugin),
    route("POST", "/plugins/{}/upgrade", Docker, E::Plugin),
    route("POST", "/plugins/{}/set", Docker, E::Plugin),
    route("DELETE", "/plugins/{}", Docker, E::Plugin),
    // Podman's pods, kube play and system prune.
    route("POST", "/pods/create", Libpod, E::PodCreate),
    route("POST", "/pods/prune", Libpod, E::Prune),
    route(
        "DELETE",
        "/pods/{}",
        Libpod,
        E::Pod(PodOperation::Change(Operation::Remove)),
    ),
    route(
        "POST",
        "/pods/{}/stop",
        Libpod,
        E::Pod(PodOperation::Change(Operation::Stop)),
    ),
    route(
        "POST",
        "/pods/{}/kill",
        Libpod,
        E::Pod(PodOperation::Change(Operation::Kill)),
    ),
    route(
        "POST",
        "/pods/{}/pause",
        Libpod,
        E::Pod(PodOperation::Change(Operation::Pause)),
    ),
    route(
        "POST",
        "/pods/{}/start",
        Libpod,
        E::Pod(PodOperation::Run(Run::Start)),
    ),
    route(
        "POST",
        "/pods/{}/restart",
        Libpod,
        E::Pod(PodOperation::Run(Run::Restart)),
    ),
    route(
        "POST",
        "/pods/{}/unpause",
        Libpod,
        E::Pod(PodOperation::Run(Run::Unpause)),
    ),
    route("POST", "/play/kube", Libpod, E::Kube),
    route("DELETE", "/play/kube", Libpod, E::Kube),
    route("POST", "/kube/play", Libpod, E::Kube),
    route("DELETE", "/kube/play", Libpod, E::Kube),
    route("POST", "/quadlets", Libpod, E::Kube),
    route("DELETE", "/quadlets", Libpod, E::Kube),
    route("DELETE", "/quadlets/{_}", Libpod, E::Kube),
    route("POST", "/kube/apply", Libpod, E::Harmless),
    route("POST", "/system/prune", Libpod, E::Prune),
    route("POST", "/system/check", Libpod, E::SystemCheck),
    route("POST", "/volumes/{_}/import", Libpod, E::Harmless),
    route("POST", "/local/build", Libpod, E::Harmless),
    route("POST", "/local/images/load", Libpod, E::Harmless),
    route("POST", "/artifacts/{*}", Libpod, E::Harmless),
    route("DELETE", "/artifacts/{*}", Libpod, E::Harmless),
    route("POST", "/manifests", Libpod, E::Harmless),
    route("POST", "/manifests/{*}", Libpod, E::Harmless),
    route("PUT", "/manifests/{*}", Libpod, E::Harmless),
    route("DELETE", "/manifests/{*}", Libpod, E::Harmless),
];

/// A request's endpoint, as the engine's router finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub endpoint: Endpoint,
    /// The route as the README and messages name it: `POST /containers/{}/stop`.
    pub route: String,
    /// The variable the endpoint is about, decoded (a container reference, an image...).
    pub subject: Option<String>,
    /// Where that variable sits in the routed path, to forward the resolved id in its place.
    pub subject_at: Option<std::ops::Range<usize>>,
    /// `1.41` in `/v1.41/...`.
    pub version: Option<String>,
    pub libpod: bool,
}

/// Why no single endpoint was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    None,
    /// More than one route takes it: the guard cannot tell which the engine picks.
    Several(Vec<String>),
    /// A path variable that does not decode (Podman answers 400).
    BadVariable,
}

struct Compiled {
    route: &'static Route,
    pattern: Regex,
}

fn compiled(dialect: Dialect) -> &'static [Compiled] {
    static DOCKER: OnceLock<Vec<Compiled>> = OnceLock::new();
    static PODMAN: OnceLock<Vec<Compiled>> = OnceLock::new();
    let cell = match dialect {
        Dialect::Docker => &DOCKER,
        Dialect::Podman => &PODMAN,
    };
    cell.get_or_init(|| {
        ROUTES
            .iter()
            .filter(|r| match dialect {
                Dialect::Docker => matches!(r.served, Compat | Docker),
                Dialect::Podman => matches!(r.served, Compat | PodmanCompat | Libpod),
            })
            .map(|r| Compiled {
                route: r,
                pattern: pattern(r, dialect),
            })
            .collect()
    })
}

fn pattern(route: &Route, dialect: Dialect) -> Regex {
    let within = match dialect {
        Dialect::Docker => ".*",
        Dialect::Podman => "[^/]+",
    };
    let mut text = String::from("^");
    if route.served == Libpod {
        text.push_str("/libpod");
    }
    let mut rest = route.template;
    while let Some(open) = rest.find('{') {
        text.push_str(&regex::escape(&rest[..open]));
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        text.push_str(match &rest[open..=close] {
            "{}" | "{*}" => "(?P<subject>",
            _ => "(?:",
        });
        text.push_str(match &rest[open..=close] {
            "{*}" => ".*",
            _ => within,
        });
        text.push(')');
        rest = &rest[close + 1..];
    }
    text.push_str(&regex::escape(rest));
    text.push('$');
    // The templates are constants: a bad one fails every test.
    #[allow(clippy::expect_used)]
    Regex::new(&text).expect("a route template compiles")
}

/// The version prefix, as each router takes it: `/v{version:[0-9.]+}` on dockerd,
/// `/v{version:[0-9][0-9A-Za-z.-]*}` on Podman.
fn version_prefix(path: &str, dialect: Dialect) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/')?;
    let version = &rest[..end];
    let ok = match dialect {
        Dialect::Docker => {
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        }
        Dialect::Podman => {
            version.as_bytes().first().is_some_and(u8::is_ascii_digit)
                && version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
    };
    ok.then(|| (version, &rest[end..]))
}

/// Find the endpoint `method` and `path` (as `target::Target` routes it) reach.
pub fn find(method: &str, path: &str, dialect: Dialect) -> Result<Routed, Unknown> {
    let (version, rest) = match version_prefix(path, dialect) {
        Some((v, rest)) => (Some(v.to_string()), rest),
        None => (None, path),
    };
    let offset = path.len() - rest.len();
    let mut found: Vec<(&Compiled, regex::Captures)> = compiled(dialect)
        .iter()
        .filter(|c| c.route.method == method)
        .filter_map(|c| c.pattern.captures(rest).map(|caps| (c, caps)))
        .collect();
    // A route without variables is registered before the variable ones that also take its
    // path, on both engines (Podman's `/libpod/images/remove` before `/libpod/images/{name:.*}`):
    // it wins, as the engine's first match does.
    let literal: Vec<usize> = (0..found.len())
        .filter(|&i| !found[i].0.route.template.contains('{'))
        .collect();
    let found = match literal.as_slice() {
        [one] if found.len() > 1 => vec![found.swap_remove(*one)],
        _ => found,
    };
    let (compiled, captures) = match found.len() {
        0 => return Err(Unknown::None),
        1 => found.into_iter().next().ok_or(Unknown::None)?,
        _ => {
            let names = found.iter().map(|(c, _)| describe(c.route)).collect();
            return Err(Unknown::Several(names));
        }
    };
    let subject = captures.name("subject");
    let decoded = match (subject, dialect) {
        (None, _) => None,
        (Some(s), Dialect::Docker) => Some(s.as_str().to_string()),
        (Some(s), Dialect::Podman) => Some(
            percent_encoding::percent_decode_str(s.as_str())
                .decode_utf8()
                .map_err(|_| Unknown::BadVariable)?
                .into_owned(),
        ),
    };
    if subject.is_some_and(|s| dialect == Dialect::Podman && has_bad_escape(s.as_str())) {
        return Err(Unknown::BadVariable);
    }
    Ok(Routed {
        endpoint: compiled.route.endpoint,
        route: describe(compiled.route),
        subject: decoded,
        subject_at: subject.map(|s| offset + s.start()..offset + s.end()),
        version,
        libpod: compiled.route.served == Libpod,
    })
}

fn has_bad_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

fn describe(route: &Route) -> String {
    let prefix = match route.served {
        Libpod => "/libpod",
        _ => "",
    };
    format!(
        "{} {prefix}{}",
        route.method,
        route.template.replace("{_}", "{}").replace("{*}", "{}")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn docker(method: &str, path: &str) -> Result<Routed, Unknown> {
        find(method, path, Dialect::Docker)
    }

    fn podman(method: &str, path: &str) -> Result<Routed, Unknown> {
        find(method, path, Dialect::Podman)
    }

    #[test]
    fn every_template_compiles_for_both_engines() {
        assert!(!compiled(Dialect::Docker).is_empty());
        assert!(!compiled(Dialect::Podman).is_empty());
    }

    #[test]
    fn container_references_with_a_slash_route_on_docker_as_link_aliases() {
        let r = docker("POST", "/v1.41/containers/web/db/stop").unwrap();
        assert_eq!(r.endpoint, E::Change(Operation::Stop));
        assert_eq!(r.subject.as_deref(), Some("web/db"));
        assert_eq!(r.version.as_deref(), Some("1.41"));
        assert_eq!(
            &"/v1.41/containers/web/db/stop"[r.subject_at.unwrap()],
            "web/db"
        );
        let r = docker("DELETE", "/containers/web/db").unwrap();
        assert_eq!(r.subject.as_deref(), Some("web/db"));
        assert_eq!(
            podman("POST", "/containers/web/db/stop"),
            Err(Unknown::None)
        );
    }

    #[test]
    fn podman_decodes_the_variable_after_matching() {
        let r = podman("POST", "/v4.3.1/libpod/containers/we%62/stop").unwrap();
        assert_eq!(r.subject.as_deref(), Some("web"));
        assert!(r.libpod);
        let r = podman(
            "DELETE",
            "/v4.3.1/libpod/images/docker.io%2Flibrary%2Fbusybox",
        )
        .unwrap();
        assert_eq!(
            r.endpoint,
            E::RemoveWithUsers(Resource::Image, Operation::Remove)
        );
        assert_eq!(r.subject.as_deref(), Some("docker.io/library/busybox"));
        assert_eq!(
            podman("POST", "/containers/we%zz/stop"),
            Err(Unknown::BadVariable)
        );
    }

    #[test]
    fn methods_match_exactly_and_unknown_routes_are_unknown() {
        assert_eq!(docker("post", "/containers/web/stop"), Err(Unknown::None));
        assert_eq!(
            docker("POST", "/containers/web/frobnicate"),
            Err(Unknown::None)
        );
        assert_eq!(docker("POST", "/containers/create/"), Err(Unknown::None));
        assert_eq!(
            docker("POST", "/v1.41/v1.41/containers/create"),
            Err(Unknown::None)
        );
        assert_eq!(docker("GET", "/containers/web/stop"), Err(Unknown::None));
    }

    #[test]
    fn the_same_path_is_another_endpoint_on_each_engine() {
        assert_eq!(
            docker("DELETE", "/images/busybox").unwrap().endpoint,
            E::Harmless
        );
        assert_eq!(
            podman("DELETE", "/images/busybox").unwrap().endpoint,
            E::RemoveWithUsers(Resource::Image, Operation::Remove)
        );
        assert_eq!(
            docker("DELETE", "/libpod/images/busybox"),
            Err(Unknown::None)
        );
        assert_eq!(
            podman("DELETE", "/v4.3.1/libpod/images/remove")
                .unwrap()
                .endpoint,
            E::RemoveImages
        );
    }

    #[test]
    fn a_path_two_routes_take_is_ambiguous() {
        // `{name:.*}` makes a checkpoint's removal also a container's removal on dockerd.
        assert!(matches!(
            docker("DELETE", "/containers/web/checkpoints/c1"),
            Err(Unknown::Several(_))
        ));
    }

    #[test]
    fn versions_are_taken_as_each_router_takes_them() {
        assert_eq!(
            docker("POST", "/v1..41/containers/create")
                .unwrap()
                .version
                .as_deref(),
            Some("1..41")
        );
        assert_eq!(
            docker("POST", "/v1.41a/containers/create"),
            Err(Unknown::None)
        );
        assert_eq!(
            podman("POST", "/v4.3.1-dev/libpod/containers/create")
                .unwrap()
                .version
                .as_deref(),
            Some("4.3.1-dev")
        );
        let r = docker("DELETE", "/containers/v1").unwrap();
        assert_eq!(r.subject.as_deref(), Some("v1"));
    }
}
