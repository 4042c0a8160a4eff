//! What an engine API request would do, read once the way the engine reads it: the target by
//! `target`, the endpoint by `route`, the query and the body by the engine's rules (or refused
//! where they are ambiguous). Pure: the proxy and the plugin both hand their requests here, so
//! the two front ends cannot disagree about what a request is, and the policy judges only
//! this reading. The proxy forwards what was read (`Forward`), so the engine cannot act on
//! anything else.

use std::collections::HashMap;

use serde_json::Value;

use super::body::{self, Json, Object};
use super::route::{self, Endpoint, Operation, PodOperation, Resource, Run, Unknown};
use super::target::{self, Dialect, Target};
use query::Query;

/// A request as a front end received it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The request target as sent (the plugin is handed it raw).
    pub target: &'a str,
    /// Every `Content-Type` value sent (a plugin is told only the last).
    pub content_types: &'a [&'a str],
    /// Whether the request carries a body (a length over 0, or chunked).
    pub has_body: bool,
    /// The body, when it was read (`None`: not seen, or not needed).
    pub body: Option<&'a [u8]>,
}

/// A container create as the request describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Create {
    /// `None`: the engine picks a random name.
    pub name: Option<String>,
    pub image: String,
    /// The labels the body sets (the image's own come on top, at the engine).
    pub labels: HashMap<String, String>,
    /// The container whose process namespace it would join (`--pid container:X`), from which
    /// it could kill X's processes.
    pub shares_processes_of: Option<String>,
    /// Made through Podman's own API, whose options the comparison with a record cannot all
    /// see (Podman's compatible inspect leaves them out).
    pub through_libpod: bool,
}

/// What a request does, as far as the list is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Changes nothing the list protects.
    Harmless,
    /// A container create; `None` when the body was not seen (dockerd passes an authorization
    /// plugin no body of 1 MiB or more, nor one that is chunked on 20.10, nor one that is not
    /// JSON).
    Create(Option<Create>),
    /// An operation on the container `container` names (a reference: name, id or id prefix).
    Change {
        operation: Operation,
        container: String,
        /// A rename's new name, or the network a container is connected to or disconnected
        /// from.
        to: Option<String>,
    },
    /// Makes the container `container` names run.
    Run { run: Run, container: String },
    /// Removes every stopped container (or Podman's stopped pods, which hold containers).
    Prune,
    /// Removes an image, volume or network, doing `effect` to the containers that use it.
    RemoveWithUsers {
        resource: Resource,
        name: String,
        effect: Operation,
    },
    /// Creates the volume or network `name`.
    CreateResource { resource: Resource, name: String },
    /// Removes every unused volume or network.
    PruneResources { resource: Resource },
    /// Podman's batch image removal: these images, or all of them.
    RemoveImages { images: Vec<String>, all: bool },
    /// An operation on each container of a Podman pod.
    Pod {
        operation: PodOperation,
        pod: String,
    },
    /// A Podman pod create, with the labels it gives its infra container (`None`: no infra).
    PodCreate { infra: Option<Create> },
    /// Disabling, removing, upgrading or reconfiguring a managed plugin.
    Plugin { name: String },
    /// Something the guard refuses whatever the list says, and why.
    Refused(String),
}

/// How the proxy sends on what was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// The request target to send: origin form, the path as read.
    pub target: String,
    dialect: Dialect,
    /// The reference in `target` (a container, volume or network), as it is sent when the
    /// guard resolved nothing in its place.
    subject: Option<String>,
    /// A network connect's body, to be sent with the resolved id in `Container`.
    network_body: Option<Object>,
}

/// A request, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub request: Request,
    /// `None` for a request refused before it was routed.
    pub forward: Option<Forward>,
    /// The route it reached, as the README names it (`POST /containers/{}/stop`).
    pub route: Option<String>,
}

impl Request {
    /// The `operation` label of `guestlist_refused_total`.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::Harmless => "other",
            Request::Create(_) | Request::PodCreate { .. } => "create",
            Request::Change { operation, .. } => match operation {
                Operation::Connect | Operation::Disconnect => "network",
                op => op.word(),
            },
            Request::Run { run, .. } => run.word(),
            Request::Prune | Request::PruneResources { .. } => "prune",
            Request::CreateResource { .. } => "create",
            Request::RemoveWithUsers { .. } | Request::RemoveImages { .. } => "remove",
            Request::Pod { .. } => "pod",
            Request::Plugin { .. } => "plugin",
            Request::Refused(_) => "unreadable",
        }
    }
}

