//! Requests read as the engines read them: one case per way a request can be spelled.

#![allow(clippy::unwrap_used)]

use super::*;

fn incoming<'a>(method: &'a str, target: &'a str, body: Option<&'a [u8]>) -> Incoming<'a> {
    Incoming {
        method,
        target,
        content_types: &[],
        has_body: body.is_some_and(|b| !b.is_empty()),
        body,
    }
}

fn docker(method: &str, target: &str, body: Option<&str>) -> Request {
    read(
        incoming(method, target, body.map(str::as_bytes)),
        Dialect::Docker,
    )
    .request
}

fn podman(method: &str, target: &str, body: Option<&str>) -> Request {
    read(
        incoming(method, target, body.map(str::as_bytes)),
        Dialect::Podman,
    )
    .request
}

fn change(operation: Operation, container: &str) -> Request {
    Request::Change {
        operation,
        container: container.into(),
        to: None,
    }
}

fn refusal(request: Request) -> String {
    match request {
        Request::Refused(why) => why,
        other => panic!("read as {other:?}"),
    }
}

#[test]
fn removals_are_read_however_the_path_is_spelled() {
    for target in [
        "/containers/web",
        "/v1.41/containers/web",
        "/v1.45/containers/web?force=1&v=0",
        "/containers%2Fweb",
        "/v1.41%2Fcontainers%2Fweb",
        "http://d/v1.51/containers/web?force=1",
        "http:/containers/web",
        "/containers/we%62",
    ] {
        assert_eq!(
            docker("DELETE", target, None),
            change(Operation::Remove, "web"),
            "{target}"
        );
    }
    assert_eq!(
        podman("DELETE", "/v4.3.1/libpod/containers/web?force=true", None),
        change(Operation::Remove, "web")
    );
    assert_eq!(
        podman("DELETE", "/containers/we%62", None),
        change(Operation::Remove, "web")
    );
}

