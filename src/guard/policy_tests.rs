//! The guard's rule, one case per way a request meets the list.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::guard::request::{read, Incoming};
use crate::guard::target::Dialect;
use crate::plan::{LastRun, Status};
use crate::record::spec::ContainerSpec;
use crate::record::state::{EngineInfo, Entry, VERSION};
use serde_json::{json, Map};

fn entry(name: &str) -> Entry {
    Entry {
        name: name.into(),
        running: true,
        spec: ContainerSpec {
            image: "img:1".into(),
            image_id: "sha256:1".into(),
            config: Map::new(),
            host_config: Map::new(),
            networks: Default::default(),
            anonymous_volumes: Vec::new(),
        },
    }
}

fn state(entries: Vec<Entry>, scope: &[&str], allow: &[&str]) -> State {
    State {
        version: VERSION,
        taken_at: String::new(),
        engine: EngineInfo::default(),
        scope: crate::record::rules::Scope::new(scope.iter().map(|s| s.parse().unwrap()).collect()),
        allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
        containers: entries,
        orchestrators: None,
    }
}

/// The container as the host runs it, in sync with its entry when there is one.
fn live(state: &State, name: &str, labels: &[(&str, &str)]) -> Observed {
    Observed {
        id: format!("{name}-0123456789abcdef"),
        name: name.into(),
        image: "img:1".into(),
        running: true,
        status: Status::Running,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        spec: state.entry(name).map(|e| e.spec.clone()),
        last_run: LastRun::default(),
        runs_guestlist: false,
        origin: None,
        managed: None,
    }
}

fn changed(mut o: Observed) -> Observed {
    if let Some(spec) = &mut o.spec {
        spec.image_id = "sha256:2".into();
    }
    o
}

fn stopped(mut o: Observed) -> Observed {
    o.running = false;
    o.status = Status::Exited;
    o
}

