//! Plan, the deciding half: every container classified, namespace sharers of a recreated
//! container taken along, and the actions ordered into dependency waves. Pure: no IO, no
//! bollard.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
    set_aside_name, Action, Leftover, Managed, Observed, Plan, Reason, Status, Tolerated,
    COMPOSE_CONFIG_HASH, REPLACEMENT_SUFFIX, RUNS_GUESTLIST,
};
use crate::record::change;
use crate::record::rules::Orchestrator;
use crate::record::spec::{self, ContainerSpec};
use crate::record::state::{Entry, State};

/// Plan the actions that bring `observed` back to `state`.
pub fn plan(state: &State, observed: &[Observed]) -> Plan {
    let mut managed: Vec<Managed> = Vec::new();
    let observed: Vec<&Observed> = observed
        .iter()
        .filter(|o| state.scope.contains(&o.labels))
        .filter(|o| match o.managed {
            Some(by) => {
                let listed = state.entry(&o.name).is_some();
                managed.push(Managed {
                    name: o.name.clone(),
                    by,
                    listed,
                });
                false
            }
            None => true,
        })
        .collect();
    let by_name: HashMap<&str, &Observed> =
        observed.iter().map(|o| (o.name.as_str(), *o)).collect();

    let mut decided: BTreeMap<String, Action> = BTreeMap::new();
    let mut leftovers: Vec<Action> = Vec::new();
    let mut set_aside_handled: BTreeSet<String> = BTreeSet::new();
    let mut in_sync = Vec::new();
    let mut removing = Vec::new();
    for entry in &state.containers {
        // Recorded before such containers were left out: still never created nor started.
        let labels = entry.spec.config.get("Labels").and_then(|l| l.as_object());
        let keys = labels
            .into_iter()
            .flat_map(|l| l.keys().map(String::as_str));
        if let Some(by) = Orchestrator::owning(keys) {
            if !managed.iter().any(|m| m.name == entry.name) {
                managed.push(Managed {
                    name: entry.name.clone(),
                    by,
                    listed: true,
                });
            }
            continue;
        }
        let live = by_name.get(entry.name.as_str()).copied();
        if live.is_some_and(|o| o.status == Status::Removing) {
            removing.push(entry.name.clone());
            continue;
        }
        if let Some(aside) = set_aside(state, &by_name, &entry.name) {
            set_aside_handled.insert(aside.name.clone());
            match interrupted(entry, live, aside) {
                Interrupted::Finished(removal) => leftovers.push(removal),
                Interrupted::Unfinished(action) => {
                    // The old container stands in for the name: nothing else of it is judged.
                    decided.insert(entry.name.clone(), action);
                    continue;
                }
            }
        }
        match classify(entry, live) {
            Some(action) => {
                decided.insert(entry.name.clone(), action);
            }
            None => in_sync.push(entry.name.clone()),
        }
    }
    cascade_namespace_dependents(state, &by_name, &mut decided, &mut in_sync);
    let own: Vec<String> = decided
        .keys()
        .filter(|name| by_name.get(name.as_str()).is_some_and(|o| o.runs_guestlist))
        .cloned()
        .collect();
    let spared: Vec<Action> = own.iter().filter_map(|n| decided.remove(n)).collect();

    let mut tolerated = Vec::new();
    let mut removals = leftovers;
    let unplaced = observed
        .iter()
        .filter(|o| state.entry(&o.name).is_none() && !set_aside_handled.contains(&o.name));
    for o in unplaced {
        if let Some(leftover) = unstarted_replacement(state, o) {
            removals.push(leftover);
            continue;
        }
        let rule = match o.runs_guestlist {
            true => Some(RUNS_GUESTLIST.to_string()),
            false => state
                .allow
                .iter()
                .find(|r| r.matches(&o.name, &o.image, &o.labels))
                .map(ToString::to_string),
        };
        match rule {
            Some(rule) => tolerated.push(Tolerated {
                name: o.name.clone(),
                image: o.image.clone(),
                rule,
            }),
            None => removals.push(Action::Remove {
                name: o.name.clone(),
                id: o.id.clone(),
                image: o.image.clone(),
                leftover: None,
            }),
        }
    }
    removals.sort_by(|a, b| a.name().cmp(b.name()));
    tolerated.sort_by(|a, b| a.name.cmp(&b.name));
    managed.sort_by(|a, b| (a.by, &a.name).cmp(&(b.by, &b.name)));

    let mut waves = vec![removals];
    waves.extend(order(state, decided));
    waves.retain(|w| !w.is_empty());
    Plan {
        waves,
        tolerated,
        in_sync,
        removing,
        spared,
        managed,
    }
}

