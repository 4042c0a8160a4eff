//! Capture, creation and comparison on inspect output as the engines write it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;
use std::collections::HashMap;

const ID: &str = "476ec8cd91b7aaaabbbbccccddddeeeeffff0000111122223333444455556666";
const VOLUME: &str = "3cdcc3b66d9a2f4cad833dad152c7e9e67dcbe25f59eec93dcb441cf09b25254";
pub(super) const IMAGE_VOLUME: &str =
    "987568a8a0fe50a81c690fe6e6513f99a070d77c3e1699e16929194d660e7618";

pub(super) fn defaults() -> EngineDefaults {
    EngineDefaults {
        kind: EngineKind::Docker,
        runtime: "runc".into(),
        log_driver: "json-file".into(),
        cgroupns_mode: "host".into(),
        endpoint_mac: true,
    }
}

pub(super) fn image() -> Value {
    json!({
        "ExposedPorts": {"7000/tcp": {}},
        "Env": ["IMG_ENV=from-image", "PATH=/bin"],
        "Cmd": ["sleep", "3600"],
        "Volumes": {"/vol": {}},
        "WorkingDir": "/tmp",
        "Labels": {"img.label": "from-image"},
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000u64}
    })
}

/// Inspect output of `docker run -d --network probenet --network-alias web --ip 10.77.0.5
/// -p 127.0.0.1:8081:80 -v /data -m 64m --init probe:1`, captured on Docker 20.10.
pub(super) fn inspect() -> Value {
    json!({
        "Id": ID,
        "Image": "sha256:6ede",
        "Config": {
            "Hostname": "476ec8cd91b7", "Domainname": "", "User": "",
            "AttachStdin": false, "Tty": false,
            "ExposedPorts": {"7000/tcp": {}, "80/tcp": {}},
            "Env": ["IMG_ENV=from-image", "PATH=/bin"],
            "Cmd": ["sleep", "3600"],
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000u64},
            "Image": "probe:1",
            "Volumes": {"/data": {}, "/vol": {}},
            "WorkingDir": "/tmp", "Entrypoint": null, "OnBuild": null,
            "Labels": {"img.label": "from-image", "app": "web"}
        },
        "HostConfig": {
            "Binds": null, "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": "probenet",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "CgroupnsMode": "host", "Dns": [], "IpcMode": "private", "ShmSize": 67108864,
            "Runtime": "runc", "ConsoleSize": [0, 0], "Memory": 67108864,
            "MemorySwap": 134217728, "MemorySwappiness": null, "PidsLimit": null,
            "MaskedPaths": ["/proc/asound"], "ReadonlyPaths": ["/proc/bus"], "Init": true
        },
        "NetworkSettings": {"Networks": {"probenet": {
            "IPAMConfig": {"IPv4Address": "10.77.0.5"}, "Links": null,
            "Aliases": ["web", "476ec8cd91b7"], "IPAddress": "10.77.0.5",
            "MacAddress": "02:42:0a:4d:00:05", "DriverOpts": null
        }}},
        "Mounts": [
            {"Type": "volume", "Name": VOLUME, "Destination": "/data", "RW": true},
            {"Type": "volume", "Name": IMAGE_VOLUME, "Destination": "/vol", "RW": true}
        ]
    })
}

pub(super) fn capture_with(inspect: &Value, image: Option<&Value>) -> ContainerSpec {
    let names = HashMap::from([("a".repeat(64), "db".to_string())]);
    let defaults = defaults();
    let ctx = CaptureContext {
        image_config: image,
        defaults: &defaults,
        names_by_id: &names,
    };
    capture(inspect, &ctx).unwrap()
}

#[test]
fn capture_keeps_what_the_user_set_and_nothing_else() {
    let image = image();
    let spec = capture_with(&inspect(), Some(&image));
    assert_eq!(spec.image, "probe:1");
    assert_eq!(spec.image_id, "sha256:6ede");
    assert_eq!(
        Value::Object(spec.config.clone()),
        json!({"ExposedPorts": {"80/tcp": {}}, "Labels": {"app": "web"}, "Volumes": {"/data": {}}})
    );
    assert_eq!(
        Value::Object(spec.host_config.clone()),
        json!({
            "NetworkMode": "probenet",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]},
            "Memory": 67108864, "Init": true,
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}
        })
    );
    assert_eq!(
        Value::Object(spec.networks["probenet"].clone()),
        json!({"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.77.0.5"}})
    );
    assert_eq!(spec.anonymous_volumes.len(), 2);
    assert_eq!(spec.anonymous_volumes[0].destination, "/data");
    assert_eq!(spec.anonymous_volumes[0].name, VOLUME);
}