#[test]
fn the_verb_in_an_encoded_path_is_read() {
    assert_eq!(
        docker("POST", "/containers/web%2Fstop", None),
        change(Operation::Stop, "web")
    );
    assert!(matches!(
        docker(
            "POST",
            "/v1.41/containers%2Fcreate?name=x",
            Some(r#"{"Image":"i"}"#)
        ),
        Request::Create(Some(_))
    ));
    // Podman routes the escaped path: no endpoint, so refused as unknown.
    assert!(
        refusal(podman("POST", "/containers/web%2Fstop", None)).contains("not an engine endpoint")
    );
}

#[test]
fn unclean_malformed_and_unknown_targets_are_refused_with_the_reason() {
    assert!(refusal(docker("DELETE", "//containers/web", None)).contains("clean form"));
    assert!(refusal(docker("DELETE", "/containers/./web", None)).contains("clean form"));
    assert!(refusal(docker("DELETE", "/containers/%zz", None)).contains("malformed"));
    let unknown = refusal(docker("POST", "/containers/web/frobnicate", None));
    assert!(
        unknown.contains("POST /containers/web/frobnicate"),
        "{unknown}"
    );
    assert!(refusal(docker("delete", "/containers/web", None)).contains("not an engine endpoint"));
    assert!(refusal(docker("PATCH", "/containers/web", None)).contains("not an engine endpoint"));
}

#[test]
fn each_container_operation_is_read() {
    for (verb, op) in [
        ("stop", Operation::Stop),
        ("kill", Operation::Kill),
        ("pause", Operation::Pause),
        ("update", Operation::Update),
    ] {
        let target = format!("/v1.41/containers/web/{verb}?t=3");
        assert_eq!(docker("POST", &target, None), change(op, "web"));
    }
    for (verb, run) in [
        ("start", Run::Start),
        ("restart", Run::Restart),
        ("unpause", Run::Unpause),
    ] {
        let target = format!("/containers/web/{verb}");
        assert_eq!(
            docker("POST", &target, None),
            Request::Run {
                run,
                container: "web".into()
            }
        );
    }
    for (method, target) in [
        ("POST", "/containers/web/exec"),
        ("POST", "/containers/web/attach?stream=1"),
        ("POST", "/exec/abc/start"),
        ("DELETE", "/images/busybox"),
        ("POST", "/images/create?fromImage=busybox"),
        ("POST", "/build"),
    ] {
        assert_eq!(
            docker(method, target, None),
            Request::Harmless,
            "{method} {target}"
        );
    }
    // Volumes and networks a record may name.
    assert_eq!(
        docker(
            "POST",
            "/networks/create",
            Some(r#"{"name":"front","Internal":true}"#)
        ),
        Request::CreateResource {
            resource: Resource::Network,
            name: "front".into()
        }
    );
    assert_eq!(
        docker("DELETE", "/volumes/data", None),
        Request::RemoveWithUsers {
            resource: Resource::Volume,
            name: "data".into(),
            effect: Operation::Remove,
        }
    );
    assert_eq!(
        docker("POST", "/networks/prune", None),
        Request::PruneResources {
            resource: Resource::Network
        }
    );
}

#[test]
fn a_link_alias_is_the_container_it_names() {
    assert_eq!(
        docker("POST", "/containers/web/db/stop", None),
        change(Operation::Stop, "web/db")
    );
    // Removing a link changes the container that holds it.
    assert_eq!(
        docker("DELETE", "/containers/web/db?link=1", None),
        change(Operation::Update, "web")
    );
}

#[test]
fn a_rename_carries_its_new_name_given_once() {
    assert_eq!(
        docker(
            "POST",
            "/v1.41/containers/web-guestlist-new/rename?name=web",
            None
        ),
        Request::Change {
            operation: Operation::Rename,
            container: "web-guestlist-new".into(),
            to: Some("web".into()),
        }
    );
    assert!(
        refusal(docker("POST", "/containers/x/rename?name=a&name=b", None))
            .contains("more than once")
    );
    assert!(refusal(docker("POST", "/containers/x/rename?NAME=web", None)).contains("spells"));
    assert!(refusal(docker("POST", "/containers/x/rename?name=a;name=b", None)).contains(";"));
    assert!(refusal(docker("POST", "/containers/x/rename", None)).contains("without a new name"));
}

#[test]
fn a_form_body_or_a_body_where_none_belongs_is_refused() {
    let form = Incoming {
        content_types: &["application/x-www-form-urlencoded"],
        has_body: true,
        ..incoming("POST", "/containers/x/rename?name=ok", Some(b"name=web"))
    };
    assert!(refusal(read(form, Dialect::Docker).request).contains("form body"));
    let hidden = Incoming {
        has_body: true,
        ..incoming("POST", "/containers/x/stop", None)
    };
    assert!(refusal(read(hidden, Dialect::Docker).request).contains("takes no body"));
}

#[test]
fn old_api_versions_are_refused_for_changes() {
    for version in ["1.23", "1.12", "1", "0.99", "1..41"] {
        let target = format!("/v{version}/containers/web/start");
        assert!(
            refusal(docker("POST", &target, None)).contains("1.24"),
            "{version}"
        );
    }
    assert!(matches!(
        docker("POST", "/v1.24/containers/web/start", None),
        Request::Run { .. }
    ));
    assert!(matches!(
        docker("POST", "/v01.041/containers/web/start", None),
        Request::Run { .. }
    ));
}

#[test]
fn a_create_is_read_from_query_and_body_as_the_engine_reads_them() {
    let body = r#"{"Image":"busybox:1","Labels":{"team":"web"},"Cmd":["sh"]}"#;
    assert_eq!(
        docker(
            "POST",
            "/v1.41/containers/create?name=web&platform=",
            Some(body)
        ),
        Request::Create(Some(Create {
            name: Some("web".into()),
            image: "busybox:1".into(),
            labels: HashMap::from([("team".into(), "web".into())]),
            shares_processes_of: None,
            through_libpod: false,
        }))
    );
    let folded = r#"{"IMAGE":"busybox:1","labels":{"team":"web"}}"#;
    assert_eq!(
        docker("POST", "/containers/create?name=%2Fweb", Some(folded)),
        docker("POST", "/containers/create?name=web", Some(body))
    );
    let by_path = r#"{"Image":"i","HostConfig":{"PidMode":"ns:/proc/1/ns/pid"}}"#;
    assert!(refusal(docker("POST", "/containers/create", Some(by_path))).contains("by its path"));
    let joined = r#"{"Image":"i","hostconfig":{"PidMode":"container:web"}}"#;
    match docker("POST", "/containers/create", Some(joined)) {
        Request::Create(Some(c)) => assert_eq!(c.shares_processes_of.as_deref(), Some("web")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        docker("POST", "/containers/create", Some("{}")),
        Request::Create(Some(Create::default()))
    );
    assert_eq!(
        docker("POST", "/containers/create?name=x", None),
        Request::Create(None)
    );
    for (body, why) in [
        (r#"{"Image":"a","image":"b"}"#, "same field"),
        (r#"{"Image":"a"} x"#, "after"),
        (
            r#"{"Image":"a","Privileged":true}"#,
            "belongs in HostConfig",
        ),
        (
            r#"{"Image":"a","privilegeD":true}"#,
            "belongs in HostConfig",
        ),
        (r#"{"Image":1}"#, "not a string"),
        (r#"{"Labels":{"a":1}}"#, "not a string"),
        ("[]", "not a JSON object"),
        ("null", "not a JSON object"),
    ] {
        let got = refusal(docker("POST", "/containers/create", Some(body)));
        assert!(got.contains(why), "{body}: {got}");
    }
}

#[test]
fn podman_names_a_compatible_create_by_its_query_and_its_own_by_the_body() {
    let body = r#"{"Name":"web","Image":"i"}"#;
    let named = |r: Request| match r {
        Request::Create(Some(c)) => c.name,
        other => panic!("{other:?}"),
    };
    // Podman sets the body's name to the query's, even when the query has none.
    assert_eq!(
        named(podman("POST", "/containers/create", Some(body))),
        None
    );
    assert_eq!(
        named(podman("POST", "/containers/create?name=q", Some(body))),
        Some("q".into())
    );
    assert_eq!(
        named(docker("POST", "/containers/create", Some(body))),
        None
    );
    let libpod = r#"{"NAME":"web","image":"i","labels":{"team":"web"}}"#;
    assert_eq!(
        named(podman(
            "POST",
            "/v4.3.1/libpod/containers/create",
            Some(libpod)
        )),
        Some("web".into())
    );
    let rootfs = r#"{"name":"r","rootfs":"/"}"#;
    match podman("POST", "/v4.3.1/libpod/containers/create", Some(rootfs)) {
        Request::Create(Some(c)) => assert_eq!(c.image, "rootfs:/"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_network_connect_names_its_container_in_the_body() {
    let body = r#"{"container":"web","EndpointConfig":{"Aliases":["a"]}}"#;
    let read = read(
        incoming("POST", "/networks/front/connect", Some(body.as_bytes())),
        Dialect::Docker,
    );
    assert_eq!(
        read.request,
        Request::Change {
            operation: Operation::Connect,
            container: "web".into(),
            to: Some("front".into()),
        }
    );
    let forward = read.forward.unwrap();
    let sent: Value = serde_json::from_slice(&forward.body_with("0123abc").unwrap()).unwrap();
    assert_eq!(sent["container"], "0123abc");
    assert_eq!(sent["EndpointConfig"]["Aliases"][0], "a");
    assert!(
        refusal(docker("POST", "/networks/front/disconnect", Some("{}")))
            .contains("names no container")
    );
}

#[test]
fn the_proxy_forwards_the_path_it_read_with_the_container_it_resolved() {
    let read = read(
        incoming("POST", "http://d/v1.41/containers%2Fweb/stop?t=1", None),
        Dialect::Docker,
    );
    let forward = read.forward.unwrap();
    assert_eq!(
        forward.target_with(Some("abc123")),
        "/v1.41/containers/abc123/stop?t=1"
    );
    let read = super::read(
        incoming("POST", "/v1.41/containers/a%20b/start", None),
        Dialect::Docker,
    );
    assert_eq!(
        read.forward.unwrap().target_with(None),
        "/v1.41/containers/a%20b/start"
    );
    // A link's removal names its parent for judging, and is sent as it came.
    let read = super::read(
        incoming("DELETE", "/containers/web/db?link=1", None),
        Dialect::Docker,
    );
    assert_eq!(
        read.forward.unwrap().target_with(Some("f00")),
        "/containers/web/db?link=1"
    );
    let read = super::read(
        incoming("DELETE", "/v4.3.1/libpod/volumes/da%74a?force=true", None),
        Dialect::Podman,
    );
    assert_eq!(
        read.forward.unwrap().target_with(Some("data1")),
        "/v4.3.1/libpod/volumes/data1?force=true"
    );
    let read = super::read(
        incoming("POST", "/v4.3.1/libpod/containers/we%62/stop", None),
        Dialect::Podman,
    );
    assert_eq!(
        read.forward.unwrap().target_with(Some("f00")),
        "/v4.3.1/libpod/containers/f00/stop"
    );
    let read = super::read(
        incoming("POST", "/images/create?fromImage=a%2Fb", None),
        Dialect::Docker,
    );
    assert_eq!(
        read.forward.unwrap().target_with(None),
        "/images/create?fromImage=a%2Fb"
    );
}

#[test]
fn podman_endpoints_that_remove_or_create_containers_are_read() {
    assert_eq!(
        podman("DELETE", "/v4.3.1/libpod/images/busybox?force=true", None),
        Request::RemoveWithUsers {
            resource: Resource::Image,
            name: "busybox".into(),
            effect: Operation::Remove,
        }
    );
    assert_eq!(
        podman(
            "DELETE",
            "/v4.3.1/libpod/images/remove?images=a&images=b&force=true",
            None
        ),
        Request::RemoveImages {
            images: vec!["a".into(), "b".into()],
            all: false
        }
    );
    assert_eq!(
        podman("POST", "/v4.3.1/libpod/system/prune", None),
        Request::Prune
    );
    assert!(refusal(podman(
        "POST",
        "/v4.3.1/libpod/play/kube",
        Some("kind: Pod")
    ))
    .contains("kube"));
    assert!(refusal(podman(
        "DELETE",
        "/v4.3.1/libpod/containers/web?depend=true",
        None
    ))
    .contains("depend"));
    assert!(matches!(
        podman(
            "POST",
            "/v4.3.1/libpod/pods/create",
            Some(r#"{"name":"p","labels":{"a":"b"}}"#)
        ),
        Request::PodCreate { infra: Some(_) }
    ));
    assert_eq!(
        podman(
            "POST",
            "/v4.3.1/libpod/pods/create",
            Some(r#"{"name":"p","no_infra":true}"#)
        ),
        Request::PodCreate { infra: None }
    );
}

#[test]
fn swarm_membership_is_refused() {
    assert!(refusal(docker("POST", "/v1.41/swarm/init", Some("{}"))).contains("swarm"));
    assert!(refusal(docker("POST", "/swarm/join", Some("{}"))).contains("swarm"));
    assert_eq!(
        docker("POST", "/services/create", Some("{}")),
        Request::Harmless
    );
}

#[test]
fn only_bodies_that_decide_are_wanted() {
    assert!(wants_body(
        "POST",
        "/v1.41/containers/create?name=x",
        Dialect::Docker
    ));
    assert!(wants_body("POST", "/containers%2Fcreate", Dialect::Docker));
    assert!(wants_body("POST", "/networks/n/connect", Dialect::Docker));
    assert!(!wants_body(
        "POST",
        "/v1.41/containers/x/stop",
        Dialect::Docker
    ));
    assert!(!wants_body("POST", "/build", Dialect::Docker));
    assert!(!wants_body("POST", "/containers%2Fcreate", Dialect::Podman));
}
