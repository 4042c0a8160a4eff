//! Plan: from the state and what the host runs, the actions that bring the host back to the
//! list, in dependency order. Pure: no IO, no bollard, so every case is unit-tested.
//!
//! Every allowed container is exactly one of: in sync, missing (create), stopped (start) or
//! changed (replace). Every other container in scope is tolerated (an allow rule matches) or
//! extra (remove). Containers outside the scope never reach the planner, and are filtered again
//! here in case they did.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::record::change::Change;
use crate::record::rules::Orchestrator;
use crate::record::spec::{self, ContainerSpec};

mod decide;
#[cfg(test)]
mod tests;

pub use decide::{differences, plan};

/// A container's state, in Docker's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    /// Being removed: its name is still taken until it is gone.
    Removing,
    Exited,
    Dead,
    /// Podman's state between a stop request and the exit.
    Stopping,
    /// A word neither engine is known to say.
    Unknown,
}

impl Status {
    /// The engine's state word. Podman's compatible API lets some of its own through
    /// (`stopped` for exited, `configured` and `initialized` for created).
    pub fn from_word(word: &str) -> Status {
        match word {
            "created" | "configured" | "initialized" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" | "stopped" => Status::Exited,
            "dead" => Status::Dead,
            "stopping" => Status::Stopping,
            _ => Status::Unknown,
        }
    }

    /// Whether it counts as running. A paused container was paused on purpose and cannot be
    /// started; a restarting one is the engine's restart policy at work.
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Restarting | Status::Paused)
    }
}

/// One container as the host runs it right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub name: String,
    /// The image reference as the engine lists it.
    pub image: String,
    pub running: bool,
    pub status: Status,
    pub labels: HashMap<String, String>,
    /// Its captured run configuration; present for containers whose name is on the list.
    pub spec: Option<ContainerSpec>,
    /// When its last run started and ended; known for containers whose name is on the list.
    pub last_run: LastRun,
    /// This guestlist runs inside it: it is never removed or replaced, whatever the list says.
    pub runs_guestlist: bool,
    /// What the engine added to it when it created it (its image's config, its own defaults);
    /// known for containers whose name is on the list.
    pub origin: Option<std::sync::Arc<spec::Origin>>,
    /// The orchestrator whose container this is, when its labels claim one and the claim is
    /// believed on this host (`observe` decides, see `rules::Claims`): never acted on.
    pub managed: Option<Orchestrator>,
}

/// The span of a container's last run, which tells a crash loop from a container that stayed up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastRun {
    pub started: Option<SystemTime>,
    /// When it stopped; `None` while it runs.
    pub finished: Option<SystemTime>,
}

/// Why an allowed container that exists is replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Its image or run configuration differs from the record in these fields.
    Changed(Vec<Change>),
    /// It shares a namespace (`--network/--ipc/--pid container:X`) with X, which is recreated in
    /// this pass; the reference to the old X dies with it.
    Dependency(String),
    /// Compose recreated it with another configuration (its config hash changed): a deploy,
    /// which replacing it undoes. These are the fields that differ.
    Redeployed(Vec<Change>),
}

/// The label compose puts on every container it creates: a hash of the service's
/// configuration, which changes with every deploy that changes the service.
pub const COMPOSE_CONFIG_HASH: &str = "com.docker.compose.config-hash";

