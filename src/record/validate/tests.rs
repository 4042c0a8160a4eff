//! The validator's reading of values the engines were sent (tests/validate.rs sends them again
//! and compares): per list kind, refused or taken.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use super::check;
use crate::record::spec::{ContainerSpec, EngineKind};

const ID: &str = "sha256:3a83edc9879f93654128e7482d597a9f016d5c20d035331715eb9d9255ebc91d";

fn spec(extra: Value) -> ContainerSpec {
    let mut spec = json!({"image": "nginx:1.27", "image_id": ID});
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    serde_json::from_value(spec).unwrap()
}

/// `field: message` of every refusal of `spec` named `name` in a list for `kind`.
fn refusals(name: &str, spec: &ContainerSpec, kind: Option<EngineKind>) -> Vec<String> {
    check(&[(name.to_string(), spec)], kind)
        .into_iter()
        .map(|p| format!("{}: {}", p.field(), p.message))
        .collect()
}

/// Which of (any engine, Docker, Podman) lists refuse `spec`.
fn refused_for(spec: &ContainerSpec) -> [bool; 3] {
    [None, Some(EngineKind::Docker), Some(EngineKind::Podman)]
        .map(|kind| !refusals("web", spec, kind).is_empty())
}

const ALL: [bool; 3] = [true, true, true];
const DOCKER: [bool; 3] = [false, true, false];
const PODMAN: [bool; 3] = [false, false, true];
const NONE: [bool; 3] = [false, false, false];

fn host(fields: Value) -> ContainerSpec {
    spec(json!({ "host_config": fields }))
}

fn config(fields: Value) -> ContainerSpec {
    spec(json!({ "config": fields }))
}

