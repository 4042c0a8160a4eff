//! The guard's rule: a request that changes containers is allowed exactly when it is something
//! `enforce` would do now, or when it touches nothing the list protects. Pure: the planner
//! itself says what `enforce` would do, from the state and what the host runs.
//!
//! Why "what enforce would do" and not "who asks": an authorization plugin on a unix socket
//! sees no user, so guestlist's own requests and a person's look the same.

use std::collections::BTreeSet;

use super::request::{Create, Operation, Request};
use crate::execute::REPLACEMENT_SUFFIX;
use crate::plan::{self, Action, Observed, Plan};
use crate::record::rules::Orchestrator;
use crate::record::spec;
use crate::record::state::State;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Refuse(Refusal),
}

/// Why a request is refused, in words the docker CLI shows as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The container the request is about, when it names one.
    pub container: Option<String>,
    /// The whole message, starting with `guestlist:`.
    pub message: String,
}

impl Refusal {
    fn verdict(container: Option<&str>, message: String) -> Verdict {
        Verdict::Refuse(Refusal {
            container: container.map(String::from),
            message: format!("guestlist: {message}"),
        })
    }
}

/// How an allowed container stands, as far as changing it goes.
enum Standing {
    /// `enforce` would leave it as it is (or only start it): changing it is drift.
    Protected(&'static str),
    /// `enforce` would replace it, the engine is removing it, or it is not the list's.
    Open,
}

/// The allowed container a replacement's temporary name (`web-guestlist-new`) stands for.
fn replaced_by(state: &State, name: &str) -> Option<String> {
    let original = name.strip_suffix(REPLACEMENT_SUFFIX)?;
    state.entry(original).map(|e| e.name.clone())
}

/// The allowed containers whose standing `decide` needs, with every allowed container they
/// share a namespace with or depend on (a recreated owner makes its sharers drift too). The
/// front end captures these; `target` is the name of the container the request names.
pub fn names_to_observe(
    state: &State,
    request: &Request,
    target: Option<&str>,
) -> BTreeSet<String> {
    let mut wanted: Vec<String> = Vec::new();
    let mut consider = |name: &str| {
        if state.entry(name).is_some() {
            wanted.push(name.to_string());
        }
        wanted.extend(replaced_by(state, name));
    };
    match request {
        Request::Create(Some(c)) => c.name.iter().for_each(|n| consider(n)),
        Request::Change { to, .. } => {
            target.into_iter().for_each(&mut consider);
            to.iter().for_each(|n| consider(n));
        }
        Request::Prune => state.containers.iter().for_each(|e| consider(&e.name)),
        Request::Create(None) | Request::Plugin { .. } | Request::Other => {}
    }
    let mut names = BTreeSet::new();
    while let Some(name) = wanted.pop() {
        if !names.insert(name.clone()) {
            continue;
        }
        if let Some(entry) = state.entry(&name) {
            let deps = spec::dependencies(&entry.spec).into_iter().map(|(n, _)| n);
            wanted.extend(deps.filter(|d| state.entry(d).is_some()));
        }
    }
    names
}

/// Decide about `request`. `target` is the container a `Change` names, as the engine resolved
/// it (`None`: there is none, and the engine answers 404 itself). `observed` is the host in the
/// state's scope, with at least the containers `names_to_observe` named captured. `plugin` is
/// the guard's own plugin name when it runs as one.
pub fn decide(
    state: &State,
    request: &Request,
    target: Option<&Observed>,
    observed: &[Observed],
    plugin: Option<&str>,
) -> Verdict {
    let plan = || plan::plan(state, observed);
    match request {
        Request::Other => Verdict::Allow,
        Request::Create(None) => Refusal::verdict(
            None,
            "cannot check this create against the list: the engine passed the plugin no \
             body (it passes none of 1 MiB or more, nor any that is not JSON)"
                .into(),
        ),
        Request::Create(Some(create)) => created(state, create, &plan),
        Request::Change { operation, to, .. } => {
            let Some(target) = target else {
                return Verdict::Allow;
            };
            if let Standing::Protected(how) = standing(state, &plan(), target) {
                return Refusal::verdict(
                    Some(&target.name),
                    format!(
                        "refusing to {operation} container {name}: it is on this host's list \
                         ({how}); `guestlist forget {name}` first, or stop the guard",
                        name = target.name
                    ),
                );
            }
            match (operation, to) {
                // An extra stays an extra under any name: nothing the list protects changes.
                (Operation::Rename, Some(_)) if is_extra(state, target) => Verdict::Allow,
                (Operation::Rename, Some(to)) => {
                    let as_created = Create {
                        name: Some(to.clone()),
                        image: target.image.clone(),
                        labels: target.labels.clone(),
                    };
                    created(state, &as_created, &plan)
                }
                _ => Verdict::Allow,
            }
        }
        Request::Prune => {
            let plan = plan();
            let protected: Vec<&str> = observed
                .iter()
                .filter(|o| !o.running && state.entry(&o.name).is_some())
                .filter(|o| matches!(standing(state, &plan, o), Standing::Protected(_)))
                .map(|o| o.name.as_str())
                .collect();
            match protected.first() {
                None => Verdict::Allow,
                Some(first) => Refusal::verdict(
                    Some(first),
                    format!(
                        "a prune would remove {}, stopped and on this host's list: remove \
                         other stopped containers by name, or `guestlist forget` {} first",
                        protected.join(", "),
                        match protected.len() {
                            1 => "it",
                            _ => "them",
                        }
                    ),
                ),
            }
        }
        Request::Plugin { name } => {
            let bare = |n: &str| n.strip_suffix(":latest").unwrap_or(n).to_string();
            match plugin.filter(|own| bare(own) == bare(name)) {
                None => Verdict::Allow,
                Some(own) => Refusal::verdict(
                    None,
                    format!(
                        "plugin {own} guards this host's list and is not changed through the \
                         engine's API: stop the guard on the host (see the README's \
                         break-glass section)"
                    ),
                ),
            }
        }
    }
}

/// Whether a container created (or renamed) as `create` is allowed to exist.
fn created(state: &State, create: &Create, plan: &dyn Fn() -> Plan) -> Verdict {
    let name = create.name.as_deref();
    if name.is_some_and(|n| state.entry(n).is_some()) {
        // Missing, or the engine refuses the name as taken.
        return Verdict::Allow;
    }
    if let Some(original) = name.and_then(|n| replaced_by(state, n)) {
        let plan = plan();
        let replacing = plan
            .actions()
            .any(|a| matches!(a, Action::Replace { name, .. } if *name == original));
        return match replacing {
            true => Verdict::Allow,
            false => Refusal::verdict(
                name,
                format!(
                    "{} is the name guestlist gives a replacement of {original}, which needs \
                     none: choose another name",
                    name.unwrap_or_default()
                ),
            ),
        };
    }
    if !state.scope.contains(&create.labels)
        || Orchestrator::owning(create.labels.keys().map(String::as_str)).is_some()
    {
        return Verdict::Allow;
    }
    let name_text = name.unwrap_or_default();
    if state
        .allow
        .iter()
        .any(|r| r.matches(name_text, &create.image, &create.labels))
    {
        return Verdict::Allow;
    }
    let what = match name {
        Some(n) => format!("container {n}"),
        None => "a container without a name".into(),
    };
    Refusal::verdict(
        name,
        format!(
            "{what} (image {}) is not on this host's list and no allow rule matches it: add \
             it to the list (`guestlist snapshot NAME` once it runs, or an allow rule), or \
             stop the guard",
            if create.image.is_empty() {
                "none given"
            } else {
                &create.image
            }
        ),
    )
}

/// Whether `enforce` would remove `target` as an extra: in scope, not another orchestrator's,
/// not on the list, matched by no allow rule.
fn is_extra(state: &State, target: &Observed) -> bool {
    state.entry(&target.name).is_none()
        && state.scope.contains(&target.labels)
        && Orchestrator::owning(target.labels.keys().map(String::as_str)).is_none()
        && !state
            .allow
            .iter()
            .any(|r| r.matches(&target.name, &target.image, &target.labels))
}

/// How the existing container `target` stands against the list and what `enforce` would do.
fn standing(state: &State, plan: &Plan, target: &Observed) -> Standing {
    let listed = state.entry(&target.name).is_some();
    if !listed
        || !state.scope.contains(&target.labels)
        || Orchestrator::owning(target.labels.keys().map(String::as_str)).is_some()
    {
        return Standing::Open;
    }
    if plan.in_sync.contains(&target.name) {
        return Standing::Protected(match target.running {
            true => "in sync",
            false => "recorded stopped",
        });
    }
    if plan.spared.iter().any(|a| a.name() == target.name) {
        return Standing::Protected("guestlist runs in it");
    }
    match plan.actions().find(|a| a.name() == target.name) {
        Some(Action::Start { .. }) => Standing::Protected("stopped; enforce starts it"),
        // Replaced, created (it vanished since it was resolved), removed (not the list's).
        _ => Standing::Open,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
