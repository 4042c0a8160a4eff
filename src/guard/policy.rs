//! The guard's rule: a request that changes containers is allowed exactly when it is something
//! `enforce` would do now, or when it touches nothing the list protects. Pure: the planner
//! itself says what `enforce` would do, from the state and what the host runs.
//!
//! Why "what enforce would do" and not "who asks": an authorization plugin on a unix socket
//! sees no user, so guestlist's own requests and a person's look the same.
//!
//! Every request is judged by its effect on each container it reaches, however it names them:
//! by path (stop, start), by body (network connect), or indirectly (a Podman image removal with
//! `force` removes every container of that image, a pod stop stops its containers).

use std::collections::{BTreeMap, BTreeSet};

use super::request::{Create, Request};
use super::route::{Operation, PodOperation, Run};
use crate::plan::{self, set_aside_name, Action, Observed, Plan, REPLACEMENT_SUFFIX};
use crate::record::change::Change;
use crate::record::rules::{Claims, Orchestrator};
use crate::record::spec;
use crate::record::state::{Entry, State};

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
    pub fn verdict(container: Option<&str>, message: String) -> Verdict {
        Verdict::Refuse(Refusal {
            container: container.map(String::from),
            message: format!("guestlist: {message}"),
        })
    }
}

/// What the front end found out for a decision.
pub struct Seen<'a> {
    /// The existing containers the request acts on, as the engine resolved them: the one its
    /// path or body names, the users of an image, volume or network, a pod's containers.
    pub affected: &'a [Observed],
    /// The host in the state's scope, with at least the containers `names_to_observe` named
    /// captured.
    pub observed: &'a [Observed],
    /// The guard's own plugin name when it runs as one.
    pub plugin: Option<&'a str>,
    /// Whose orchestrator claims are believed on this host.
    pub claims: Claims,
}

/// How an allowed container stands, as far as changing it goes.
enum Standing {
    /// `enforce` would leave it as it is (or only start it): changing it is drift.
    Protected(&'static str),
    /// `enforce` would replace it, the engine is removing it, or it is not the list's.
    Open,
}

/// The allowed container a replacement's temporary name (`web-guestlist-new`) stands for.
fn replaced_by<'a>(state: &'a State, name: &str) -> Option<&'a Entry> {
    state.entry(name.strip_suffix(REPLACEMENT_SUFFIX)?)
}

/// The entry whose name `name` is, or whose replacement's temporary name it is.
fn holder<'a>(state: &'a State, name: &str) -> Option<&'a Entry> {
    state.entry(name).or_else(|| replaced_by(state, name))
}

