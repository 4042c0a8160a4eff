//! Podman, through its Docker-compatible API, reports a container's configuration with its own
//! defaults filled in where Docker reports nothing, and spells some values otherwise. `normalize`
//! turns an inspect's `Config` and `HostConfig` into what Docker reports for the same `docker
//! run`, before `spec::capture` subtracts image and engine defaults: a record taken on Podman
//! then holds what the user set, and a pass never flaps between the two spellings.
//!
//! Every rule below was seen on Podman 4.3 (Debian bookworm, API 1.41). Where Podman reports
//! the same value for "unset" and for one the user could set (`--stop-timeout 0`,
//! `--memory-swappiness 0`, `--cap-drop NET_RAW`), the value is taken as the default: on
//! recreation Podman fills the same default back in, except for `--stop-timeout 0` (the README
//! lists it). Pure: no IO.

use serde_json::{Map, Value};

/// Podman's default network, where Docker's is `bridge`.
const DEFAULT_NETWORK: &str = "podman";
/// The PATH Podman gives a container whose image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Podman's `/dev/shm` size (64000k), where Docker's is 64 MiB.
const DEFAULT_SHM_SIZE: u64 = 65_536_000;
/// Capabilities in Docker's default set that Podman's lacks; Podman reports them as dropped.
pub(super) const DEFAULT_CAP_DROP: [&str; 3] = ["AUDIT_WRITE", "MKNOD", "NET_RAW"];
/// Mount options Podman adds to every bind, volume and tmpfs (`rw` is everyone's default).
const DEFAULT_MOUNT_OPTIONS: [&str; 3] = ["rw", "rprivate", "rbind"];
/// Further options Podman adds to volumes and tmpfs, never to a bind of a host path.
const DEFAULT_VOLUME_OPTIONS: [&str; 4] = ["nosuid", "nodev", "exec", "tmpcopyup"];

/// Rewrite Podman's report of `Config` and `HostConfig` into Docker's shape. `networks` are the
/// inspect's `NetworkSettings.Networks`; `image` is the image's `Config`, when it is present.
pub fn normalize(
    config: &mut Map<String, Value>,
    host: &mut Map<String, Value>,
    networks: &Value,
    image: Option<&Value>,
) {
    let image = image.unwrap_or(&Value::Null);
    normalize_config(config, image);
    normalize_host(host);
    name_the_network(host, networks);
}

/// Podman says "bridge" whatever the network; Docker names the one the container was created
/// on. Any one of them will do: the others are connected before the start.
fn name_the_network(host: &mut Map<String, Value>, networks: &Value) {
    let names: Vec<&String> = networks
        .as_object()
        .map(|n| n.keys().collect())
        .unwrap_or_default();
    let on_user_networks = !names.is_empty() && !names.iter().any(|n| *n == DEFAULT_NETWORK);
    let bridge = host.get("NetworkMode").and_then(Value::as_str) == Some("bridge");
    if let (true, true, Some(first)) = (bridge, on_user_networks, names.iter().min()) {
        host.insert("NetworkMode".into(), Value::String((*first).clone()));
    }
}