/// The container a replacement of `name` set aside, when there is one: stopped (a replacement
/// stops it before it renames it), under `NAME-guestlist-old`.
fn set_aside<'a>(
    state: &State,
    by_name: &HashMap<&str, &'a Observed>,
    name: &str,
) -> Option<&'a Observed> {
    by_name
        .get(set_aside_name(name).as_str())
        .copied()
        .filter(|o| !o.status.is_running() && o.status != Status::Removing)
        .filter(|o| might_be_a_leftover(state, o))
}

/// A container under a name a replacement uses can be what an interrupted one left only when
/// nothing else claims it: one on the list itself, tolerated by an allow rule or guestlist's
/// own is someone's container, never cleared or renamed as a leftover.
fn might_be_a_leftover(state: &State, o: &Observed) -> bool {
    state.entry(&o.name).is_none()
        && !o.runs_guestlist
        && !state
            .allow
            .iter()
            .any(|r| r.matches(&o.name, &o.image, &o.labels))
}

/// What a pass does about a replacement of `entry` that an earlier pass began and never
/// finished (it was killed, or the host went down): `aside` is the old container.
enum Interrupted {
    /// The replacement ran: what it set aside goes, as the pass would have removed it.
    Finished(Action),
    /// It never ran, or is not there: the old container gets its name back (or, differing from
    /// the record, is replaced as any other, from where it stands).
    Unfinished(Action),
}

fn interrupted(entry: &Entry, live: Option<&Observed>, aside: &Observed) -> Interrupted {
    let clear = match live {
        // The replacement took the name and never started: as the record says, it is started
        // (the old one put back if it cannot be); otherwise it goes and the old one comes back.
        Some(o) if o.status == Status::Created => match classify(entry, Some(o)) {
            None | Some(Action::Start { .. }) => {
                return Interrupted::Unfinished(Action::Finish {
                    name: entry.name.clone(),
                    id: o.id.clone(),
                    aside: aside.id.clone(),
                    start: entry.running,
                    spec: entry.spec.clone(),
                })
            }
            _ => Some(o.id.clone()),
        },
        Some(_) => {
            return Interrupted::Finished(Action::Remove {
                name: aside.name.clone(),
                id: aside.id.clone(),
                image: aside.image.clone(),
                leftover: Some(Leftover::SetAside),
            })
        }
        None => None,
    };
    let put_back = Action::PutBack {
        name: entry.name.clone(),
        id: aside.id.clone(),
        clear: clear.clone(),
        start: entry.running,
    };
    // With the name free, a changed container is replaced from where it stands: the
    // replacement's own steps put it back if anything fails.
    match (clear, classify(entry, Some(aside))) {
        (None, Some(replace @ Action::Replace { .. })) => Interrupted::Unfinished(replace),
        _ => Interrupted::Unfinished(put_back),
    }
}

/// `NAME-guestlist-new` of a listed NAME that never ran: a replacement an interrupted pass
/// created and never started. It holds nothing, so it is cleared without counting against
/// `--max-removals`. One that ever ran is not guestlist's doing: an extra like any other.
fn unstarted_replacement(state: &State, o: &Observed) -> Option<Action> {
    let of = o.name.strip_suffix(REPLACEMENT_SUFFIX)?;
    state.entry(of)?;
    if !might_be_a_leftover(state, o) {
        return None;
    }
    (o.status == Status::Created).then(|| Action::Remove {
        name: o.name.clone(),
        id: o.id.clone(),
        image: o.image.clone(),
        leftover: Some(Leftover::Unstarted),
    })
}

fn classify(entry: &crate::record::state::Entry, observed: Option<&Observed>) -> Option<Action> {
    let Some(o) = observed else {
        return Some(Action::Create {
            name: entry.name.clone(),
            spec: entry.spec.clone(),
            start: entry.running,
        });
    };
    let changed = differences(entry, o);
    if !changed.is_empty() {
        let hash = |s: &ContainerSpec| {
            s.config
                .get("Labels")
                .and_then(|l| l.get(COMPOSE_CONFIG_HASH))
                .and_then(|h| h.as_str())
                .map(String::from)
        };
        let live_hash = o.spec.as_ref().and_then(hash);
        let reason = match (hash(&entry.spec), live_hash) {
            (Some(a), Some(b)) if a != b => Reason::Redeployed(changed),
            _ => Reason::Changed(changed),
        };
        return Some(replace(entry, o, reason));
    }
    if entry.running && !o.running {
        return Some(Action::Start {
            name: entry.name.clone(),
            id: o.id.clone(),
            spec: entry.spec.clone(),
        });
    }
    None
}