/// A container another orchestrator owns, left to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    pub name: String,
    pub by: Orchestrator,
    /// Whether it is on the list (recorded before guestlist left such containers out).
    pub listed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Missing: create it (and start it when the record says it runs).
    Create {
        name: String,
        spec: ContainerSpec,
        start: bool,
    },
    /// Stopped: start the existing container. The record comes along for a container that was
    /// never started and cannot be (`execute`).
    Start {
        name: String,
        id: String,
        spec: ContainerSpec,
    },
    /// Changed: create a replacement from the record, remove the old one, start the new one.
    Replace {
        name: String,
        id: String,
        spec: ContainerSpec,
        start: bool,
        reason: Reason,
    },
    /// Extra: stop and remove it, never its volumes.
    Remove {
        name: String,
        id: String,
        image: String,
        /// What an interrupted replacement left behind, when it is that: cleared without
        /// counting against `--max-removals`.
        leftover: Option<Leftover>,
    },
    /// An interrupted replacement set the old container aside (stopped, renamed `NAME-guestlist-old`)
    /// and never finished: give it its name back, first clearing `clear`, a replacement under
    /// the name that never ran, and start it when the record says it runs. What still differs
    /// is for the next pass, which finds the container as it was before.
    PutBack {
        name: String,
        /// The container set aside.
        id: String,
        clear: Option<String>,
        start: bool,
    },
    /// An interrupted replacement set the old container aside and gave the new one the name,
    /// but never started it: start it (when the record says it runs) and remove the old one;
    /// if the start fails, put the old one back as a replacement does.
    Finish {
        name: String,
        /// The replacement under the name, never started.
        id: String,
        /// The old container, set aside.
        aside: String,
        start: bool,
        /// The record, to create the replacement again if the engine cannot start it.
        spec: ContainerSpec,
    },
}

/// What an interrupted replacement leaves, which a pass clears without counting it as a removal
/// of the host's containers: it holds nothing the host ran, or it was counted when replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// `NAME-guestlist-new`, created from the record and never started: its writable layer is
    /// empty.
    Unstarted,
    /// `NAME-guestlist-old`, the container a replacement set aside, whose replacement has run.
    SetAside,
}

/// Names a replacement uses beside the container's own (see `execute`): the new container is
/// created under `NAME-guestlist-new`, and the old one is stopped and renamed
/// `NAME-guestlist-old` until the new one runs, so that a failure can put it back.
pub const REPLACEMENT_SUFFIX: &str = "-guestlist-new";
pub const SET_ASIDE_SUFFIX: &str = "-guestlist-old";

/// The name a replacement sets `name`'s old container aside under.
pub fn set_aside_name(name: &str) -> String {
    format!("{name}{SET_ASIDE_SUFFIX}")
}

/// Whether a container under `name` is compared with the list: an allowed container, or one a
/// replacement of an allowed container set aside (the pass may give it its name back).
pub fn compared(state: &crate::record::state::State, name: &str) -> bool {
    state.entry(name).is_some()
        || name
            .strip_suffix(SET_ASIDE_SUFFIX)
            .is_some_and(|of| state.entry(of).is_some())
}

impl Action {
    pub fn name(&self) -> &str {
        match self {
            Action::Create { name, .. }
            | Action::Start { name, .. }
            | Action::Replace { name, .. }
            | Action::Remove { name, .. }
            | Action::PutBack { name, .. }
            | Action::Finish { name, .. } => name,
        }
    }

    /// The plan marker: `+` create, `>` start, `~` replace, `-` remove, `<` put back.
    pub fn marker(&self) -> char {
        match self {
            Action::Create { .. } => '+',
            Action::Start { .. } => '>',
            Action::Replace { .. } | Action::Finish { .. } => '~',
            Action::Remove { .. } => '-',
            Action::PutBack { .. } => '<',
        }
    }