#[test]
fn without_the_image_everything_is_kept() {
    let spec = capture_with(&inspect(), None);
    assert_eq!(
        spec.config["Env"],
        json!(["IMG_ENV=from-image", "PATH=/bin"])
    );
    assert_eq!(spec.config["Cmd"], json!(["sleep", "3600"]));
}

#[test]
fn a_user_hostname_is_kept_and_a_default_one_is_not() {
    let mut i = inspect();
    assert!(!capture_with(&i, None).config.contains_key("Hostname"));
    i["Config"]["Hostname"] = json!("db.internal");
    assert_eq!(
        capture_with(&i, None).config["Hostname"],
        json!("db.internal")
    );
    i["HostConfig"]["NetworkMode"] = json!(format!("container:{}", "a".repeat(64)));
    assert!(!capture_with(&i, None).config.contains_key("Hostname"));
}

#[test]
fn container_references_are_recorded_by_name() {
    let mut i = inspect();
    i["HostConfig"]["NetworkMode"] = json!(format!("container:{}", "a".repeat(64)));
    i["HostConfig"]["IpcMode"] = json!(format!("container:{}", "b".repeat(64)));
    let spec = capture_with(&i, None);
    assert_eq!(spec.host_config["NetworkMode"], json!("container:db"));
    // An id that no longer resolves stays an id, so it shows as changed against the record.
    assert_eq!(
        spec.host_config["IpcMode"],
        json!(format!("container:{}", "b".repeat(64)))
    );
    assert_eq!(
        dependencies(&spec),
        vec![("b".repeat(64), true), ("db".to_string(), true)]
    );
}

#[test]
fn command_inheritance_follows_the_engine_merge_rules() {
    let image = json!({"Entrypoint": ["/entry"], "Cmd": ["serve"]});
    let run = |entrypoint: Value, cmd: Value| {
        let mut i = inspect();
        i["Config"]["Entrypoint"] = entrypoint;
        i["Config"]["Cmd"] = cmd;
        let spec = capture_with(&i, Some(&image));
        (
            spec.config.get("Entrypoint").cloned(),
            spec.config.get("Cmd").cloned(),
        )
    };
    assert_eq!(run(json!(["/entry"]), json!(["serve"])), (None, None));
    assert_eq!(
        run(json!(["/entry"]), json!(["other"])),
        (None, Some(json!(["other"])))
    );
    assert_eq!(
        run(json!(["/bin/sh", "-c"]), json!(["echo $HOME"])),
        (Some(json!(["/bin/sh", "-c"])), Some(json!(["echo $HOME"])))
    );
    // `--entrypoint ""` shows as null; recording null would bring the image's back.
    assert_eq!(run(Value::Null, Value::Null), (Some(json!([""])), None));
}

#[test]
fn recreating_from_the_record_captures_to_the_same_spec() {
    let image = image();
    let original = capture_with(&inspect(), Some(&image));
    // What the engine shows for the container created from create_body(original).
    let mut recreated = inspect();
    recreated["Id"] = json!("f".repeat(64));
    recreated["Config"]["Hostname"] = json!("ffffffffffff");
    recreated["HostConfig"]["Mounts"] = json!([
        {"Type": "volume", "Source": VOLUME, "Target": "/data"},
        {"Type": "volume", "Source": IMAGE_VOLUME, "Target": "/vol", "ReadOnly": false}
    ]);
    recreated["NetworkSettings"]["Networks"]["probenet"]["Aliases"] =
        json!(["web", "ffffffffffff"]);
    let again = capture_with(&recreated, Some(&image));
    assert_eq!(diff(&original, &again), Vec::<String>::new());
}

#[test]
fn create_body_mounts_anonymous_volumes_by_name_and_uses_one_network() {
    let image = image();
    let mut i = inspect();
    i["NetworkSettings"]["Networks"]["second"] = json!({"Aliases": ["x"]});
    let spec = capture_with(&i, Some(&image));
    let body = create_body(&spec, "sha256:6ede").unwrap();
    assert_eq!(body["Image"], json!("sha256:6ede"));
    let mounts = body["HostConfig"]["Mounts"].as_array().unwrap();
    assert!(mounts.contains(
        &json!({"Type": "volume", "Source": VOLUME, "Target": "/data", "ReadOnly": false})
    ));
    let endpoints = body["NetworkingConfig"]["EndpointsConfig"]
        .as_object()
        .unwrap();
    assert_eq!(endpoints.keys().collect::<Vec<_>>(), vec!["probenet"]);
    assert_eq!(network_attachments(&spec).1, vec!["second".to_string()]);
}