/// The verdict on `method uri` with `body` on a host running `host`; the container the request
/// names is found in `host` by name or id prefix.
fn verdict(state: &State, host: &[Observed], method: &str, uri: &str, body: &str) -> Verdict {
    let request = parse(method, uri, body);
    let named = match &request {
        Request::Change { container, .. } | Request::Run { container, .. } => {
            Some(container.as_str())
        }
        _ => None,
    };
    let affected: Vec<Observed> = match named {
        Some(container) => host
            .iter()
            .find(|o| o.name == container || o.id.starts_with(container))
            .cloned()
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    judge(state, &request, &affected, host)
}

fn judge(state: &State, request: &Request, affected: &[Observed], host: &[Observed]) -> Verdict {
    let seen = Seen {
        affected,
        observed: host,
        plugin: Some("guestlist-guard"),
        claims: state.claims(),
    };
    decide(state, request, &seen)
}

fn parse(method: &str, uri: &str, body: &str) -> Request {
    let incoming = Incoming {
        method,
        target: uri,
        content_types: &[],
        has_body: !body.is_empty(),
        body: Some(body.as_bytes()),
    };
    read(incoming, Dialect::Docker).request
}

fn refused(v: &Verdict) -> &str {
    match v {
        Verdict::Refuse(r) => &r.message,
        Verdict::Allow => panic!("allowed"),
    }
}

const CHANGES: [(&str, &str); 6] = [
    ("DELETE", "/v1.41/containers/{}?force=1"),
    ("POST", "/v1.41/containers/{}/stop"),
    ("POST", "/containers/{}/kill?signal=KILL"),
    ("POST", "/containers/{}/pause"),
    ("POST", "/containers/{}/rename?name=other"),
    ("POST", "/v1.45/containers/{}/update"),
];

#[test]
fn an_allowed_container_in_sync_is_neither_removed_stopped_killed_paused_renamed_nor_updated() {
    let state = state(vec![entry("web")], &[], &[]);
    let host = [live(&state, "web", &[])];
    for (method, uri) in CHANGES {
        for by in ["web", "web-0123456789abcdef", "web-0123"] {
            let uri = uri.replace("{}", by);
            let v = verdict(&state, &host, method, &uri, "");
            let message = refused(&v);
            assert!(
                message.starts_with("guestlist: refusing to ")
                    && message.contains(" container web: it is on this host's list (in sync)"),
                "{method} {uri}: {message}"
            );
            assert!(message.contains("guestlist forget web"), "{message}");
        }
    }
    for (method, uri) in [
        ("POST", "/containers/web/start"),
        ("POST", "/containers/web/restart"),
        ("POST", "/containers/web/unpause"),
        ("POST", "/containers/web/exec"),
        ("POST", "/containers/web/attach?stream=1"),
    ] {
        assert_eq!(verdict(&state, &host, method, uri, ""), Verdict::Allow);
    }
}

#[test]
fn an_allowed_container_that_enforce_would_replace_may_be_changed_and_replaced() {
    let state = state(vec![entry("web")], &[], &[]);
    let host = [changed(live(&state, "web", &[]))];
    for (method, uri) in CHANGES {
        let uri = uri.replace("{}", "web");
        let v = verdict(&state, &host, method, &uri, "");
        match uri.contains("/rename") {
            false => assert_eq!(v, Verdict::Allow, "{uri}"),
            // Renamed away, it would run on as an extra.
            true => assert!(refused(&v).contains("container other (image img:1) is not on")),
        }
    }
    // enforce's own replacement: created under the temporary name, then renamed.
    let create = "/v1.41/containers/create?name=web-guestlist-new";
    assert_eq!(verdict(&state, &host, "POST", create, "{}"), Verdict::Allow);
    // It takes the name when it is what the record says, networks still to connect aside.
    let mut temporary = live(&state, "web-guestlist-new", &[]);
    temporary.spec = Some(entry("web").spec);
    let rename = "/v1.41/containers/web-guestlist-new/rename?name=web";
    assert_eq!(
        verdict(&state, &[temporary.clone()], "POST", rename, ""),
        Verdict::Allow
    );
    let mut wrong = temporary.clone();
    if let Some(spec) = &mut wrong.spec {
        spec.host_config.insert("Binds".into(), json!(["/:/host"]));
    }
    let v = verdict(&state, &[wrong], "POST", rename, "");
    assert!(
        refused(&v).contains("differs from the record of web in host_config.Binds"),
        "{v:?}"
    );
    let mut unread = temporary;
    unread.spec = None;
    assert!(refused(&verdict(&state, &[unread], "POST", rename, "")).contains("could not be read"));
}

#[test]
fn a_temporary_name_of_a_container_in_sync_is_refused() {
    let state = state(vec![entry("web")], &[], &[]);
    let host = [live(&state, "web", &[])];
    let create = "/containers/create?name=web-guestlist-new";
    let v = verdict(&state, &host, "POST", create, "{}");
    assert!(refused(&v).contains("replacement of web, which needs none"));
}

#[test]
fn a_stopped_allowed_container_is_protected_as_enforce_would_start_it() {
    let state = state(vec![entry("web")], &[], &[]);
    let host = [stopped(live(&state, "web", &[]))];
    let v = verdict(&state, &host, "DELETE", "/containers/web", "");
    assert!(
        refused(&v).contains("(stopped; enforce starts it)"),
        "{v:?}"
    );
    let v = verdict(&state, &host, "POST", "/containers/prune", "");
    assert!(refused(&v).contains("a prune would remove web"), "{v:?}");
    // Running, a prune touches nothing of the list's.
    let host = [live(&state, "web", &[])];
    assert_eq!(
        verdict(&state, &host, "POST", "/containers/prune", ""),
        Verdict::Allow
    );
    // A stopped one that enforce would replace anyway may go.
    let host = [changed(stopped(live(&state, "web", &[])))];
    assert_eq!(
        verdict(&state, &host, "POST", "/containers/prune", ""),
        Verdict::Allow
    );
}

#[test]
fn a_container_recorded_stopped_is_protected_too() {
    let mut recorded = entry("batch");
    recorded.running = false;
    let state = state(vec![recorded], &[], &[]);
    let host = [stopped(live(&state, "batch", &[]))];
    let v = verdict(&state, &host, "DELETE", "/containers/batch", "");
    assert!(refused(&v).contains("(recorded stopped)"), "{v:?}");
}

#[test]
fn extras_tolerated_and_out_of_scope_containers_may_be_changed() {
    let state = state(vec![entry("web")], &["label=team=a"], &["name=ci-*"]);
    let host = [
        live(&state, "web", &[("team", "a")]),
        live(&state, "intruder", &[("team", "a")]),
        live(&state, "ci-1", &[("team", "a")]),
        live(&state, "theirs", &[("team", "b")]),
    ];
    let v = verdict(&state, &host, "POST", "/containers/intruder/update", "{}");
    assert!(
        refused(&v).contains("a restart policy would make it run"),
        "{v:?}"
    );
    for name in ["intruder", "ci-1", "theirs"] {
        for (method, uri) in CHANGES {
            if name == "intruder" && uri.contains("/update") {
                continue;
            }
            let uri = uri
                .replace("{}", name)
                .replace("name=other", "name=ci-other");
            assert_eq!(
                verdict(&state, &host, method, &uri, ""),
                Verdict::Allow,
                "{uri}"
            );
        }
    }
    // A container of another team under a listed name is not the list's.
    let state2 = state.clone();
    let host = [live(&state2, "web", &[("team", "b")])];
    assert_eq!(
        verdict(&state2, &host, "DELETE", "/containers/web", ""),
        Verdict::Allow
    );
}

#[test]
fn a_create_is_allowed_when_listed_tolerated_out_of_scope_or_orchestrated() {
    let state = state(
        vec![entry("web")],
        &["label=team=a"],
        &["name=ci-*", "image=tools/*", "label=purpose=test"],
    );
    let allowed = [
        ("web", r#"{"Image":"img:1","Labels":{"team":"a"}}"#),
        ("ci-7", r#"{"Image":"x","Labels":{"team":"a"}}"#),
        ("any", r#"{"Image":"tools/lint","Labels":{"team":"a"}}"#),
        (
            "any",
            r#"{"Image":"x","Labels":{"team":"a","purpose":"test"}}"#,
        ),
        ("any", r#"{"Image":"x","Labels":{"team":"b"}}"#),
        ("any", r#"{"Image":"x"}"#),
        (
            "k8s_app",
            r#"{"Image":"x","Labels":{"team":"a","io.kubernetes.pod.name":"p"}}"#,
        ),
    ];
    for (name, body) in allowed {
        let uri = format!("/v1.41/containers/create?name={name}");
        assert_eq!(
            verdict(&state, &[], "POST", &uri, body),
            Verdict::Allow,
            "{name} {body}"
        );
    }
}

#[test]
fn a_create_that_would_be_an_extra_is_refused_and_says_why() {
    let state = state(vec![entry("web")], &[], &["name=ci-*"]);
    let v = verdict(
        &state,
        &[],
        "POST",
        "/v1.41/containers/create?name=x",
        r#"{"Image":"busybox"}"#,
    );
    assert_eq!(
        refused(&v),
        "guestlist: container x (image busybox) is not on this host's list and no allow \
         rule matches it: add it to the list (`guestlist snapshot NAME` once it runs, or an \
         allow rule), or stop the guard"
    );
    let v = verdict(
        &state,
        &[],
        "POST",
        "/containers/create",
        r#"{"Image":"busybox"}"#,
    );
    assert!(refused(&v).contains("a container without a name (image busybox)"));
    // Podman's own API, with the name in the body.
    let body = r#"{"name":"x","image":"busybox"}"#;
    let incoming = Incoming {
        method: "POST",
        target: "/v4.3.0/libpod/containers/create",
        content_types: &[],
        has_body: true,
        body: Some(body.as_bytes()),
    };
    let request = read(incoming, Dialect::Podman).request;
    let v = judge(&state, &request, &[], &[]);
    assert!(refused(&v).contains("container x (image busybox)"));
}

#[test]
fn a_create_whose_body_was_not_seen_is_refused() {
    let state = state(vec![entry("web")], &[], &[]);
    let request = read(
        Incoming {
            method: "POST",
            target: "/containers/create?name=web",
            content_types: &[],
            has_body: true,
            body: None,
        },
        Dialect::Docker,
    )
    .request;
    let v = judge(&state, &request, &[], &[]);
    assert!(refused(&v).contains("passed the plugin no body"), "{v:?}");
}

#[test]
fn a_rename_is_judged_as_a_create_under_the_new_name() {
    let state = state(vec![entry("web")], &[], &["name=ci-*"]);
    let host = [live(&state, "intruder", &[]), live(&state, "ci-1", &[])];
    let v = verdict(
        &state,
        &host,
        "POST",
        "/containers/ci-1/rename?name=sneaky",
        "",
    );
    assert!(
        refused(&v).contains("container sneaky (image img:1)"),
        "{v:?}"
    );
    let v = verdict(
        &state,
        &host,
        "POST",
        "/containers/intruder/rename?name=ci-2",
        "",
    );
    assert_eq!(v, Verdict::Allow);
    let v = verdict(
        &state,
        &host,
        "POST",
        "/containers/intruder/rename?name=still-extra",
        "",
    );
    assert_eq!(v, Verdict::Allow, "an extra stays an extra");
}

#[test]
fn a_request_for_a_container_that_does_not_exist_is_left_to_the_engine() {
    let state = state(vec![entry("web")], &[], &[]);
    assert_eq!(
        verdict(&state, &[], "DELETE", "/containers/web", ""),
        Verdict::Allow
    );
}

#[test]
fn a_sharer_of_a_namespace_whose_owner_is_recreated_may_be_replaced() {
    let mut app = entry("app");
    app.spec
        .host_config
        .insert("NetworkMode".into(), json!("container:db"));
    let state = state(vec![entry("db"), app], &[], &[]);
    // db is missing: enforce creates it, and replaces app with it.
    let host = [live(&state, "app", &[])];
    assert_eq!(
        verdict(&state, &host, "DELETE", "/containers/app", ""),
        Verdict::Allow
    );
    let request = parse("DELETE", "/containers/app", "");
    assert_eq!(
        names_to_observe(&state, &request, &host),
        BTreeSet::from(["app".to_string(), "db".to_string()])
    );
    let host = [live(&state, "app", &[]), live(&state, "db", &[])];
    assert!(refused(&verdict(&state, &host, "DELETE", "/containers/app", "")).contains("app"));
}

#[test]
fn only_what_matters_is_observed() {
    let state = state(vec![entry("web"), entry("db")], &[], &[]);
    let x = [live(&state, "x", &[])];
    let names = |method, uri, body, affected: &[Observed]| {
        names_to_observe(&state, &parse(method, uri, body), affected)
    };
    assert!(names("POST", "/containers/create?name=x", "{}", &[]).is_empty());
    assert!(names("DELETE", "/containers/x", "", &x).is_empty());
    assert_eq!(
        names(
            "POST",
            "/containers/create?name=web-guestlist-new",
            "{}",
            &[]
        )
        .len(),
        1
    );
    // The renamed container is compared with the record of the name it takes.
    assert_eq!(
        names("POST", "/containers/x/rename?name=db-guestlist-new", "", &x),
        BTreeSet::from(["db".to_string(), "x".to_string()])
    );
    assert_eq!(names("POST", "/containers/prune", "", &[]).len(), 2);
    assert!(names("POST", "/containers/x/rename?name=y", "", &x).is_empty());
}

#[test]
fn the_guards_own_plugin_is_not_disabled_through_the_api() {
    let state = state(vec![], &[], &[]);
    for uri in [
        "/v1.41/plugins/guestlist-guard/disable",
        "/v1.41/plugins/guestlist-guard:latest/disable?force=1",
    ] {
        let v = verdict(&state, &[], "POST", uri, "");
        assert!(
            refused(&v).contains("plugin guestlist-guard guards"),
            "{v:?}"
        );
    }
    let v = verdict(&state, &[], "DELETE", "/plugins/guestlist-guard", "");
    assert!(matches!(v, Verdict::Refuse(_)));
    assert_eq!(
        verdict(&state, &[], "POST", "/plugins/other/disable", ""),
        Verdict::Allow
    );
    let request = parse("POST", "/plugins/guestlist-guard/disable", "");
    let seen = Seen {
        affected: &[],
        observed: &[],
        plugin: None,
        claims: state.claims(),
    };
    assert_eq!(
        decide(&state, &request, &seen),
        Verdict::Allow,
        "a proxy has no plugin"
    );
}

#[test]
fn an_extra_is_never_made_to_run_and_an_allowed_one_only_as_recorded() {
    let state = state(vec![entry("web")], &["label=team=a"], &["name=ci-*"]);
    let host = [
        stopped(live(&state, "web", &[("team", "a")])),
        stopped(live(&state, "intruder", &[("team", "a")])),
        stopped(live(&state, "web-guestlist-new", &[("team", "a")])),
        stopped(live(&state, "ci-1", &[("team", "a")])),
        stopped(live(&state, "theirs", &[("team", "b")])),
    ];
    for verb in ["start", "restart", "unpause"] {
        for name in ["intruder", "web-guestlist-new"] {
            let uri = format!("/containers/{name}/{verb}");
            let v = verdict(&state, &host, "POST", &uri, "");
            assert!(
                refused(&v).contains(&format!(
                    "refusing to {verb} container {name}: it is not on"
                )),
                "{uri}: {v:?}"
            );
        }
        for name in ["web", "ci-1", "theirs"] {
            let uri = format!("/containers/{name}/{verb}");
            assert_eq!(
                verdict(&state, &host, "POST", &uri, ""),
                Verdict::Allow,
                "{uri}"
            );
        }
    }
    // Changed, it would run in a configuration that is not the record's.
    let host = [changed(stopped(live(&state, "web", &[("team", "a")])))];
    let v = verdict(&state, &host, "POST", "/containers/web/start", "");
    assert!(
        refused(&v).contains("but changed image, so enforce replaces it"),
        "{v:?}"
    );
}

#[test]
fn a_network_change_of_a_protected_container_is_refused() {
    let state = state(vec![entry("web")], &[], &[]);
    let host = [live(&state, "web", &[]), live(&state, "extra", &[])];
    for verb in ["connect", "disconnect"] {
        let uri = format!("/networks/front/{verb}");
        let v = verdict(&state, &host, "POST", &uri, r#"{"Container":"web"}"#);
        assert!(
            refused(&v).contains(&format!("refusing to {verb} a network")),
            "{v:?}"
        );
        let v = verdict(&state, &host, "POST", &uri, r#"{"Container":"extra"}"#);
        assert_eq!(v, Verdict::Allow);
    }
    // enforce connects a container it created to the other networks of its record.
    let mut recorded = entry("web");
    recorded
        .spec
        .networks
        .insert("front".into(), Default::default());
    let state = state_with(recorded, &state);
    let mut created = stopped(live(&state, "web", &[]));
    created.status = Status::Created;
    let connect = r#"{"Container":"web"}"#;
    let host = [created.clone()];
    assert_eq!(
        verdict(&state, &host, "POST", "/networks/front/connect", connect),
        Verdict::Allow
    );
    let v = verdict(&state, &host, "POST", "/networks/other/connect", connect);
    assert!(
        refused(&v).contains("refusing to connect a network to container web"),
        "{v:?}"
    );
    let v = verdict(&state, &host, "POST", "/networks/front/disconnect", connect);
    assert!(refused(&v).contains("refusing to disconnect"), "{v:?}");
}

#[test]
fn what_removes_or_stops_containers_indirectly_is_judged_by_each_of_them() {
    let state = state(vec![entry("web")], &[], &[]);
    let web = live(&state, "web", &[]);
    let extra = live(&state, "extra", &[]);
    let host = [web.clone(), extra.clone()];
    let removal = Request::RemoveWithUsers {
        resource: crate::guard::route::Resource::Image,
        name: "img:1".into(),
        effect: Operation::Remove,
    };
    let v = judge(&state, &removal, &[extra.clone(), web.clone()], &host);
    assert!(
        refused(&v).contains("refusing to remove image img:1: it would remove container web"),
        "{v:?}"
    );
    assert_eq!(
        judge(&state, &removal, std::slice::from_ref(&extra), &host),
        Verdict::Allow
    );
    let pod = Request::Pod {
        operation: PodOperation::Change(Operation::Stop),
        pod: "p".into(),
    };
    assert!(
        refused(&judge(&state, &pod, std::slice::from_ref(&web), &host)).contains("to stop pod p")
    );
    let start = Request::Pod {
        operation: PodOperation::Run(Run::Start),
        pod: "p".into(),
    };
    let v = judge(&state, &start, &[stopped(extra)], &host);
    assert!(refused(&v).contains("refusing to start pod p: it would start container extra"));
}

#[test]
fn a_created_container_is_admitted_only_as_the_list_allows_it() {
    let state = state(vec![entry("web")], &["label=team=a"], &[]);
    let mut created = live(&state, "web", &[("team", "a")]);
    assert_eq!(admit(&state, state.claims(), &created, &[]), Verdict::Allow);
    // Networks the record has and the new container is still to be connected to: as enforce
    // creates it.
    let mut recorded = entry("web");
    recorded
        .spec
        .networks
        .insert("back".into(), Default::default());
    let with_networks = state_with(recorded.clone(), &state);
    assert_eq!(
        admit(&with_networks, with_networks.claims(), &created, &[]),
        Verdict::Allow
    );
    if let Some(spec) = &mut created.spec {
        spec.host_config.insert("Privileged".into(), json!(true));
    }
    let v = admit(&state, state.claims(), &created, &[]);
    assert!(refused(&v).contains("in host_config.Privileged"), "{v:?}");
    // The image gave it the scope's label, or did not.
    let outside = live(&state, "web", &[]);
    assert!(refused(&admit(&state, state.claims(), &outside, &[])).contains("outside the scope"));
    let extra = live(&state, "x", &[("team", "a")]);
    assert!(refused(&admit(&state, state.claims(), &extra, &[]))
        .contains("container x (image img:1) is not on"));
}

fn state_with(entry: Entry, like: &State) -> State {
    let mut state = like.clone();
    state.containers = vec![entry];
    state
}

#[test]
fn a_listed_name_goes_only_to_a_container_guestlist_manages() {
    let state = state(vec![entry("web")], &["label=team=a"], &[]);
    let body = r#"{"Image":"img:1"}"#;
    let v = verdict(&state, &[], "POST", "/containers/create?name=web", body);
    assert!(
        refused(&v).contains("outside the scope (label=team=a) under a name on this host's list")
    );
    let theirs = live(&state, "theirs", &[("team", "b")]);
    let v = verdict(
        &state,
        &[theirs],
        "POST",
        "/containers/theirs/rename?name=web",
        "",
    );
    assert!(refused(&v).contains("outside the scope"), "{v:?}");
    let claimed = r#"{"Image":"img:1","Labels":{"team":"a","io.kubernetes.pod.name":"p"}}"#;
    let v = verdict(&state, &[], "POST", "/containers/create?name=web", claimed);
    assert!(refused(&v).contains("carries Kubernetes's labels"), "{v:?}");
    // Swarm never creates through the API: a create with its labels is an extra.
    let forged = r#"{"Image":"img:1","Labels":{"team":"a","com.docker.swarm.task.id":"t"}}"#;
    let v = verdict(&state, &[], "POST", "/containers/create?name=x", forged);
    assert!(
        refused(&v).contains("container x (image img:1) is not on"),
        "{v:?}"
    );
}

#[test]
fn a_request_the_guard_cannot_read_is_refused_with_why() {
    let state = state(vec![], &[], &[]);
    let v = verdict(&state, &[], "POST", "/containers/x/frobnicate", "");
    assert!(
        refused(&v).starts_with("guestlist: refusing this request: POST /containers/x/frobnicate"),
        "{v:?}"
    );
}

#[test]
fn an_orchestrators_labels_exempt_a_create_only_where_it_is_known_to_run() {
    let mut state = state(vec![], &[], &[]);
    let body = r#"{"Image":"img:1","Labels":{"io.kubernetes.pod.name":"p"}}"#;
    let uri = "/containers/create?name=k8s_x";
    // A list from before claims were checked believes them, as guestlist did then.
    assert_eq!(verdict(&state, &[], "POST", uri, body), Verdict::Allow);
    state.orchestrators = Some(vec![]);
    let v = verdict(&state, &[], "POST", uri, body);
    assert!(
        refused(&v).contains("container k8s_x (image img:1) is not on"),
        "{v:?}"
    );
    state.orchestrators = Some(vec![Orchestrator::Kubernetes]);
    assert_eq!(verdict(&state, &[], "POST", uri, body), Verdict::Allow);
    // An extra claimed for an orchestrator not believed here is an extra to start, too.
    state.orchestrators = Some(vec![]);
    let mut forged = stopped(live(&state, "k8s_x", &[("io.kubernetes.pod.name", "p")]));
    forged.managed = state
        .claims()
        .owner(forged.labels.keys().map(String::as_str));
    let v = judge(
        &state,
        &parse("POST", "/containers/k8s_x/start", ""),
        &[forged],
        &[],
    );
    assert!(
        refused(&v).contains("refusing to start container k8s_x"),
        "{v:?}"
    );
}

#[test]
fn the_volumes_and_networks_a_record_names_are_protected() {
    let mut web = entry("web");
    web.spec
        .host_config
        .insert("Binds".into(), json!(["data:/data", "/srv:/srv"]));
    web.spec.networks.insert("front".into(), Default::default());
    web.spec
        .networks
        .insert("bridge".into(), Default::default());
    let state = state(vec![web], &[], &[]);
    let running = [live(&state, "web", &[])];
    use crate::guard::route::Resource;
    let create = |resource, name: &str| Request::CreateResource {
        resource,
        name: name.into(),
    };
    for (resource, name) in [(Resource::Volume, "data"), (Resource::Network, "front")] {
        let v = judge(&state, &create(resource, name), &[], &running);
        assert!(refused(&v).contains("the record of web names it"), "{v:?}");
        let removal = Request::RemoveWithUsers {
            resource,
            name: name.into(),
            effect: Operation::Remove,
        };
        let v = judge(&state, &removal, &[], &running);
        assert!(refused(&v).contains("the record of web names it"), "{v:?}");
    }
    for (resource, name) in [
        (Resource::Volume, "other"),
        (Resource::Network, "bridge"),
        (Resource::Volume, "/srv"),
    ] {
        assert_eq!(
            judge(&state, &create(resource, name), &[], &running),
            Verdict::Allow
        );
    }
    // A prune takes what a missing (or, for networks, stopped) listed container needs.
    let prune = |resource| Request::PruneResources { resource };
    assert_eq!(
        judge(&state, &prune(Resource::Network), &[], &running),
        Verdict::Allow
    );
    assert_eq!(
        judge(&state, &prune(Resource::Volume), &[], &running),
        Verdict::Allow
    );
    let stopped_web = [stopped(live(&state, "web", &[]))];
    let v = judge(&state, &prune(Resource::Network), &[], &stopped_web);
    assert!(
        refused(&v).contains("a prune would remove network front"),
        "{v:?}"
    );
    assert_eq!(
        judge(&state, &prune(Resource::Volume), &[], &stopped_web),
        Verdict::Allow
    );
    let v = judge(&state, &prune(Resource::Volume), &[], &[]);
    assert!(
        refused(&v).contains("a prune would remove volume data"),
        "{v:?}"
    );
}

#[test]
fn a_listed_name_is_not_taken_through_podmans_own_api() {
    let state = state(vec![entry("web")], &[], &[]);
    let create = Request::Create(Some(Create {
        name: Some("web".into()),
        image: "img:1".into(),
        labels: Default::default(),
        shares_processes_of: None,
        through_libpod: true,
    }));
    let v = judge(&state, &create, &[], &[]);
    assert!(refused(&v).contains("through Podman's own API"), "{v:?}");
}

#[test]
fn enforce_may_set_a_container_it_replaces_aside_and_put_it_back_nothing_else_may() {
    let state = state(vec![entry("web")], &[], &[]);
    let aside = "/v1.41/containers/web/rename?name=web-guestlist-old";
    // Stopped by enforce's replacement, which replaces it: it may be set aside.
    let host = [stopped(changed(live(&state, "web", &[])))];
    assert_eq!(verdict(&state, &host, "POST", aside, ""), Verdict::Allow);
    // In sync, or running, it may not: the plan would remove it as an extra.
    let host = [stopped(live(&state, "web", &[]))];
    assert!(matches!(
        verdict(&state, &host, "POST", aside, ""),
        Verdict::Refuse(_)
    ));
    let host = [changed(live(&state, "web", &[]))];
    assert!(matches!(
        verdict(&state, &host, "POST", aside, ""),
        Verdict::Refuse(_)
    ));
    // A stopped container set aside may take its name back; a running one may not.
    let back = "/v1.41/containers/web-guestlist-old/rename?name=web";
    let set_aside = stopped(changed(live(&state, "web-guestlist-old", &[])));
    assert_eq!(
        verdict(&state, &[set_aside], "POST", back, ""),
        Verdict::Allow
    );
    let running = changed(live(&state, "web-guestlist-old", &[]));
    assert!(matches!(
        verdict(&state, &[running], "POST", back, ""),
        Verdict::Refuse(_)
    ));
}
