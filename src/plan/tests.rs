//! The planner's cases, one per situation a container can be in.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::record::spec::AnonymousVolume;
use crate::record::state::{EngineInfo, Entry, State, VERSION};
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
            status: Status::Running,
            labels: HashMap::new(),
            spec: Some(self.0.spec.clone()),
            last_run: LastRun::default(),
            runs_guestlist: false,
            origin: None,
            managed: None,
        }
    }
}

fn observed(name: &str) -> Observed {
    Observed {
        id: format!("id-{name}"),
        name: name.into(),
        image: "other:1".into(),
        running: true,
        status: Status::Running,
        labels: HashMap::new(),
        spec: None,
        last_run: LastRun::default(),
        runs_guestlist: false,
        origin: None,
        managed: None,
    }
}

fn state(entries: Vec<EntryBuilder>) -> State {
    State {
        version: VERSION,
        taken_at: String::new(),
        engine: EngineInfo::default(),
        scope: Default::default(),
        allow: Vec::new(),
        containers: entries.into_iter().map(|b| b.0).collect(),
        orchestrators: Some(Vec::new()),
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
    db_live.status = Status::Exited;
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
    live.status = Status::Removing;
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
    s.scope = crate::record::rules::Scope::new(vec!["label=team=web".parse().unwrap()]);
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
        o.managed = crate::record::rules::Orchestrator::owning([label]);
        o
    };
    // A swarm task, a Kubernetes pod's container, a Nomad allocation, each where its claim is
    // believed (observe decides): none is an extra.
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

/// A container as an interrupted replacement leaves it: `status`, under `name`.
fn left(builder: &EntryBuilder, name: &str, status: Status) -> Observed {
    let mut o = builder.observed();
    o.name = name.into();
    o.id = format!("id-{name}");
    o.running = status.is_running();
    o.status = status;
    o
}

#[test]
fn what_an_interrupted_replacement_left_converges_without_counting_as_removals() {
    // Killed after creating the replacement: the old container still runs (changed), the new
    // one waits under its temporary name. Only the replacement counts against the limit.
    let web = entry("web").env("A=1");
    let mut changed = web.observed();
    changed.spec = Some(entry("web").env("A=2").0.spec);
    let unstarted = left(&web, "web-guestlist-new", Status::Created);
    let plan = super::plan(&state(vec![web]), &[changed, unstarted.clone()]);
    assert_eq!(
        markers(&plan),
        vec![vec!["- web-guestlist-new"], vec!["~ web"]]
    );
    assert_eq!(plan.removal_count(), 1);
    // One that ever ran under that name is no leftover of guestlist's: an extra, counted.
    let web = entry("web");
    let mut ran = unstarted;
    ran.status = Status::Exited;
    let plan = super::plan(&state(vec![web]), &[entry("web").observed(), ran]);
    assert_eq!(plan.removal_count(), 1);

    // Killed after setting the old one aside: it gets its name back; the unstarted
    // replacement under the temporary name goes, uncounted.
    let web = entry("web");
    let aside = left(&web, "web-guestlist-old", Status::Exited);
    let new = left(&web, "web-guestlist-new", Status::Created);
    let plan = super::plan(&state(vec![web]), &[aside.clone(), new]);
    assert_eq!(
        markers(&plan),
        vec![vec!["- web-guestlist-new"], vec!["< web"]]
    );
    assert_eq!(plan.removal_count(), 0);
    assert!(matches!(
        &plan.waves[1][0],
        Action::PutBack { id, clear: None, start: true, .. } if id == "id-web-guestlist-old"
    ));

    // Killed after the replacement took the name but before it started: the replacement is
    // finished (started, the old one removed after, or put back if the start fails).
    let web = entry("web");
    let named = left(&web, "web", Status::Created);
    let plan = super::plan(&state(vec![web]), &[aside.clone(), named.clone()]);
    assert_eq!(markers(&plan), vec![vec!["~ web"]]);
    assert!(matches!(
        &plan.waves[0][0],
        Action::Finish { id, aside, start: true, .. }
            if id == "id-web" && aside == "id-web-guestlist-old"
    ));
    assert_eq!(plan.removal_count(), 0);
    // Unless what holds the name is not the record: it goes, and the old one comes back.
    let web = entry("web").env("A=1");
    let mut other = named;
    other.spec = Some(entry("web").env("A=2").0.spec);
    let plan = super::plan(&state(vec![web]), &[aside.clone(), other]);
    assert_eq!(markers(&plan), vec![vec!["< web"]]);
    assert!(matches!(
        &plan.waves[0][0],
        Action::PutBack { clear: Some(id), .. } if id == "id-web"
    ));
    assert_eq!(plan.removal_count(), 0);

    // Killed after the replacement started: what was set aside goes, uncounted.
    let web = entry("web");
    let plan = super::plan(&state(vec![web]), &[aside.clone(), entry("web").observed()]);
    assert_eq!(markers(&plan), vec![vec!["- web-guestlist-old"]]);
    assert_eq!(plan.removal_count(), 0);
    assert_eq!(plan.in_sync, ["web"]);

    // Set aside and still differing, with the name free: replaced from where it stands.
    let web = entry("web").env("A=1");
    let mut differs = left(&web, "web-guestlist-old", Status::Exited);
    differs.spec = Some(entry("web").env("A=2").0.spec);
    let plan = super::plan(&state(vec![web]), &[differs]);
    assert_eq!(markers(&plan), vec![vec!["~ web"]]);
    assert!(
        matches!(&plan.waves[0][0], Action::Replace { id, .. } if id == "id-web-guestlist-old")
    );
    assert_eq!(plan.removal_count(), 1);

    // A running container under a set-aside name is not guestlist's doing: an extra.
    let web = entry("web");
    let running = left(&web, "web-guestlist-old", Status::Running);
    let plan = super::plan(&state(vec![web]), &[running]);
    assert_eq!(
        markers(&plan),
        vec![vec!["- web-guestlist-old"], vec!["+ web"]]
    );
    assert_eq!(plan.removal_count(), 1);
}

#[test]
fn a_container_the_list_or_an_allow_rule_claims_is_never_taken_for_a_leftover() {
    use crate::record::rules::AllowRule;
    // Listed itself: left as the list says, never removed nor renamed as a leftover.
    let web = entry("web");
    let mut listed_aside = entry("web-guestlist-old").observed();
    listed_aside.running = false;
    listed_aside.status = Status::Exited;
    let plan = super::plan(
        &state(vec![entry("web"), entry("web-guestlist-old")]),
        &[web.observed(), listed_aside],
    );
    assert_eq!(markers(&plan), vec![vec!["> web-guestlist-old"]]);
    assert_eq!(plan.removal_count(), 0);
    // Tolerated by an allow rule: left alone, and never given the name.
    let mut tolerant = state(vec![entry("web")]);
    tolerant.allow = vec!["name=web-guestlist-*".parse::<AllowRule>().unwrap()];
    let aside = left(&web, "web-guestlist-old", Status::Exited);
    let unstarted = left(&web, "web-guestlist-new", Status::Created);
    let plan = super::plan(&tolerant, &[aside, unstarted]);
    assert_eq!(markers(&plan), vec![vec!["+ web"]]);
    assert_eq!(plan.tolerated.len(), 2);
}