/// Whether the body of `method target` is needed to tell what it does; the proxy reads (and
/// bounds) only those. A target that does not route needs none: it is refused unread.
pub fn wants_body(method: &str, raw_target: &str, dialect: Dialect) -> bool {
    let Ok(target) = Target::parse(raw_target, dialect) else {
        return false;
    };
    matches!(
        route::find(method, &target.path, dialect).map(|r| r.endpoint),
        Ok(Endpoint::Create
            | Endpoint::Network(_)
            | Endpoint::PodCreate
            | Endpoint::CreateResource(_))
    )
}

/// Read one request that is not a read (`GET` and `HEAD` change nothing and are not read).
pub fn read(incoming: Incoming<'_>, dialect: Dialect) -> Read {
    let refused = |why: String| Read {
        request: Request::Refused(why),
        forward: None,
        route: None,
    };
    let target = match Target::parse(incoming.target, dialect) {
        Ok(target) => target,
        Err(e) => return refused(format!("{e}")),
    };
    let routed = match route::find(incoming.method, &target.path, dialect) {
        Ok(routed) => routed,
        Err(Unknown::None) => {
            return refused(format!(
                "{} {} is not an engine endpoint the guard knows; it refuses what it does not \
                 know rather than guess what it changes (the README lists the endpoints it \
                 passes)",
                incoming.method, target.path
            ))
        }
        Err(Unknown::Several(routes)) => {
            return refused(format!(
                "{} {} could be any of {}; the guard cannot tell which the engine takes",
                incoming.method,
                target.path,
                routes.join(", ")
            ))
        }
        Err(Unknown::BadVariable) => return refused(format!("{} does not decode", target.path)),
    };
    let forward = Forward {
        target: match target.query.is_empty() {
            true => forwarded_path(&target.path, dialect),
            false => format!("{}?{}", forwarded_path(&target.path, dialect), target.query),
        },
        dialect,
        subject: None,
        network_body: None,
    };
    let mut read = Read {
        request: Request::Harmless,
        forward: Some(forward),
        route: Some(routed.route.clone()),
    };
    if routed.endpoint == Endpoint::Harmless {
        return read;
    }
    let judged = Judged {
        incoming,
        routed: &routed,
        query: &target.query,
    };
    read.request = match judged.request() {
        Ok(request) => request,
        Err(why) => Request::Refused(why),
    };
    if let Some(forward) = read.forward.as_mut() {
        // The proxy sends the path on with what the guard resolved in place of the reference:
        // a container the path names (not a link alias's parent, judged for a link's removal),
        // a volume or network that takes its users along.
        let resolved_in_path = match (&read.request, routed.endpoint) {
            (Request::Change { container, .. } | Request::Run { container, .. }, _) => {
                routed.subject.as_ref() == Some(container)
            }
            (
                Request::RemoveWithUsers { .. },
                Endpoint::RemoveWithUsers(Resource::Volume | Resource::Network, _),
            ) => true,
            _ => false,
        };
        if let (true, Some(at)) = (resolved_in_path, routed.subject_at.clone()) {
            forward.subject = Some(match dialect {
                Dialect::Docker => target::escape_segment(&target.path[at.clone()]),
                Dialect::Podman => target.path[at.clone()].to_string(),
            });
            forward.target = rebuilt(&target, dialect, Some(at));
        }
        if let (Endpoint::Network(_), Some(Ok(Json::Object(o)))) =
            (routed.endpoint, incoming.body.map(body::parse))
        {
            forward.network_body = Some(o);
        }
    }
    read
}

/// The path to forward: escaped afresh from what dockerd routes on, as sent for Podman.
fn forwarded_path(path: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Docker => target::escape_path(path),
        Dialect::Podman => path.to_string(),
    }
}

/// The target with a marker where the container reference is, for `Forward::with_id`.
fn rebuilt(target: &Target, dialect: Dialect, at: Option<std::ops::Range<usize>>) -> String {
    let path = &target.path;
    let path = match at {
        Some(at) => format!(
            "{}{SUBJECT}{}",
            forwarded_path(&path[..at.start], dialect),
            forwarded_path(&path[at.end..], dialect)
        ),
        None => forwarded_path(path, dialect),
    };
    match target.query.is_empty() {
        true => path,
        false => format!("{path}?{}", target.query),
    }
}