/// The containers whose standing `decide` needs, with every allowed container they share a
/// namespace with or depend on (a recreated owner makes its sharers drift too). The front end
/// captures these; `affected` are the containers the request reaches.
pub fn names_to_observe(
    state: &State,
    request: &Request,
    affected: &[Observed],
) -> BTreeSet<String> {
    let mut wanted: Vec<String> = Vec::new();
    let mut consider = |name: &str| {
        if let Some(entry) = holder(state, name) {
            wanted.push(entry.name.clone());
        }
    };
    match request {
        Request::Create(Some(c)) => {
            c.name.iter().for_each(|n| consider(n));
            affected.iter().for_each(|o| consider(&o.name));
        }
        Request::Change { to, .. } => {
            affected.iter().for_each(|o| consider(&o.name));
            to.iter().for_each(|n| consider(n));
        }
        Request::Run { .. }
        | Request::RemoveWithUsers { .. }
        | Request::RemoveImages { .. }
        | Request::Pod { .. } => affected.iter().for_each(|o| consider(&o.name)),
        Request::Prune | Request::PruneResources { .. } => {
            state.containers.iter().for_each(|e| consider(&e.name))
        }
        Request::Create(None)
        | Request::CreateResource { .. }
        | Request::PodCreate { .. }
        | Request::Plugin { .. }
        | Request::Harmless
        | Request::Refused(_) => {}
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
    // A container that would take a listed name is compared with that name's record.
    if let Request::Change { to: Some(to), .. } = request {
        if holder(state, to).is_some() {
            names.extend(affected.iter().map(|o| o.name.clone()));
        }
    }
    names
}

/// Decide about `request`, from what the front end `seen`.
pub fn decide(state: &State, request: &Request, seen: &Seen<'_>) -> Verdict {
    let plan = || plan::plan(state, seen.observed);
    match request {
        Request::Harmless => Verdict::Allow,
        Request::Refused(why) => Refusal::verdict(None, format!("refusing this request: {why}")),
        Request::Create(None) => Refusal::verdict(
            None,
            "cannot check this create against the list: the engine passed the plugin no \
             body (it passes none of 1 MiB or more, nor any that is not JSON)"
                .into(),
        ),
        Request::Create(Some(create)) => match created(state, seen.claims, create, &plan) {
            Verdict::Allow => shares_processes(state, create.name.as_deref(), seen.affected, &plan),
            refused => refused,
        },
        Request::PodCreate { infra: None } => Verdict::Allow,
        Request::PodCreate { infra: Some(infra) } => {
            match created(state, seen.claims, infra, &plan) {
                Verdict::Allow => Verdict::Allow,
                Verdict::Refuse(r) => Refusal::verdict(
                    None,
                    format!(
                        "refusing to create this pod: its infra container {}",
                        r.message.trim_start_matches("guestlist: ")
                    ),
                ),
            }
        }
        // The first affected container is the one the engine resolved; any others are those
        // the same reference could name by the time the engine acts (a plugin's id prefix).
        Request::Change { operation, to, .. } => {
            let Some(target) = seen.affected.first() else {
                return Verdict::Allow;
            };
            let plan = plan();
            // enforce connects a container it created to its other networks before starting it.
            if let (Operation::Connect, Some(network)) = (operation, to) {
                if connects_as_recorded(state, target, network) {
                    return Verdict::Allow;
                }
            }
            let refusal = seen
                .affected
                .iter()
                .find_map(|o| protected(state, &plan, *operation, o, None));
            if let Some(refusal) = refusal {
                return refusal;
            }
            // An extra's restart policy would make it run at the engine's next start.
            if *operation == Operation::Update && is_extra(state, target) {
                return Refusal::verdict(
                    Some(&target.name),
                    format!(
                        "refusing to update container {}: it is not on this host's list (an \
                         extra, which enforce removes), and a restart policy would make it run",
                        target.name
                    ),
                );
            }
            match (operation, to) {
                (Operation::Rename, Some(to)) => renamed(state, seen.claims, &plan, target, to),
                _ => Verdict::Allow,
            }
        }
        Request::Run { run, .. } => {
            let plan = plan();
            seen.affected
                .iter()
                .map(|o| runs(state, &plan, *run, o, None))
                .find(|v| *v != Verdict::Allow)
                .unwrap_or(Verdict::Allow)
        }
        Request::RemoveWithUsers {
            resource,
            name,
            effect,
        } => {
            let what = format!("to remove {} {name}", resource_word(*resource));
            if let Some(holders) = recorded(state, *resource).get(name.as_str()) {
                return Refusal::verdict(
                    None,
                    format!(
                        "refusing {what}: the record of {} names it, and the container is made \
                         with it as it is",
                        holders.join(", ")
                    ),
                );
            }
            each_changed(state, &plan(), *effect, seen.affected, &what)
        }
        Request::CreateResource { resource, name } => {
            match recorded(state, *resource).get(name.as_str()) {
                None => Verdict::Allow,
                Some(holders) => Refusal::verdict(
                    None,
                    format!(
                        "refusing to create {} {name}: the record of {} names it, and what it \
                         is made of is not on the list (a volume bound to a host path, a \
                         network of another kind); create it on the engine's own socket",
                        resource_word(*resource),
                        holders.join(", ")
                    ),
                ),
            }
        }
        Request::PruneResources { resource } => pruned_resources(state, *resource, seen.observed),
        Request::RemoveImages { images, all } => {
            let what = match all {
                true => "to remove every image".to_string(),
                false => format!("to remove images {}", images.join(", ")),
            };
            each_changed(state, &plan(), Operation::Remove, seen.affected, &what)
        }
        Request::Pod { operation, pod } => {
            let plan = plan();
            match operation {
                PodOperation::Change(op) => {
                    let what = format!("to {} pod {pod}", op.word());
                    each_changed(state, &plan, *op, seen.affected, &what)
                }
                PodOperation::Run(run) => {
                    let what = format!("to {} pod {pod}", run.word());
                    seen.affected
                        .iter()
                        .map(|o| runs(state, &plan, *run, o, Some(&what)))
                        .find(|v| *v != Verdict::Allow)
                        .unwrap_or(Verdict::Allow)
                }
            }
        }
        Request::Prune => pruned(state, &plan(), seen.observed),
        Request::Plugin { name } => {
            let bare = |n: &str| n.strip_suffix(":latest").unwrap_or(n).to_string();
            match seen.plugin.filter(|own| bare(own) == bare(name)) {
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

fn resource_word(resource: super::route::Resource) -> &'static str {
    match resource {
        super::route::Resource::Image => "image",
        super::route::Resource::Volume => "volume",
        super::route::Resource::Network => "network",
    }
}

/// The volumes or networks the records name, each with the entries that name it: the
/// container comes back with them as they are, so they are part of what the list protects.
fn recorded(state: &State, resource: super::route::Resource) -> BTreeMap<String, Vec<String>> {
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in &state.containers {
        let mut add = |name: &str| {
            let holders = named.entry(name.to_string()).or_default();
            if !holders.contains(&entry.name) {
                holders.push(entry.name.clone());
            }
        };
        match resource {
            super::route::Resource::Volume => {
                spec::volume_names(&entry.spec).iter().for_each(|v| add(v))
            }
            super::route::Resource::Network => {
                spec::user_networks(&entry.spec).iter().for_each(|n| add(n))
            }
            super::route::Resource::Image => {}
        }
    }
    named
}

/// A prune removes the volumes no container uses and the networks no running container is
/// attached to: refused when that takes one a listed container (missing, or stopped) needs.
fn pruned_resources(
    state: &State,
    resource: super::route::Resource,
    observed: &[Observed],
) -> Verdict {
    let recorded = recorded(state, resource);
    let at_risk = recorded.iter().find(|(_, holders)| {
        holders.iter().any(|name| {
            let live = observed
                .iter()
                .find(|o| o.name == *name && o.managed.is_none());
            match (resource, live) {
                (_, None) => true,
                (super::route::Resource::Network, Some(o)) => !o.running,
                _ => false,
            }
        })
    });
    match at_risk {
        None => Verdict::Allow,
        Some((name, holders)) => Refusal::verdict(
            None,
            format!(
                "a prune would remove {} {name}, which {} needs and does not use now: remove \
                 other {}s by name",
                resource_word(resource),
                holders.join(", "),
                resource_word(resource)
            ),
        ),
    }
}

/// The first refusal among `affected`, each changed by `operation` as a side effect of `what`.
fn each_changed(
    state: &State,
    plan: &Plan,
    operation: Operation,
    affected: &[Observed],
    what: &str,
) -> Verdict {
    affected
        .iter()
        .find_map(|o| protected(state, plan, operation, o, Some(what)))
        .unwrap_or(Verdict::Allow)
}

/// The refusal of `operation` on `target` when `enforce` would undo it; `what` is the request
/// when the container is reached indirectly.
fn protected(
    state: &State,
    plan: &Plan,
    operation: Operation,
    target: &Observed,
    what: Option<&str>,
) -> Option<Verdict> {
    let Standing::Protected(how) = standing(state, plan, target) else {
        return None;
    };
    let name = &target.name;
    let message = match what {
        None => format!(
            "refusing to {operation} container {name}: it is on this host's list ({how}); \
             `guestlist forget {name}` first, or stop the guard",
            operation = operation.word()
        ),
        Some(what) => format!(
            "refusing {what}: it would {operation} container {name}, which is on this host's \
             list ({how}); `guestlist forget {name}` first, or stop the guard",
            operation = operation.word()
        ),
    };
    Some(Refusal::verdict(Some(name), message))
}

/// Whether connecting `target` to `network` is what `enforce` does: a container it created
/// (under a listed name or a replacement's), never started yet, joins a network of its record.
fn connects_as_recorded(state: &State, target: &Observed, network: &str) -> bool {
    let recorded =
        holder(state, &target.name).is_some_and(|e| e.spec.networks.contains_key(network));
    recorded && target.status == crate::plan::Status::Created
}

/// A container that joins the process namespace of a protected one can kill its processes:
/// allowed only for a container of the list's own (whose record says so, and which `admit`
/// compares with it).
pub fn shares_processes(
    state: &State,
    name: Option<&str>,
    shared: &[Observed],
    plan: &dyn Fn() -> Plan,
) -> Verdict {
    if shared.is_empty() || name.is_some_and(|n| holder(state, n).is_some()) {
        return Verdict::Allow;
    }
    let plan = plan();
    let what = "to create a container in its process namespace";
    each_changed(state, &plan, Operation::Kill, shared, what)
}

/// Whether `target` may be made to run: only as `enforce` would run it. An extra never; an
/// allowed container only in its recorded configuration.
fn runs(state: &State, plan: &Plan, run: Run, target: &Observed, what: Option<&str>) -> Verdict {
    let name = &target.name;
    if target.managed.is_some() || !state.scope.contains(&target.labels) || target.runs_guestlist {
        return Verdict::Allow;
    }
    let doing = match what {
        Some(what) => format!("refusing {what}: it would {} container {name}", run.word()),
        None => format!("refusing to {} container {name}", run.word()),
    };
    if state.entry(name).is_some() {
        let fine = plan.in_sync.contains(name)
            || plan.removing.contains(name)
            || plan.spared.iter().any(|a| a.name() == name);
        return match plan.actions().find(|a| a.name() == name) {
            _ if fine => Verdict::Allow,
            Some(Action::Start { .. }) | None => Verdict::Allow,
            Some(Action::Replace { reason, .. }) => Refusal::verdict(
                Some(name),
                format!(
                    "{doing}: it is on this host's list but {reason}, so enforce replaces it \
                     rather than run it; `guestlist snapshot {name}` keeps it as it is"
                ),
            ),
            Some(_) => Verdict::Allow,
        };
    }
    if state
        .allow
        .iter()
        .any(|r| r.matches(name, &target.image, &target.labels))
    {
        return Verdict::Allow;
    }
    Refusal::verdict(
        Some(name),
        format!(
            "{doing}: it is not on this host's list and no allow rule matches it (an extra, \
             which enforce removes)"
        ),
    )
}

/// Whether `target` may be renamed to `to`: an extra stays an extra under any name; otherwise
/// it must be a container that may exist under the new name, as a create under it must.
fn renamed(state: &State, claims: Claims, plan: &Plan, target: &Observed, to: &str) -> Verdict {
    // enforce's own replacement stops the old container and sets it aside until the new one
    // runs, and puts it back if the new one fails (or the pass was interrupted): a listed
    // container it would replace, stopped, may take its set-aside name, and a stopped container
    // set aside may take its name back (the engine refuses it while the name is taken).
    // Running, neither is enforce's doing: the plan would remove it as an extra.
    if !target.running && state.scope.contains(&target.labels) && target.managed.is_none() {
        let sets_aside = to == set_aside_name(&target.name)
            && state.entry(&target.name).is_some()
            && matches!(standing(state, plan, target), Standing::Open);
        let puts_back = target.name == set_aside_name(to) && state.entry(to).is_some();
        if sets_aside || puts_back {
            return Verdict::Allow;
        }
    }
    if is_extra(state, target) && holder(state, to).is_none() {
        return Verdict::Allow;
    }
    let as_created = Create {
        name: Some(to.to_string()),
        image: target.image.clone(),
        labels: target.labels.clone(),
        shares_processes_of: None,
        through_libpod: false,
    };
    if let Verdict::Refuse(r) = created(state, claims, &as_created, &|| plan.clone()) {
        return Verdict::Refuse(r);
    }
    match record_check(state, to, target) {
        Ok(()) => Verdict::Allow,
        Err(why) => Refusal::verdict(
            Some(&target.name),
            format!(
                "refusing to rename container {} to {to}: {why}",
                target.name
            ),
        ),
    }
}

/// The created container `created`, as the engine made it, measured against the list: what
/// `created` allowed by the request's reading must hold for the engine's too, and a container
/// under a listed name (or its replacement's) must be what `enforce` would create.
pub fn admit(
    state: &State,
    claims: Claims,
    created_as: &Observed,
    observed: &[Observed],
) -> Verdict {
    let create = Create {
        name: Some(created_as.name.clone()),
        image: created_as.image.clone(),
        labels: created_as.labels.clone(),
        shares_processes_of: None,
        through_libpod: false,
    };
    if let Verdict::Refuse(r) = created(state, claims, &create, &|| plan::plan(state, observed)) {
        return Verdict::Refuse(r);
    }
    match record_check(state, &created_as.name, created_as) {
        Ok(()) => Verdict::Allow,
        Err(why) => Refusal::verdict(
            Some(&created_as.name),
            format!("refusing to create container {}: {why}", created_as.name),
        ),
    }
}

/// For a container that takes the name `name`: when the name is listed (or a listed
/// container's replacement's), it must be what `enforce` would create, but for networks it is
/// still to be connected to (enforce creates with one network and connects the others before
/// it starts the container).
fn record_check(state: &State, name: &str, container: &Observed) -> Result<(), String> {
    let Some(entry) = holder(state, name) else {
        return Ok(());
    };
    if container.spec.is_none() {
        return Err(format!(
            "its configuration could not be read to compare it with the record of {}",
            entry.name
        ));
    }
    let differ: Vec<Change> = plan::differences(entry, container)
        .into_iter()
        .filter(|c| !(c.field.starts_with("networks.") && c.live.is_null()))
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = differ.iter().map(|c| c.field.as_str()).collect();
    Err(format!(
        "only what enforce would create may take the name {name}, and this differs from the \
         record of {} in {}",
        entry.name,
        fields.join(", ")
    ))
}

/// Whether a container created (or renamed) as `create` may exist, as far as the request
/// tells. A listed name (or a replacement's temporary name) must go to a container guestlist
/// manages, and its configuration is compared with the record once the engine made it
/// (`admit`).
fn created(state: &State, claims: Claims, create: &Create, plan: &dyn Fn() -> Plan) -> Verdict {
    let name = create.name.as_deref();
    let claimed = Orchestrator::owning(create.labels.keys().map(String::as_str));
    if let Some(entry) = name.and_then(|n| holder(state, n)) {
        let name = name.unwrap_or_default();
        if create.through_libpod {
            return Refusal::verdict(
                Some(name),
                format!(
                    "container {name} takes a name on this host's list through Podman's own \
                     API, whose options (IPC, user and cgroup namespaces, overlay mounts, ...) \
                     the comparison with the record of {} cannot see: create it through the \
                     Docker-compatible API, as enforce does",
                    entry.name
                ),
            );
        }
        if !state.scope.contains(&create.labels) {
            return Refusal::verdict(
                Some(name),
                format!(
                    "container {name} would be outside the scope ({}) under a name on this \
                     host's list: guestlist could never create {} again",
                    state.scope, entry.name
                ),
            );
        }
        if let Some(by) = claimed {
            return Refusal::verdict(
                Some(name),
                format!(
                    "container {name} carries {}'s labels under a name on this host's list",
                    by.name()
                ),
            );
        }
        if name != entry.name {
            let replacing = plan()
                .actions()
                .any(|a| matches!(a, Action::Replace { name, .. } if *name == entry.name));
            if !replacing {
                return Refusal::verdict(
                    Some(name),
                    format!(
                        "{name} is the name guestlist gives a replacement of {}, which needs \
                         none: choose another name",
                        entry.name
                    ),
                );
            }
        }
        return Verdict::Allow;
    }
    // Swarm never creates through the API: its labels on a create are not its own.
    let believed = claims
        .owner(create.labels.keys().map(String::as_str))
        .is_some_and(|by| by != Orchestrator::Swarm);
    if !state.scope.contains(&create.labels) || believed {
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

/// A prune removes every stopped container: refused when one of them is protected.
fn pruned(state: &State, plan: &Plan, observed: &[Observed]) -> Verdict {
    let protected: Vec<&str> = observed
        .iter()
        .filter(|o| !o.running && state.entry(&o.name).is_some())
        .filter(|o| matches!(standing(state, plan, o), Standing::Protected(_)))
        .map(|o| o.name.as_str())
        .collect();
    match protected.first() {
        None => Verdict::Allow,
        Some(first) => Refusal::verdict(
            Some(first),
            format!(
                "a prune would remove {}, stopped and on this host's list: remove other \
                 stopped containers by name, or `guestlist forget` {} first",
                protected.join(", "),
                match protected.len() {
                    1 => "it",
                    _ => "them",
                }
            ),
        ),
    }
}

/// Whether `enforce` would remove `target` as an extra: in scope, not another orchestrator's,
/// not on the list, matched by no allow rule.
fn is_extra(state: &State, target: &Observed) -> bool {
    state.entry(&target.name).is_none()
        && state.scope.contains(&target.labels)
        && target.managed.is_none()
        && !target.runs_guestlist
        && !state
            .allow
            .iter()
            .any(|r| r.matches(&target.name, &target.image, &target.labels))
}

/// How the existing container `target` stands against the list and what `enforce` would do.
fn standing(state: &State, plan: &Plan, target: &Observed) -> Standing {
    let listed = state.entry(&target.name).is_some();
    if !listed || !state.scope.contains(&target.labels) || target.managed.is_some() {
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
