//! The guard's rule, one case per way a request meets the list.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::guard::request::parse;
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

/// The verdict on `method uri` with `body`, the request naming `target` (by name) on a
/// host running `host`.
fn verdict(state: &State, host: &[Observed], method: &str, uri: &str, body: &str) -> Verdict {
    let request = parse(method, uri, Some(body.as_bytes()));
    let target = match &request {
        Request::Change { container, .. } => host
            .iter()
            .find(|o| o.name == *container || o.id.starts_with(container.as_str())),
        _ => None,
    };
    decide(state, &request, target, host, Some("guestlist-guard"))
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
        ("GET", "/containers/web/logs?follow=1"),
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
    let mut temporary = live(&state, "web-guestlist-new", &[]);
    temporary.spec = None;
    let host = [temporary];
    let rename = "/v1.41/containers/web-guestlist-new/rename?name=web";
    assert_eq!(verdict(&state, &host, "POST", rename, ""), Verdict::Allow);
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
    for name in ["intruder", "ci-1", "theirs"] {
        for (method, uri) in CHANGES {
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
        ("web", r#"{"Image":"img:1"}"#),
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
    let v = verdict(
        &state,
        &[],
        "POST",
        "/v4.3.0/libpod/containers/create",
        body,
    );
    assert!(refused(&v).contains("container x (image busybox)"));
}

#[test]
fn a_create_whose_body_was_not_seen_is_refused() {
    let state = state(vec![entry("web")], &[], &[]);
    let request = parse("POST", "/containers/create?name=web", None);
    let v = decide(&state, &request, None, &[], None);
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
    let request = parse("DELETE", "/containers/app", None);
    assert_eq!(
        names_to_observe(&state, &request, Some("app")),
        BTreeSet::from(["app".to_string(), "db".to_string()])
    );
    let host = [live(&state, "app", &[]), live(&state, "db", &[])];
    assert!(refused(&verdict(&state, &host, "DELETE", "/containers/app", "")).contains("app"));
}

#[test]
fn only_what_matters_is_observed() {
    let state = state(vec![entry("web"), entry("db")], &[], &[]);
    let names =
        |method, uri, target| names_to_observe(&state, &parse(method, uri, Some(b"{}")), target);
    assert!(names("POST", "/containers/create?name=x", None).is_empty());
    assert!(names("DELETE", "/containers/x", Some("x")).is_empty());
    assert_eq!(
        names("POST", "/containers/create?name=web-guestlist-new", None).len(),
        1
    );
    assert_eq!(
        names(
            "POST",
            "/containers/x/rename?name=db-guestlist-new",
            Some("x")
        )
        .len(),
        1
    );
    assert_eq!(names("POST", "/containers/prune", None).len(), 2);
    assert!(names("GET", "/containers/json", None).is_empty());
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
    let request = parse("POST", "/plugins/guestlist-guard/disable", None);
    assert_eq!(
        decide(&state, &request, None, &[], None),
        Verdict::Allow,
        "a proxy has no plugin"
    );
}
