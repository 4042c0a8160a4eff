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
    /// Podman's init: the container is set up, not run, but what it depends on is started.
    Init,
}

impl Run {
    pub fn word(self) -> &'static str {
        match self {
            Run::Start => "start",
            Run::Restart => "restart",
            Run::Unpause => "unpause",
            Run::Restore => "restore",
            Run::Init => "initialize",
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
    /// Creates a volume or network (its name in the body): one a record names must stay as
    /// the engine made it for that container.
    CreateResource(Resource),
    /// Removes the unused volumes or networks, among them those of a listed container that is
    /// stopped or missing.
    PruneResources(Resource),
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
pub(super) enum Served {
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
pub(super) struct Route {
    pub(super) method: &'static str,
    pub(super) template: &'static str,
    pub(super) served: Served,
    pub(super) endpoint: Endpoint,
}

mod table;

use table::ROUTES;
use Served::{Compat, Docker, Libpod, PodmanCompat};

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
mod tests;