    /// The action as a verb: create, start, replace, remove, put back (audit log, metrics,
    /// reports).
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Start { .. } => "start",
            Action::Replace { .. } | Action::Finish { .. } => "replace",
            Action::Remove { .. } => "remove",
            Action::PutBack { .. } => "put back",
        }
    }

    /// What is wrong with the container the action is for: missing, stopped, why it changed,
    /// or extra with its image.
    pub fn condition(&self) -> String {
        match self {
            Action::Create { .. } => "missing".into(),
            Action::Start { .. } => "stopped".into(),
            Action::Replace { reason, .. } => reason.to_string(),
            Action::Remove {
                leftover: Some(Leftover::Unstarted),
                ..
            } => "left by an interrupted replacement, never started".into(),
            Action::Remove {
                leftover: Some(Leftover::SetAside),
                ..
            } => "set aside by a replacement that has run since".into(),
            Action::Remove { image, .. } => format!("extra (image {image})"),
            Action::PutBack { .. } => "set aside by an interrupted replacement".into(),
            Action::Finish { .. } => "replaced by an interrupted pass, not started yet".into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = |changes: &[Change]| {
            let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
            fields.join(", ")
        };
        match self {
            Reason::Changed(changes) => write!(f, "changed {}", fields(changes)),
            Reason::Redeployed(changes) => write!(
                f,
                "redeployed by compose (its config hash changed), changed {}",
                fields(changes)
            ),
            Reason::Dependency(owner) => {
                write!(f, "shares a namespace with {owner}, which is recreated")
            }
        }
    }
}

/// Why the container guestlist runs in is tolerated, in place of an allow rule.
pub const RUNS_GUESTLIST: &str = "guestlist itself (it runs in this container)";

/// An extra container left alone because an allow rule matches it, or because guestlist runs
/// in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerated {
    pub name: String,
    pub image: String,
    pub rule: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Actions in waves: each wave runs after the previous one finished. Removals come first
    /// (an extra may hold a port or address an allowed container needs), then creations in
    /// dependency order.
    pub waves: Vec<Vec<Action>>,
    pub tolerated: Vec<Tolerated>,
    /// Allowed containers that need nothing.
    pub in_sync: Vec<String>,
    /// Allowed containers the engine is removing right now (`docker rm -f` in progress): the
    /// name is still taken, so the pass waits for it to be free and then creates them.
    pub removing: Vec<String>,
    /// Replacements not done because this guestlist runs in the container: replacing it would
    /// end the pass halfway. Drift that a human resolves.
    pub spared: Vec<Action>,
    /// Containers another orchestrator owns (swarm, Kubernetes, Nomad): never acted on.
    pub managed: Vec<Managed>,
}

impl Plan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.waves.iter().flatten()
    }

    /// Nothing drifted: the host matches the list.
    pub fn is_empty(&self) -> bool {
        !self.has_actions() && self.removing.is_empty() && self.spared.is_empty()
    }

    /// Whether there is anything to do now.
    pub fn has_actions(&self) -> bool {
        self.waves.iter().any(|w| !w.is_empty())
    }

    /// How many existing containers this plan removes or replaces. What an interrupted
    /// replacement left is not counted: it never ran, or it was counted when it was replaced.
    pub fn removal_count(&self) -> usize {
        self.actions()
            .filter(|a| {
                matches!(
                    a,
                    Action::Replace { .. } | Action::Remove { leftover: None, .. }
                )
            })
            .count()
    }
}

/// A start that is held back: the container keeps dying and its delay has not passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub name: String,
    /// Starts attempted since it last stayed up.
    pub starts: u32,
    /// How long until the next start may be attempted.
    pub wait: Duration,
    /// When it is held only because a container it needs is held, that container.
    pub behind: Option<String>,
}

/// What happened to one action.
#[derive(Debug)]
pub struct ActionResult {
    pub action: Action,
    /// `Ok(notes)`: done, with things the operator should know; `Err(cause)`: failed, with
    /// the whole chain of causes (shown on one line with `{:#}`).
    pub outcome: Result<Vec<String>, anyhow::Error>,
    /// The engine's answer shows that the action was planned from a view that changed since
    /// (the container vanished, its name is still held by a container being removed): plan it
    /// again rather than report it.
    pub outdated: bool,
}

/// How a pass ended: the exit code (`cmd::Outcome`), `guestlist_passes_total{result}` and the
/// success gauges all come from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// The host matched the list at the end.
    InSync,
    /// Drift remains (a failed action, a held-back restart, a dry run that found drift).
    Drift,
    /// The pass would have exceeded --max-removals and did nothing.
    Refused,
    /// The pass could not run (engine unreachable, unreadable state).
    Error,
}