#[test]
fn daemon_defaults_are_not_recorded_but_choices_are() {
    let mut i = inspect();
    i["HostConfig"]["MaskedPaths"] = json!([]);
    i["HostConfig"]["LogConfig"] = json!({"Type": "json-file", "Config": {"max-size": "1m"}});
    i["HostConfig"]["MemorySwap"] = json!(100);
    i["HostConfig"]["RestartPolicy"] = json!({"Name": "on-failure", "MaximumRetryCount": 3});
    i["HostConfig"]["Init"] = json!(false);
    i["Config"]["StopTimeout"] = json!(0);
    let spec = capture_with(&i, None);
    assert_eq!(spec.host_config["MaskedPaths"], json!([]));
    assert!(!spec.host_config.contains_key("ReadonlyPaths"));
    assert_eq!(
        spec.host_config["LogConfig"]["Config"]["max-size"],
        json!("1m")
    );
    assert_eq!(spec.host_config["MemorySwap"], json!(100));
    assert_eq!(
        spec.host_config["RestartPolicy"]["MaximumRetryCount"],
        json!(3)
    );
    assert_eq!(spec.host_config["Init"], json!(false));
    assert_eq!(spec.config["StopTimeout"], json!(0));
}

#[test]
fn binds_with_generated_names_are_anonymous_volumes() {
    let mut i = inspect();
    i["HostConfig"]["Binds"] = json!([format!("{VOLUME}:/data:ro"), "/srv:/srv:ro"]);
    let spec = capture_with(&i, None);
    assert_eq!(spec.host_config["Binds"], json!(["/srv:/srv:ro"]));
    assert!(spec
        .anonymous_volumes
        .iter()
        .any(|v| v.name == VOLUME && v.read_only));
}

#[test]
fn a_generated_mac_is_not_recorded_and_a_user_set_one_is_on_the_primary_network() {
    // The endpoint always reports an address; only Config.MacAddress says the user set it.
    let generated = capture_with(&inspect(), None);
    assert!(!generated.networks["probenet"].contains_key("MacAddress"));
    assert!(!generated.config.contains_key("MacAddress"));

    let mut i = inspect();
    i["Config"]["MacAddress"] = json!("02:42:0a:4d:00:05");
    i["NetworkSettings"]["Networks"]["other"] = json!({"MacAddress": "0a:37:c0:45:b1:f3"});
    let set = capture_with(&i, None);
    assert_eq!(set.networks["probenet"]["MacAddress"], "02:42:0a:4d:00:05");
    assert!(!set.networks["other"].contains_key("MacAddress"));
    assert!(!set.config.contains_key("MacAddress"));
    let body = create_body(&set, "probe:1").unwrap();
    assert_eq!(
        body["NetworkingConfig"]["EndpointsConfig"]["probenet"]["MacAddress"],
        "02:42:0a:4d:00:05"
    );
    assert!(body.get("MacAddress").is_none());

    // Before API 1.44 the address cannot be asked for: it stays out of the record.
    let names = HashMap::new();
    let old = EngineDefaults {
        endpoint_mac: false,
        ..defaults()
    };
    let ctx = CaptureContext {
        image_config: None,
        defaults: &old,
        names_by_id: &names,
    };
    let on_old = capture(&i, &ctx).unwrap();
    assert!(!on_old.networks["probenet"].contains_key("MacAddress"));
}

#[test]
fn a_mac_on_the_default_network_goes_to_bridge() {
    let mut i = inspect();
    i["HostConfig"]["NetworkMode"] = json!("default");
    i["Config"]["MacAddress"] = json!("02:42:ac:11:00:99");
    i["NetworkSettings"]["Networks"] = json!({"bridge": {"MacAddress": "02:42:ac:11:00:99"}});
    let spec = capture_with(&i, None);
    assert_eq!(spec.networks["bridge"]["MacAddress"], "02:42:ac:11:00:99");
    let body = create_body(&spec, "probe:1").unwrap();
    assert_eq!(
        body["NetworkingConfig"]["EndpointsConfig"]["bridge"]["MacAddress"],
        "02:42:ac:11:00:99"
    );
}

#[test]
fn a_network_mode_by_id_is_recorded_by_name() {
    let mut i = inspect();
    let id = "3852c49a1334ec52e19ec0777a14731993765439e57fcb1263da490daf8d97dd";
    i["HostConfig"]["NetworkMode"] = json!(id);
    i["NetworkSettings"]["Networks"]["probenet"]["NetworkID"] = json!(id);
    let spec = capture_with(&i, None);
    assert_eq!(spec.host_config["NetworkMode"], "probenet");
}