#[test]
fn values_are_refused_for_the_engines_that_refuse_them() {
    let table = [
        (host(json!({"Memory": -1})), DOCKER),
        (host(json!({"Memory": 6291455})), DOCKER),
        (host(json!({"Memory": 6291456})), NONE),
        (host(json!({"Memory": 67108864, "MemorySwap": -1})), NONE),
        (host(json!({"Memory": 67108864, "MemorySwap": -2})), NONE),
        (host(json!({"MemorySwap": 67108864})), ALL),
        (
            host(json!({"Memory": 67108864, "MemorySwap": 33554432})),
            ALL,
        ),
        (
            host(json!({"Memory": 67108864, "MemorySwap": 67108864})),
            NONE,
        ),
        (host(json!({"MemoryReservation": -5})), NONE),
        (host(json!({"MemoryReservation": 1000})), DOCKER),
        (
            host(json!({"Memory": 67108864, "MemoryReservation": 134217728})),
            ALL,
        ),
        (host(json!({"ShmSize": -1})), DOCKER),
        (host(json!({"CpuShares": -1})), ALL),
        (host(json!({"CpuShares": 2})), NONE),
        (host(json!({"NanoCpus": -1})), DOCKER),
        (
            host(json!({"NanoCpus": 1000000000, "CpuQuota": 50000})),
            ALL,
        ),
        (host(json!({"CpuPeriod": 999})), ALL),
        (host(json!({"CpuPeriod": 1000000})), NONE),
        (host(json!({"CpuPeriod": 1000001})), ALL),
        (host(json!({"CpuQuota": 999})), ALL),
        (host(json!({"CpuQuota": -1})), NONE),
        (host(json!({"PidsLimit": -2})), NONE),
        (host(json!({"BlkioWeight": 9})), NONE),
        (host(json!({"OomScoreAdj": 1000})), NONE),
        (host(json!({"OomScoreAdj": -1001})), ALL),
        (host(json!({"MemorySwappiness": -1})), NONE),
        (host(json!({"MemorySwappiness": -2})), DOCKER),
        (host(json!({"MemorySwappiness": 101})), ALL),
        (config(json!({"StopTimeout": -2})), NONE),
        (config(json!({"StopSignal": "SIGFOO"})), ALL),
        (config(json!({"StopSignal": "sigterm"})), NONE),
        (config(json!({"StopSignal": "RTMIN+15"})), NONE),
        (config(json!({"StopSignal": "RTMIN+16"})), ALL),
        (config(json!({"StopSignal": "0"})), ALL),
        (config(json!({"StopSignal": "65"})), PODMAN),
        (config(json!({"Env": ["=foo"]})), ALL),
        (config(json!({"Env": ["A", "A=", "A B=1"]})), NONE),
        (config(json!({"WorkingDir": "tmp"})), ALL),
        (
            config(json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 999999}})),
            DOCKER,
        ),
        (config(json!({"Hostname": "h".repeat(65)})), ALL),
        (
            host(json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}})),
            ALL,
        ),
        (
            host(json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}})),
            DOCKER,
        ),
        (
            host(json!({"RestartPolicy": {"Name": "", "MaximumRetryCount": 1}})),
            NONE,
        ),
        (
            host(json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}})),
            ALL,
        ),
        (host(json!({"IpcMode": "bogus"})), ALL),
        (host(json!({"IpcMode": "shareable"})), NONE),
        (host(json!({"PidMode": "bogus"})), PODMAN),
        (host(json!({"PidMode": "container:"})), ALL),
        (host(json!({"UTSMode": "private"})), NONE),
        (host(json!({"CgroupnsMode": "bogus"})), DOCKER),
        (host(json!({"Isolation": "hyperv"})), DOCKER),
        (host(json!({"NetworkMode": "container"})), ALL),
        (host(json!({"NetworkMode": "Bridge"})), NONE),
        (
            host(json!({"CapAdd": ["net_admin", "CAP_SYS_TIME", "ALL"]})),
            NONE,
        ),
        (host(json!({"CapAdd": ["BOGUS"]})), ALL),
        (
            host(json!({"SecurityOpt": ["no-new-privileges=maybe"]})),
            ALL,
        ),
        (
            host(json!({"SecurityOpt": ["label:disable", "seccomp=unconfined"]})),
            NONE,
        ),
        (
            host(json!({"ExtraHosts": ["host:::1", "host:host-gateway", "ho st:1.2.3.4"]})),
            NONE,
        ),
        (host(json!({"ExtraHosts": ["host:notanip"]})), DOCKER),
        (host(json!({"ExtraHosts": ["host=1.2.3.4"]})), ALL),
        (host(json!({"Dns": ["notanip"]})), PODMAN),
        (
            host(json!({"PortBindings": {"80/tcp": [{"HostIp": "::1", "HostPort": "65535"}]}})),
            NONE,
        ),
        (
            host(json!({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "65536"}]}})),
            DOCKER,
        ),
        (
            host(json!({"PortBindings": {"80/tcp": [{"HostIp": "[::1]", "HostPort": ""}]}})),
            PODMAN,
        ),
        (
            host(json!({"PortBindings": {"80-81/tcp": [{"HostIp": "", "HostPort": ""}]}})),
            ALL,
        ),
        (config(json!({"ExposedPorts": {"80/sctp": {}}})), PODMAN),
        (
            host(json!({"Binds": ["/src:/data:ro,z", "vol:/v:nocopy", "/anon"]})),
            NONE,
        ),
        (host(json!({"Binds": ["/src:/data:bogus"]})), ALL),
        (host(json!({"Binds": ["/src:/data:O"]})), DOCKER),
        (host(json!({"Binds": ["/src:/data:"]})), PODMAN),
        (host(json!({"Binds": ["/src:/data:rw,ro"]})), ALL),
        (host(json!({"Binds": ["./rel:/data"]})), ALL),
        (host(json!({"Binds": ["/src:/"]})), ALL),
        (
            host(json!({"Binds": ["v:/data"], "Mounts": [{"Type": "tmpfs", "Target": "/data/"}]})),
            ALL,
        ),
        (
            host(json!({"Mounts": [{"Type": "bind", "Source": "rel", "Target": "/data"}]})),
            ALL,
        ),
        (
            host(json!({"Mounts": [{"Type": "volume", "Source": "/abs", "Target": "/data"}]})),
            ALL,
        ),
        (
            host(json!({"Mounts": [{"Type": "volume", "Target": "/data", "BindOptions": {}}]})),
            DOCKER,
        ),
        (
            host(
                json!({"Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": -1}}]}),
            ),
            ALL,
        ),
        (host(json!({"Tmpfs": {"/run:size=1m": ""}})), NONE),
        (host(json!({"Tmpfs": {"run": ""}})), ALL),
        (
            host(
                json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "mrw"}]}),
            ),
            NONE,
        ),
        (
            host(
                json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": ""}]}),
            ),
            ALL,
        ),
        (
            host(
                json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "RWM"}]}),
            ),
            PODMAN,
        ),
        (
            host(json!({"Ulimits": [{"Name": "NOFILE", "Soft": 1, "Hard": 1}]})),
            PODMAN,
        ),
        (
            host(json!({"Ulimits": [{"Name": "RLIMIT_CORE", "Soft": 0, "Hard": 0}]})),
            ALL,
        ),
        (
            host(json!({"Ulimits": [{"Name": "nofile", "Soft": 2048, "Hard": 1024}]})),
            ALL,
        ),
        (host(json!({"VolumesFrom": [""]})), ALL),
    ];
    for (spec, expected) in table {
        let found = refused_for(&spec);
        assert_eq!(
            found,
            expected,
            "{spec:?}: {:?}",
            refusals("web", &spec, Some(EngineKind::Podman))
        );
    }
}