/// How the live container `o` differs from `entry`'s record, as `diff` shows it: nothing for
/// a container whose configuration was not captured.
pub fn differences(entry: &crate::record::state::Entry, o: &Observed) -> Vec<change::Change> {
    // The record as the engine would show it once created from this image: a hand-written
    // value that the image supplies anyway is the image's.
    let origin = o.origin.as_deref();
    let same_image = o
        .spec
        .as_ref()
        .is_some_and(|l| l.image_id == entry.spec.image_id);
    let image = origin
        .and_then(|o| o.image.as_deref())
        .filter(|_| same_image);
    let defaults = origin.map(|o| &o.defaults);
    let recorded = spec::as_created(&entry.spec, image, defaults, o.spec.as_ref());
    o.spec
        .as_ref()
        .map(|live| change::changes(&recorded, live, &spec::diff(&recorded, live)))
        .unwrap_or_default()
}

/// A replacement built from the record, except that it keeps the anonymous volumes the live
/// container uses now: they hold its current data (compose inherits them the same way).
fn replace(entry: &crate::record::state::Entry, o: &Observed, reason: Reason) -> Action {
    let mut spec = entry.spec.clone();
    if let Some(live) = &o.spec {
        for volume in &mut spec.anonymous_volumes {
            if let Some(current) = live
                .anonymous_volumes
                .iter()
                .find(|v| v.destination == volume.destination)
            {
                volume.name = current.name.clone();
            }
        }
    }
    Action::Replace {
        name: entry.name.clone(),
        id: o.id.clone(),
        spec,
        start: entry.running || o.running,
        reason,
    }
}

/// Containers sharing a namespace with one that is (re)created must be recreated after it.
fn cascade_namespace_dependents(
    state: &State,
    by_name: &HashMap<&str, &Observed>,
    decided: &mut BTreeMap<String, Action>,
    in_sync: &mut Vec<String>,
) {
    loop {
        let recreated: BTreeSet<String> = decided
            .values()
            .filter(|a| matches!(a, Action::Create { .. } | Action::Replace { .. }))
            .map(|a| a.name().to_string())
            .collect();
        let next = state.containers.iter().find_map(|entry| {
            let observed = by_name.get(entry.name.as_str())?;
            if matches!(
                decided.get(&entry.name),
                Some(Action::Create { .. } | Action::Replace { .. })
            ) {
                return None;
            }
            let (owner, _) = spec::dependencies(&entry.spec)
                .into_iter()
                .find(|(dep, shares)| *shares && recreated.contains(dep))?;
            Some(replace(entry, observed, Reason::Dependency(owner)))
        });
        let Some(action) = next else { return };
        in_sync.retain(|n| n != action.name());
        decided.insert(action.name().to_string(), action);
    }
}

/// Group actions into waves by dependency depth among the allowed containers: a container named
/// by `--network container:X`, `--volumes-from X` or `--link X` is handled a wave before.
fn order(state: &State, decided: BTreeMap<String, Action>) -> Vec<Vec<Action>> {
    let deps: HashMap<&str, Vec<String>> = state
        .containers
        .iter()
        .map(|e| {
            let names = spec::dependencies(&e.spec).into_iter().map(|(n, _)| n);
            let listed = names.filter(|n| state.entry(n).is_some()).collect();
            (e.name.as_str(), listed)
        })
        .collect();
    let mut waves: Vec<Vec<Action>> = Vec::new();
    for (name, action) in decided {
        let level = depth(&name, &deps, state.containers.len());
        if waves.len() <= level {
            waves.resize_with(level + 1, Vec::new);
        }
        waves[level].push(action);
    }
    waves
}

/// Length of the longest dependency chain below `name`; `limit` stops a cycle in a hand-edited
/// state (the engine itself cannot create one) from recursing forever.
fn depth(name: &str, deps: &HashMap<&str, Vec<String>>, limit: usize) -> usize {
    if limit == 0 {
        return 0;
    }
    deps.get(name)
        .map(|ds| {
            ds.iter()
                .map(|d| 1 + depth(d, deps, limit - 1))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}
