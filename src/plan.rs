//! Plan: from the state and what the host runs, the actions that bring the host back to the
//! list, in dependency order. Pure: no IO, no bollard, so every case is unit-tested.
//!
//! Every allowed container is exactly one of: in sync, missing (create), stopped (start) or
//! changed (replace). Every other container in scope is tolerated (an allow rule matches) or
//! extra (remove). Containers outside the scope never reach the planner, and are filtered again
//! here in case they did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use crate::change::{self, Change};
use crate::rules::{in_scope, Orchestrator};
use crate::spec::{self, ContainerSpec};
use crate::state::State;

/// One container as the host runs it right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub name: String,
    /// The image reference as the engine lists it.
    pub image: String,
    pub running: bool,
    /// The engine's state word: running, exited, created, paused, restarting, dead.
    pub status: String,
    pub labels: HashMap<String, String>,
    /// Its captured run configuration; present for containers whose name is on the list.
    pub spec: Option<ContainerSpec>,
    /// When its last run started and ended; known for containers whose name is on the list.
    pub last_run: Run,
    /// This guestlist runs inside it: it is never removed or replaced, whatever the list says.
    pub runs_guestlist: bool,
    /// What the engine added to it when it created it (its image's config, its own defaults);
    /// known for containers whose name is on the list.
    pub origin: Option<std::sync::Arc<spec::Origin>>,
}

/// The span of a container's last run, which tells a crash loop from a container that stayed up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
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
    },
}

impl Action {
    pub fn name(&self) -> &str {
        match self {
            Action::Create { name, .. }
            | Action::Start { name, .. }
            | Action::Replace { name, .. }
            | Action::Remove { name, .. } => name,
        }
    }