#[test]
fn names_references_and_ids_are_read_by_their_grammars() {
    for (name, expected) in [
        ("w", DOCKER),
        ("web_", NONE),
        ("a..b", NONE),
        ("..", ALL),
        ("we b", ALL),
        ("_web", ALL),
    ] {
        assert_eq!(refused_for(&spec(json!({}))).map(|_| false), NONE);
        let found = [None, Some(EngineKind::Docker), Some(EngineKind::Podman)]
            .map(|kind| !refusals(name, &spec(json!({})), kind).is_empty());
        assert_eq!(found, expected, "{name}");
    }
    let references = [
        ("docker.io/library/nginx:1.27", NONE),
        ("localhost:5000/x:y", NONE),
        ("Registry.Example.com/x", NONE),
        ("a__b", NONE),
        ("x:_t", NONE),
        (ID, NONE),
        ("3a83edc98", NONE),
        ("[::1]:5000/x", PODMAN),
        ("sha256:zzz", PODMAN),
        ("Nginx:1", ALL),
        ("nginx:", ALL),
        ("a___b", ALL),
        ("x@md5:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ALL),
        ("", ALL),
    ];
    for (reference, expected) in references {
        let s = spec(json!({ "image": reference }));
        assert_eq!(refused_for(&s), expected, "{reference:?}");
    }
    let found = refusals("web", &spec(json!({"image": "Nginx:1"})), None);
    assert!(found[0].contains("did you mean \"nginx:1\"?"), "{found:?}");
    for id in ["sha256:1", "3a83edc9879f", &ID.to_uppercase(), &ID[7..]] {
        assert_eq!(refused_for(&spec(json!({ "image_id": id }))), ALL, "{id}");
    }
}

#[test]
fn a_refusal_names_the_field_the_value_the_rule_and_the_fix() {
    let s = host(json!({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "65536"}]}}));
    let found = refusals("web", &s, Some(EngineKind::Docker));
    assert_eq!(
        found,
        ["host_config.PortBindings.80/tcp[0].HostPort: \"65536\": Docker refuses this host port; \
          write a port from 0 to 65535, a rising range such as \"8080-8081\" (not on Podman), or \
          \"\" for any free port"]
    );
    let found = refusals("we b", &spec(json!({})), None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("name: \"we b\": the engine refuses this name"),
        "{found:?}"
    );
    assert!(
        found[0].ends_with("rename it, say to \"we-b\""),
        "{found:?}"
    );
}
