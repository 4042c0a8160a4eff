//! Routing as each engine routes: one case per way a path is matched.

#![allow(clippy::unwrap_used)]

use super::*;
use Endpoint as E;

fn docker(method: &str, path: &str) -> Result<Routed, Unknown> {
    find(method, path, Dialect::Docker)
}

fn podman(method: &str, path: &str) -> Result<Routed, Unknown> {
    find(method, path, Dialect::Podman)
}

#[test]
fn every_template_compiles_for_both_engines() {
    assert!(!compiled(Dialect::Docker).is_empty());
    assert!(!compiled(Dialect::Podman).is_empty());
}

#[test]
fn container_references_with_a_slash_route_on_docker_as_link_aliases() {
    let r = docker("POST", "/v1.41/containers/web/db/stop").unwrap();
    assert_eq!(r.endpoint, E::Change(Operation::Stop));
    assert_eq!(r.subject.as_deref(), Some("web/db"));
    assert_eq!(r.version.as_deref(), Some("1.41"));
    assert_eq!(
        &"/v1.41/containers/web/db/stop"[r.subject_at.unwrap()],
        "web/db"
    );
    let r = docker("DELETE", "/containers/web/db").unwrap();
    assert_eq!(r.subject.as_deref(), Some("web/db"));
    assert_eq!(
        podman("POST", "/containers/web/db/stop"),
        Err(Unknown::None)
    );
}

#[test]
fn podman_decodes_the_variable_after_matching() {
    let r = podman("POST", "/v4.3.1/libpod/containers/we%62/stop").unwrap();
    assert_eq!(r.subject.as_deref(), Some("web"));
    assert!(r.libpod);
    let r = podman(
        "DELETE",
        "/v4.3.1/libpod/images/docker.io%2Flibrary%2Fbusybox",
    )
    .unwrap();
    assert_eq!(
        r.endpoint,
        E::RemoveWithUsers(Resource::Image, Operation::Remove)
    );
    assert_eq!(r.subject.as_deref(), Some("docker.io/library/busybox"));
    assert_eq!(
        podman("POST", "/containers/we%zz/stop"),
        Err(Unknown::BadVariable)
    );
}

#[test]
fn methods_match_exactly_and_unknown_routes_are_unknown() {
    assert_eq!(docker("post", "/containers/web/stop"), Err(Unknown::None));
    assert_eq!(
        docker("POST", "/containers/web/frobnicate"),
        Err(Unknown::None)
    );
    assert_eq!(docker("POST", "/containers/create/"), Err(Unknown::None));
    assert_eq!(
        docker("POST", "/v1.41/v1.41/containers/create"),
        Err(Unknown::None)
    );
    assert_eq!(docker("GET", "/containers/web/stop"), Err(Unknown::None));
}

#[test]
fn the_same_path_is_another_endpoint_on_each_engine() {
    assert_eq!(
        docker("DELETE", "/images/busybox").unwrap().endpoint,
        E::Harmless
    );
    assert_eq!(
        podman("DELETE", "/images/busybox").unwrap().endpoint,
        E::RemoveWithUsers(Resource::Image, Operation::Remove)
    );
    assert_eq!(
        docker("DELETE", "/libpod/images/busybox"),
        Err(Unknown::None)
    );
    assert_eq!(
        podman("DELETE", "/v4.3.1/libpod/images/remove")
            .unwrap()
            .endpoint,
        E::RemoveImages
    );
}

#[test]
fn a_path_two_routes_take_is_ambiguous() {
    // `{name:.*}` makes a checkpoint's removal also a container's removal on dockerd.
    assert!(matches!(
        docker("DELETE", "/containers/web/checkpoints/c1"),
        Err(Unknown::Several(_))
    ));
}

#[test]
fn versions_are_taken_as_each_router_takes_them() {
    assert_eq!(
        docker("POST", "/v1..41/containers/create")
            .unwrap()
            .version
            .as_deref(),
        Some("1..41")
    );
    assert_eq!(
        docker("POST", "/v1.41a/containers/create"),
        Err(Unknown::None)
    );
    assert_eq!(
        podman("POST", "/v4.3.1-dev/libpod/containers/create")
            .unwrap()
            .version
            .as_deref(),
        Some("4.3.1-dev")
    );
    let r = docker("DELETE", "/containers/v1").unwrap();
    assert_eq!(r.subject.as_deref(), Some("v1"));
}