    /// The plan marker: `+` create, `>` start, `~` replace, `-` remove.
    pub fn marker(&self) -> char {
        match self {
            Action::Create { .. } => '+',
            Action::Start { .. } => '>',
            Action::Replace { .. } => '~',
            Action::Remove { .. } => '-',
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

    /// How many existing containers this plan removes or replaces.
    pub fn removal_count(&self) -> usize {
        self.actions()
            .filter(|a| matches!(a, Action::Replace { .. } | Action::Remove { .. }))
            .count()
    }
}

/// Plan the actions that bring `observed` back to `state`.
pub fn plan(state: &State, observed: &[Observed]) -> Plan {
    let mut managed: Vec<Managed> = Vec::new();
    let observed: Vec<&Observed> = observed
        .iter()
        .filter(|o| in_scope(&state.scope, &o.labels))
        .filter(
            |o| match Orchestrator::owning(o.labels.keys().map(String::as_str)) {
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
            },
        )
        .collect();
    let by_name: HashMap<&str, &Observed> =
        observed.iter().map(|o| (o.name.as_str(), *o)).collect();

    let mut decided: BTreeMap<String, Action> = BTreeMap::new();
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
        if live.is_some_and(|o| o.status == "removing") {
            removing.push(entry.name.clone());
            continue;
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
    let mut removals = Vec::new();
    for o in observed.iter().filter(|o| state.entry(&o.name).is_none()) {
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

fn classify(entry: &crate::state::Entry, observed: Option<&Observed>) -> Option<Action> {
    let Some(o) = observed else {
        return Some(Action::Create {
            name: entry.name.clone(),
            spec: entry.spec.clone(),
            start: entry.running,
        });
    };
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
    let recorded = spec::as_created(&entry.spec, image, origin.map(|o| &o.defaults));
    let changed = o
        .spec
        .as_ref()
        .map(|live| change::changes(&recorded, live, &spec::diff(&recorded, live)))
        .unwrap_or_default();
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

/// A replacement built from the record, except that it keeps the anonymous volumes the live
/// container uses now: they hold its current data (compose inherits them the same way).
fn replace(entry: &crate::state::Entry, o: &Observed, reason: Reason) -> Action {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::spec::AnonymousVolume;
    use crate::state::{EngineInfo, Entry, VERSION};
    use serde_json::{json, Map, Value};

    fn spec(image_id: &str) -> ContainerSpec {
        ContainerSpec {
            image: "img:1".into(),
            image_id: image_id.into(),
            config: Map::new(),
            host_config: Map::new(),
            networks: Default::default(),
            anonymous_volumes: Vec::new(),
        }
    }

    /// Builder for a state entry: `entry("web").host("NetworkMode", json!("container:db"))`.
    struct EntryBuilder(Entry);

    fn entry(name: &str) -> EntryBuilder {
        EntryBuilder(Entry {
            name: name.into(),
            running: true,
            spec: spec("sha256:1"),
        })
    }

    impl EntryBuilder {
        fn host(mut self, key: &str, value: Value) -> Self {
            self.0.spec.host_config.insert(key.into(), value);
            self
        }
        fn env(mut self, env: &str) -> Self {
            self.0.spec.config.insert("Env".into(), json!([env]));
            self
        }
        fn stopped(mut self) -> Self {
            self.0.running = false;
            self
        }
        fn volume(mut self, destination: &str, name: &str) -> Self {
            self.0.spec.anonymous_volumes.push(AnonymousVolume {
                destination: destination.into(),
                name: name.into(),
                read_only: false,
            });
            self
        }
        /// The same container as the host shows it, in sync with this entry.
        fn observed(&self) -> Observed {
            Observed {
                id: format!("id-{}", self.0.name),
                name: self.0.name.clone(),
                image: self.0.spec.image.clone(),
                running: true,
                status: "running".into(),
                labels: HashMap::new(),
                spec: Some(self.0.spec.clone()),
                last_run: Run::default(),
                runs_guestlist: false,
                origin: None,
            }
        }
    }

    fn observed(name: &str) -> Observed {
        Observed {
            id: format!("id-{name}"),
            name: name.into(),
            image: "other:1".into(),
            running: true,
            status: "running".into(),
            labels: HashMap::new(),
            spec: None,
            last_run: Run::default(),
            runs_guestlist: false,
            origin: None,
        }
    }

    fn state(entries: Vec<EntryBuilder>) -> State {
        State {
            version: VERSION,
            taken_at: String::new(),
            engine: EngineInfo::default(),
            scope: Vec::new(),
            allow: Vec::new(),
            containers: entries.into_iter().map(|b| b.0).collect(),
        }
    }

    fn markers(plan: &Plan) -> Vec<Vec<String>> {
        plan.waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|a| format!("{} {}", a.marker(), a.name()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn in_sync_host_plans_nothing() {
        let web = entry("web");
        let live = vec![web.observed()];
        let plan = plan(&state(vec![web]), &live);
        assert!(plan.is_empty());
        assert_eq!(plan.in_sync, vec!["web"]);
    }

    #[test]
    fn missing_is_created_stopped_is_started_extra_is_removed() {
        let db = entry("db");
        let mut db_live = db.observed();
        db_live.running = false;
        db_live.status = "exited".into();
        let live = vec![db_live, observed("intruder")];
        let plan = plan(&state(vec![entry("web"), db]), &live);
        assert_eq!(
            markers(&plan),
            vec![vec!["- intruder"], vec!["> db", "+ web"]]
        );
    }

    #[test]
    fn the_container_guestlist_runs_in_is_never_removed_or_replaced() {
        let mut me = observed("guestlist");
        me.runs_guestlist = true;
        let extra = plan(&state(vec![]), &[me.clone(), observed("intruder")]);
        assert_eq!(markers(&extra), vec![vec!["- intruder"]]);
        assert_eq!(extra.tolerated[0].rule, RUNS_GUESTLIST);
        assert_eq!(extra.removal_count(), 1);

        // On the list but changed (or sharing a namespace with a recreated container): drift,
        // and no action.
        let net = entry("net");
        let web = entry("web").host("NetworkMode", json!("container:net"));
        let mut web_live = web.env("X=changed").observed();
        web_live.runs_guestlist = true;
        let web = entry("web").host("NetworkMode", json!("container:net"));
        let plan = plan(&state(vec![net, web]), &[web_live]);
        assert_eq!(markers(&plan), vec![vec!["+ net"]]);
        assert_eq!(plan.spared.len(), 1);
        assert_eq!(plan.spared[0].name(), "web");
        assert!(!plan.is_empty());
        assert_eq!(plan.removal_count(), 0);
    }

    #[test]
    fn an_allowed_container_being_removed_waits_for_the_next_pass() {
        let web = entry("web");
        let mut live = web.observed();
        live.running = false;
        live.status = "removing".into();
        let plan = plan(&state(vec![web]), &[live]);
        assert!(!plan.has_actions());
        assert!(!plan.is_empty());
        assert_eq!(plan.removing, ["web"]);
    }

    #[test]
    fn a_recorded_stopped_container_is_created_but_not_started_and_never_started() {
        let job = entry("job").stopped();
        let mut live = job.observed();
        live.running = false;
        assert!(plan(&state(vec![entry("job").stopped()]), &[live]).is_empty());
        let plan = plan(&state(vec![job]), &[]);
        assert!(matches!(
            &plan.waves[0][0],
            Action::Create { start: false, .. }
        ));
    }

    #[test]
    fn changed_config_or_image_is_replaced_naming_the_fields() {
        let web = entry("web").env("A=1");
        let mut live = web.observed();
        live.spec
            .as_mut()
            .unwrap()
            .config
            .insert("Env".into(), json!(["A=2"]));
        live.spec.as_mut().unwrap().image_id = "sha256:2".into();
        let plan = plan(&state(vec![web]), &[live]);
        let Action::Replace {
            reason: Reason::Changed(changes),
            ..
        } = &plan.waves[0][0]
        else {
            panic!("expected a replace: {plan:?}");
        };
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["image", "config.Env"]);
        assert_eq!(changes[0].recorded["image_id"], json!("sha256:1"));
        assert_eq!(changes[0].live["image_id"], json!("sha256:2"));
        assert_eq!(changes[1].summary.as_deref(), Some("A changed"));
    }

    #[test]
    fn a_replacement_keeps_the_live_anonymous_volumes() {
        let web = entry("web").volume("/data", "recorded");
        let mut live = web.observed();
        let live_spec = live.spec.as_mut().unwrap();
        live_spec.anonymous_volumes[0].name = "current".into();
        live_spec.image_id = "sha256:2".into();
        let plan = plan(&state(vec![web]), &[live]);
        let Action::Replace { spec, .. } = &plan.waves[0][0] else {
            panic!("expected a replace: {plan:?}");
        };
        assert_eq!(spec.anonymous_volumes[0].name, "current");
    }

    #[test]
    fn tolerated_extras_are_left_alone_and_listed_with_their_rule() {
        let mut s = state(vec![]);
        s.allow = vec![
            "name=ci-*".parse().unwrap(),
            "image=debug:*".parse().unwrap(),
        ];
        let mut dbg = observed("shell");
        dbg.image = "debug:1".into();
        let plan = plan(&s, &[observed("ci-1"), dbg, observed("x")]);
        assert_eq!(markers(&plan), vec![vec!["- x"]]);
        let tolerated: Vec<_> = plan
            .tolerated
            .iter()
            .map(|t| (t.name.as_str(), t.rule.as_str()))
            .collect();
        assert_eq!(
            tolerated,
            vec![("ci-1", "name=ci-*"), ("shell", "image=debug:*")]
        );
    }

    #[test]
    fn containers_out_of_scope_are_never_touched() {
        let mut s = state(vec![entry("web")]);
        s.scope = vec!["label=team=web".parse().unwrap()];
        let mut inside = observed("intruder");
        inside.labels.insert("team".into(), "web".into());
        let mut same_name_outside = entry("web").observed();
        same_name_outside.labels.insert("team".into(), "db".into());
        let plan = plan(&s, &[observed("other-team"), same_name_outside, inside]);
        // web outside the scope is invisible: it counts as missing, not as drift to repair.
        assert_eq!(markers(&plan), vec![vec!["- intruder"], vec!["+ web"]]);
    }

    #[test]
    fn dependencies_are_created_first() {
        let s = state(vec![
            entry("app").host("NetworkMode", json!("container:net")),
            entry("net").host("VolumesFrom", json!(["data:ro"])),
            entry("data"),
            entry("solo"),
        ]);
        let plan = plan(&s, &[]);
        assert_eq!(
            markers(&plan),
            vec![vec!["+ data", "+ solo"], vec!["+ net"], vec!["+ app"]]
        );
    }

    #[test]
    fn namespace_sharers_are_recreated_after_their_owner() {
        let net = entry("net");
        let app = entry("app").host("NetworkMode", json!("container:net"));
        let logs = entry("logs").host("IpcMode", json!("container:app"));
        let reader = entry("reader").host("VolumesFrom", json!(["net"]));
        let live = vec![app.observed(), logs.observed(), reader.observed()];
        let plan = plan(&state(vec![net, app, logs, reader]), &live);
        assert_eq!(
            markers(&plan),
            vec![vec!["+ net"], vec!["~ app"], vec!["~ logs"]]
        );
        assert!(matches!(
            &plan.waves[1][0],
            Action::Replace { reason: Reason::Dependency(owner), .. } if owner == "net"
        ));
        assert_eq!(plan.in_sync, vec!["reader"]);
    }

    #[test]
    fn a_dependency_cycle_in_a_hand_edited_state_still_plans() {
        let s = state(vec![
            entry("a").host("VolumesFrom", json!(["b"])),
            entry("b").host("VolumesFrom", json!(["a"])),
        ]);
        assert_eq!(plan(&s, &[]).actions().count(), 2);
    }

    #[test]
    fn another_orchestrators_containers_are_never_acted_on() {
        let task = |name: &str, label: &str| {
            let mut o = observed(name);
            o.labels.insert(label.into(), "x".into());
            o
        };
        // A swarm task, a Kubernetes pod's container, a Nomad allocation: none is an extra.
        let live = vec![
            task("web.1.a", "com.docker.swarm.task.id"),
            task("k8s_app_pod", "io.kubernetes.pod.name"),
            task("job-1", "com.hashicorp.nomad.alloc_id"),
            observed("intruder"),
        ];
        // A task recorded by an older snapshot and gone since: never created again.
        let old_task = entry("web.2.b").host("NetworkMode", json!("bridge"));
        let mut old_task = old_task;
        old_task
            .0
            .spec
            .config
            .insert("Labels".into(), json!({"com.docker.swarm.task.id": "t2"}));
        let plan = plan(&state(vec![old_task]), &live);
        assert_eq!(markers(&plan), vec![vec!["- intruder"]]);
        let managed: Vec<(&str, &str, bool)> = plan
            .managed
            .iter()
            .map(|m| (m.name.as_str(), m.by.name(), m.listed))
            .collect();
        assert_eq!(
            managed,
            [
                ("web.1.a", "swarm", false),
                ("web.2.b", "swarm", true),
                ("k8s_app_pod", "Kubernetes", false),
                ("job-1", "Nomad", false)
            ]
        );
        assert!(plan.in_sync.is_empty());
    }

    #[test]
    fn a_compose_deploy_is_told_apart_from_other_changes() {
        let labelled = |hash: &str, env: &str| {
            let mut e = entry("app").env(env);
            e.0.spec.config.insert(
                "Labels".into(),
                json!({COMPOSE_CONFIG_HASH: hash, "com.docker.compose.service": "app"}),
            );
            e
        };
        let live = labelled("new", "A=2").observed();
        let deployed = plan(&state(vec![labelled("old", "A=1")]), &[live]);
        let Action::Replace {
            reason: Reason::Redeployed(changes),
            ..
        } = &deployed.waves[0][0]
        else {
            panic!("a deploy not told: {deployed:?}");
        };
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["config.Env", "config.Labels"]);
        // The same hash: a change made by hand, not by compose.
        let live = labelled("old", "A=2").observed();
        let by_hand = plan(&state(vec![labelled("old", "A=1")]), &[live]);
        assert!(matches!(
            &by_hand.waves[0][0],
            Action::Replace {
                reason: Reason::Changed(_),
                ..
            }
        ));
    }

    #[test]
    fn an_empty_state_without_scope_removes_everything_it_sees() {
        // The planner is literal; the limit on removals is enforced before acting.
        let plan = plan(&state(vec![]), &[observed("a"), observed("b")]);
        assert_eq!(markers(&plan), vec![vec!["- a", "- b"]]);
    }
}