fn normalize_config(config: &mut Map<String, Value>, image: &Value) {
    let image_env: Vec<&str> = image["Env"]
        .as_array()
        .map(|env| env.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let image_sets = |name: &str| image_env.iter().any(|e| e.starts_with(&format!("{name}=")));
    let hostname = config.get("Hostname").and_then(Value::as_str).unwrap_or("");
    let own_hostname = format!("HOSTNAME={hostname}");
    let user = config.get("User").and_then(Value::as_str).unwrap_or("");
    let root = matches!(user, "" | "root" | "0" | "0:0" | "root:root");
    if let Some(Value::Array(env)) = config.get_mut("Env") {
        env.retain(|e| {
            let e = e.as_str().unwrap_or_default();
            let podmans = e == "container=podman"
                || e == own_hostname
                || (e == "TERM=xterm" && !image_sets("TERM"))
                || (e == DEFAULT_PATH && !image_sets("PATH"))
                || (e == "HOME=/root" && root && !image_sets("HOME"));
            !podmans
        });
        // Podman keeps the environment as a map and lists it in no stable order.
        env.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    // Podman writes the default signal as a number, where Docker leaves it unset.
    let default_signal = matches!(
        config.get("StopSignal").and_then(Value::as_str),
        Some("15" | "SIGTERM")
    );
    if default_signal && image["StopSignal"].as_str().unwrap_or("").is_empty() {
        config.remove("StopSignal");
    }
    // Unset reads 0 here (the default is 10 s).
    if config.get("StopTimeout").and_then(Value::as_i64) == Some(0) {
        config.remove("StopTimeout");
    }
    let root_dir = config.get("WorkingDir").and_then(Value::as_str) == Some("/");
    if root_dir && image["WorkingDir"].as_str().unwrap_or("").is_empty() {
        config.remove("WorkingDir");
    }
}

fn normalize_host(host: &mut Map<String, Value>) {
    let is = |host: &Map<String, Value>, key: &str, value: &str| {
        host.get(key).and_then(Value::as_str) == Some(value)
    };
    for (key, default) in [
        ("IpcMode", "shareable"),
        ("PidMode", "private"),
        ("UTSMode", "private"),
        ("Runtime", "oci"),
    ] {
        if is(host, key, default) {
            host.remove(key);
        }
    }
    if host.get("ShmSize").and_then(Value::as_u64) == Some(DEFAULT_SHM_SIZE) {
        host.remove("ShmSize");
    }
    // `--cpus` reads back as NanoCpus and as the period and quota it became; sent back together
    // they conflict.
    let nano = host.get("NanoCpus").and_then(Value::as_i64).unwrap_or(0);
    let period = host.get("CpuPeriod").and_then(Value::as_i64).unwrap_or(0);
    let quota = host.get("CpuQuota").and_then(Value::as_i64).unwrap_or(0);
    if nano > 0 && period > 0 && quota == nano * period / 1_000_000_000 {
        host.remove("CpuPeriod");
        host.remove("CpuQuota");
    }
    // Unset reads 0 or -1.
    if matches!(
        host.get("MemorySwappiness").and_then(Value::as_i64),
        Some(0 | -1)
    ) {
        host.remove("MemorySwappiness");
    }
    // Its default driver (k8s-file) reads as json-file.
    let log = host.get("LogConfig");
    let default_log = log.is_some_and(|l| {
        l["Type"].as_str() == Some("json-file") && l["Config"].as_object().is_none_or(Map::is_empty)
    });
    if default_log {
        host.remove("LogConfig");
    }
    if let Some(Value::Array(dropped)) = host.get_mut("CapDrop") {
        dropped.retain(|c| !c.as_str().is_some_and(|c| DEFAULT_CAP_DROP.contains(&c)));
    }
    if let Some(Value::Array(ulimits)) = host.get_mut("Ulimits") {
        for ulimit in ulimits.iter_mut() {
            if let Some(Value::String(name)) = ulimit.get_mut("Name") {
                if let Some(short) = name.strip_prefix("RLIMIT_") {
                    *name = short.to_ascii_lowercase();
                }
            }
        }
    }
    // The image's exposed ports, listed as bindings to nothing; several bindings of one port
    // in no stable order.
    if let Some(Value::Object(bindings)) = host.get_mut("PortBindings") {
        bindings.retain(|_, b| !b.is_null());
        for list in bindings.values_mut().filter_map(Value::as_array_mut) {
            list.sort_by_key(|b| (b["HostIp"].to_string(), b["HostPort"].to_string()));
        }
    }
    // A device's permissions read back empty, which it refuses at create: `rwm` is the default
    // (the snapshot says that a chosen one cannot be seen).
    if let Some(Value::Array(devices)) = host.get_mut("Devices") {
        for device in devices.iter_mut() {
            if device["CgroupPermissions"] == "" {
                device["CgroupPermissions"] = Value::String("rwm".into());
            }
        }
    }
    if let Some(Value::Array(binds)) = host.get_mut("Binds") {
        for bind in binds.iter_mut() {
            if let Some(text) = bind.as_str() {
                *bind = Value::String(normalize_bind(text));
            }
        }
    }
    if let Some(Value::Object(tmpfs)) = host.get_mut("Tmpfs") {
        for options in tmpfs.values_mut() {
            if let Some(text) = options.as_str() {
                *options = Value::String(without_defaults(text, true));
            }
        }
    }
}

/// `source:target:options` with Podman's default options taken out; no options left, no colon.
fn normalize_bind(bind: &str) -> String {
    let mut parts = bind.splitn(3, ':');
    let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
        return bind.to_string();
    };
    let options = without_defaults(parts.next().unwrap_or(""), !source.starts_with('/'));
    match options.is_empty() {
        true => format!("{source}:{target}"),
        false => format!("{source}:{target}:{options}"),
    }
}

fn without_defaults(options: &str, volume: bool) -> String {
    options
        .split(',')
        .filter(|o| !o.is_empty() && !DEFAULT_MOUNT_OPTIONS.contains(o))
        .filter(|o| !(volume && DEFAULT_VOLUME_OPTIONS.contains(o)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn podmans_own_defaults_read_as_unset() {
        // A `docker run -d busybox-image` on Podman 4.3, as its inspect shows it.
        let mut config = map(json!({
            "Hostname": "9de49db044ed",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm", "container=podman", "FOO=bar", "HOME=/root",
                    "HOSTNAME=9de49db044ed"],
            "StopSignal": "15", "StopTimeout": 0, "WorkingDir": "/", "User": ""
        }));
        let mut host = map(json!({
            "IpcMode": "shareable", "PidMode": "private", "UTSMode": "private",
            "Runtime": "oci", "ShmSize": 65536000, "MemorySwappiness": 0,
            "LogConfig": {"Type": "json-file", "Config": null},
            "CapDrop": ["AUDIT_WRITE", "MKNOD", "NET_RAW"],
            "PortBindings": {"7000/tcp": null}
        }));
        normalize(
            &mut config,
            &mut host,
            &json!({"podman": {}}),
            Some(&json!({"Env": null})),
        );
        assert_eq!(
            Value::Object(config),
            json!({"Hostname": "9de49db044ed", "Env": ["FOO=bar"], "User": ""})
        );
        assert_eq!(
            Value::Object(host),
            json!({"CapDrop": [], "PortBindings": {}})
        );
    }

    #[test]
    fn what_the_user_set_survives_in_dockers_spelling() {
        let mut config = map(json!({
            "Env": ["HOME=/srv", "TERM=vt100"], "StopSignal": "10", "StopTimeout": 5,
            "WorkingDir": "/app", "User": "nobody"
        }));
        let mut host = map(json!({
            "IpcMode": "private", "MemorySwappiness": 60,
            "NanoCpus": 1500000000, "CpuPeriod": 100000, "CpuQuota": 150000,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
            "CapDrop": ["AUDIT_WRITE", "CHOWN", "MKNOD", "NET_RAW"],
            "Ulimits": [{"Name": "RLIMIT_NOFILE", "Hard": 2048, "Soft": 1024}],
            "Binds": ["/tmp/pbind:/data:ro,rprivate,rbind",
                      "pnamed:/n:rw,rprivate,nosuid,nodev,rbind",
                      "/host:/suid:rw,rprivate,nosuid,rbind"],
            "Tmpfs": {"/run": "size=1m,rw,rprivate,nosuid,nodev,tmpcopyup"}
        }));
        let before = config.clone();
        normalize(
            &mut config,
            &mut host,
            &Value::Null,
            Some(&json!({"Env": ["PATH=/bin"]})),
        );
        assert_eq!(config, before);
        assert_eq!(
            Value::Object(host),
            json!({
                "IpcMode": "private", "MemorySwappiness": 60, "NanoCpus": 1500000000,
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                "CapDrop": ["CHOWN"],
                "Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024}],
                "Binds": ["/tmp/pbind:/data:ro", "pnamed:/n", "/host:/suid:nosuid"],
                "Tmpfs": {"/run": "size=1m"}
            })
        );
    }

    #[test]
    fn the_images_own_values_are_left_for_the_image_rules() {
        let image = json!({"Env": ["TERM=xterm", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                           "StopSignal": "15", "WorkingDir": "/"});
        let mut config = map(json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "StopSignal": "15", "WorkingDir": "/"
        }));
        let before = config.clone();
        normalize(&mut config, &mut Map::new(), &Value::Null, Some(&image));
        assert_eq!(
            config, before,
            "the image's values are subtracted as the image's"
        );
    }

    #[test]
    fn a_container_on_user_networks_is_created_on_one_of_them() {
        let mut host = map(json!({"NetworkMode": "bridge"}));
        let networks = json!({"front": {}, "back": {}});
        normalize(&mut Map::new(), &mut host, &networks, None);
        assert_eq!(host["NetworkMode"], "back");
        let mut host = map(json!({"NetworkMode": "bridge"}));
        normalize(
            &mut Map::new(),
            &mut host,
            &json!({"podman": {}, "back": {}}),
            None,
        );
        assert_eq!(host["NetworkMode"], "bridge", "on the default network");
    }
}