/// Stands for the container reference in a forwarded target until it is resolved. It cannot
/// occur in an escaped path.
const SUBJECT: &str = "{container}";

impl Forward {
    /// The target to send, with `id` (the container the guard resolved and judged) in place of
    /// the reference the client gave, so that the engine acts on exactly that container.
    pub fn target_with(&self, id: Option<&str>) -> String {
        match (id, &self.subject) {
            (Some(id), Some(_)) => self.target.replace(SUBJECT, &target::escape_segment(id)),
            (None, Some(original)) => self.target.replace(SUBJECT, original),
            (_, None) => self.target.clone(),
        }
    }

    /// The body to send in place of the client's: a network connect's, naming `id`.
    pub fn body_with(&self, id: &str) -> Option<Vec<u8>> {
        let object = self.network_body.as_ref()?;
        let mut fields = serde_json::Map::new();
        for (key, value) in &object.0 {
            let value = match body::fold(key) == "container" {
                true => Value::String(id.to_string()),
                false => value.to_value(),
            };
            fields.insert(key.clone(), value);
        }
        serde_json::to_vec(&Value::Object(fields)).ok()
    }
}

/// A routed request that changes something, being read.
struct Judged<'a> {
    incoming: Incoming<'a>,
    routed: &'a route::Routed,
    query: &'a str,
}

impl Judged<'_> {
    fn request(&self) -> Result<Request, String> {
        self.plain_form()?;
        let version_floor = !self.routed.libpod;
        if let (true, Some(version)) = (version_floor, &self.routed.version) {
            if older_than(version, (1, 24)) {
                return Err(format!(
                    "API version {version} is refused for requests that change something: \
                     before 1.24, dockerd reads a start's body as a new host configuration"
                ));
            }
        }
        let subject = || self.routed.subject.clone().unwrap_or_default();
        let query = Query::parse(self.query)?;
        Ok(match self.routed.endpoint {
            Endpoint::Harmless => Request::Harmless,
            Endpoint::CreateResource(resource) => {
                let body = self.json_body()?;
                // dockerd and Podman both read `Name` (folded); an empty one is a random name.
                let name = body
                    .field("Name")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                Request::CreateResource {
                    resource,
                    name: name.to_string(),
                }
            }
            Endpoint::PruneResources(resource) => Request::PruneResources { resource },
            Endpoint::Create => {
                let body = match self.incoming.body {
                    None => return Ok(Request::Create(None)),
                    Some(bytes) => bytes,
                };
                Request::Create(Some(self.create(body, &query)?))
            }
            Endpoint::Change(Operation::Remove) => {
                self.no_body()?;
                if query.flag("depend")? {
                    return Err(
                        "a removal with depend=true removes the containers that depend \
                                on this one too: remove each by name"
                            .into(),
                    );
                }
                match query.flag("link")? {
                    // Removes a link, which changes the container that holds it.
                    true => Request::Change {
                        operation: Operation::Update,
                        container: subject()
                            .rsplit_once('/')
                            .map_or(subject(), |(parent, _)| parent.to_string()),
                        to: None,
                    },
                    false => Request::Change {
                        operation: Operation::Remove,
                        container: subject(),
                        to: None,
                    },
                }
            }
            Endpoint::Change(operation) => {
                if !matches!(operation, Operation::Update | Operation::Checkpoint) {
                    self.no_body()?;
                }
                self.one_container(&query)?;
                let to = match operation {
                    Operation::Rename => Some(
                        query
                            .single("name")?
                            .ok_or("a rename without a new name")?
                            .trim_start_matches('/')
                            .to_string(),
                    ),
                    _ => None,
                };
                Request::Change {
                    operation,
                    container: subject(),
                    to,
                }
            }
            Endpoint::Run(run) => {
                self.no_body()?;
                self.one_container(&query)?;
                if run == Run::Restore && query.flag("import")? {
                    return Err("a restore with import=true creates a container from an \
                                archive the guard cannot read"
                        .into());
                }
                Request::Run {
                    run,
                    container: subject(),
                }
            }
            Endpoint::Network(connect) => {
                let body = self.json_body()?;
                let container = body
                    .field("Container")
                    .and_then(Json::as_str)
                    .filter(|c| !c.is_empty())
                    .ok_or("a network connect or disconnect that names no container")?;
                Request::Change {
                    operation: match connect {
                        true => Operation::Connect,
                        false => Operation::Disconnect,
                    },
                    container: container.to_string(),
                    to: Some(subject()),
                }
            }
            Endpoint::Prune => Request::Prune,
            Endpoint::RemoveWithUsers(resource, effect) => Request::RemoveWithUsers {
                resource,
                name: subject(),
                effect,
            },
            Endpoint::RemoveImages => {
                let images = query.all("images");
                // No images named is every image, as `all` is.
                let all = query.flag("all")? || images.is_empty();
                Request::RemoveImages { images, all }
            }
            Endpoint::Pod(operation) => Request::Pod {
                operation,
                pod: subject(),
            },
            Endpoint::PodCreate => {
                let body = self.json_body()?;
                let infra = !matches!(body.field("no_infra"), Some(Json::Bool(true)));
                // The infra container gets the pod's labels, and `infra_name` or a name of
                // Podman's making.
                let labels = match body.field("labels") {
                    Some(Json::Object(o)) => o.strings().map_err(|e| e.0)?,
                    _ => HashMap::new(),
                };
                let name = body
                    .field("infra_name")
                    .and_then(Json::as_str)
                    .filter(|n| !n.is_empty())
                    .map(String::from);
                let image = body.field("infra_image").and_then(Json::as_str);
                Request::PodCreate {
                    infra: infra.then(|| Create {
                        name,
                        image: image.unwrap_or_default().to_string(),
                        labels,
                        shares_processes_of: None,
                        through_libpod: true,
                    }),
                }
            }
            Endpoint::Kube => {
                return Err("kube play, kube down and quadlets create and remove the \
                            containers a document names, which the guard does not read: run \
                            them on the engine's own socket"
                    .into())
            }
            Endpoint::SystemCheck => match query.flag("repair_lossy")? {
                true => {
                    return Err(
                        "a storage check with repair_lossy removes the containers it \
                                finds damaged: run it on the engine's own socket"
                            .into(),
                    )
                }
                false => Request::Harmless,
            },
            Endpoint::SwarmJoin => {
                return Err(
                    "a swarm's containers are its own, so joining or starting one \
                            would exempt whatever it runs: do it on the engine's own socket"
                        .into(),
                )
            }
            Endpoint::Plugin => Request::Plugin { name: subject() },
        })
    }

    /// Podman 4 applies a restart with `all=true` to every container, whatever the path names;
    /// no other engine reads `all` on one container.
    fn one_container(&self, query: &Query) -> Result<(), String> {
        match query.flag("all")? {
            true => Err(format!(
                "{} with all=true acts on every container on Podman 4",
                self.routed.route
            )),
            false => Ok(()),
        }
    }

    /// Form bodies: dockerd reads a `application/x-www-form-urlencoded` body's fields before
    /// the query's, so a rename's `name` could come from a body the guard never reads.
    fn plain_form(&self) -> Result<(), String> {
        let form = self.incoming.content_types.iter().any(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("x-www-form-urlencoded") || t.contains("multipart/")
        });
        match form {
            true => Err(
                "a form body on a request that changes something: the engine would \
                         read its fields as parameters"
                    .into(),
            ),
            false => Ok(()),
        }
    }

    fn no_body(&self) -> Result<(), String> {
        match self.incoming.has_body && self.incoming.body.is_none_or(|b| !b.is_empty()) {
            true => Err(format!(
                "{} takes no body, and this one carries one",
                self.routed.route
            )),
            false => Ok(()),
        }
    }

    fn json_body(&self) -> Result<Object, String> {
        let bytes = self
            .incoming
            .body
            .ok_or("the body of this request was not passed to the guard")?;
        match body::parse(bytes) {
            Ok(Json::Object(o)) => Ok(o),
            Ok(_) => Err("the body is not a JSON object".into()),
            Err(e) => Err(format!("the body is ambiguous to the engine: {e}")),
        }
    }
}

/// Whether the API version `version` is older than `floor`, compared as dockerd's
/// `versions.compare` does: dot-separated numbers, each one unreadable or missing counting 0.
fn older_than(version: &str, floor: (u64, u64)) -> bool {
    let mut parts = version
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0))
        .chain(std::iter::repeat(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < floor
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

mod create;
mod query;
#[cfg(test)]
mod tests;
