//! Compare, what an engine fills in: the record read as the engine reports the container it
//! creates from it, each rule seen on the engine it names (Docker 20.10 and 28, Podman 4.3).
//! A healthcheck takes the image's timings, a container joins the network it is created on,
//! and Podman fills in its own defaults, spells values its way, and drops what its
//! Docker-compatible API neither keeps nor reports. Part of `as_created`; pure: no IO.

use serde_json::{Map, Value};

use super::canonical::{capability, signal_number};
use super::podman::DEFAULT_CAP_DROP;
use super::{is_zero, primary_network, ContainerSpec, EngineKind};

/// The healthcheck the engine keeps: Docker takes each unset part from the image's (moby
/// `daemon/commit.go` `merge`), Podman its own defaults (30 s interval and timeout, 3
/// retries); neither reports a zero part.
pub(super) fn healthcheck(
    config: &mut Map<String, Value>,
    image: Option<&Value>,
    kind: EngineKind,
) {
    let Some(Value::Object(check)) = config.get_mut("Healthcheck") else {
        return;
    };
    let fill = |check: &mut Map<String, Value>, key: &str, value: &Value| {
        if check.get(key).is_none_or(is_zero) && !is_zero(value) {
            check.insert(key.to_string(), value.clone());
        }
    };
    match kind {
        EngineKind::Docker => {
            let theirs = image.map_or(&Value::Null, |i| &i["Healthcheck"]);
            for key in [
                "Test",
                "Interval",
                "Timeout",
                "StartPeriod",
                "StartInterval",
                "Retries",
            ] {
                fill(check, key, &theirs[key]);
            }
        }
        EngineKind::Podman => {
            const THIRTY_SECONDS: u64 = 30_000_000_000;
            fill(check, "Interval", &Value::from(THIRTY_SECONDS));
            fill(check, "Timeout", &Value::from(THIRTY_SECONDS));
            fill(check, "Retries", &Value::from(3));
        }
    }
    check.retain(|_, v| !is_zero(v));
}

/// The network a container is created on is one of its networks, named or not: the engine's
/// default one without a `NetworkMode`, the one `NetworkMode` names otherwise.
pub(super) fn network_created_on(spec: &mut ContainerSpec, kind: EngineKind) {
    let Some(primary) = primary_network(&spec.host_config) else {
        return;
    };
    let name = match (primary, kind) {
        ("bridge", EngineKind::Podman) => "podman",
        (name, _) => name,
    };
    if !spec.networks.contains_key(name) {
        spec.networks.insert(name.to_string(), Map::new());
    }
}

/// Tmpfs mounts Podman adds to a read-only container (`--read-only-tmpfs`, on by default).
const PODMAN_READ_ONLY_TMPFS: [&str; 3] = ["/run", "/tmp", "/var/tmp"];

/// What Podman 4.3 reports, through its Docker-compatible API, for a container created from
/// the record (`podman::normalize` then reads that in Docker's terms).
pub(super) fn podman(spec: &mut ContainerSpec, image: Option<&Value>) {
    let (config, host) = (&mut spec.config, &mut spec.host_config);
    // Published ports are exposed ports too.
    let published: Vec<String> = host
        .get("PortBindings")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if !published.is_empty() {
        let exposed = config
            .entry("ExposedPorts")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(exposed) = exposed {
            for port in published {
                exposed
                    .entry(port)
                    .or_insert_with(|| Value::Object(Map::new()));
            }
        }
    }
    // The default signal reads as unset where the image sets none, as `podman::normalize` has it.
    let signal = config.get("StopSignal").and_then(Value::as_str);
    let image_signal = image.and_then(|i| i["StopSignal"].as_str()).unwrap_or("");
    if signal.and_then(signal_number) == Some(15) && image_signal.is_empty() {
        config.remove("StopSignal");
    }
    // Neither kept nor reported by its Docker-compatible API (the sysctls are applied).
    config.remove("Domainname");
    host.remove("Sysctls");
    if let Some(Value::Object(log)) = host.get_mut("LogConfig") {
        log.remove("Config");
    }
    // Its own default driver reads as json-file, as `podman::normalize` has it.
    if host
        .get("LogConfig")
        .is_some_and(|l| l["Type"] == "json-file")
    {
        host.remove("LogConfig");
    }
    // Without a daemon-wide init, `false` is no choice.
    if host.get("Init") == Some(&Value::Bool(false)) {
        host.remove("Init");
    }
    // Unlimited swap reads as the default, twice the memory.
    let memory = host.get("Memory").and_then(Value::as_i64).unwrap_or(0);
    if memory > 0 && host.get("MemorySwap").and_then(Value::as_i64) == Some(-1) {
        host.remove("MemorySwap");
    }
    // Capabilities its default set lacks are dropped anyway (`podman::DEFAULT_CAP_DROP`).
    if let Some(Value::Array(dropped)) = host.get_mut("CapDrop") {
        dropped.retain(|c| {
            !c.as_str()
                .is_some_and(|c| DEFAULT_CAP_DROP.contains(&capability(c).as_str()))
        });
    }
    // SELinux relabelling is dropped where SELinux is off.
    if let Some(Value::Array(binds)) = host.get_mut("Binds") {
        for bind in binds.iter_mut() {
            if let Some(text) = bind.as_str() {
                *bind = Value::String(without_relabel(text));
            }
        }
    }
    if host.get("ReadonlyRootfs") == Some(&Value::Bool(true)) {
        let tmpfs = host
            .entry("Tmpfs")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(tmpfs) = tmpfs {
            for path in PODMAN_READ_ONLY_TMPFS {
                tmpfs
                    .entry(path)
                    .or_insert_with(|| Value::String(String::new()));
            }
        }
    }
}

/// `source:target:ro,z` without `z` or `Z`; no options left, no colon.
fn without_relabel(bind: &str) -> String {
    let mut parts = bind.splitn(3, ':');
    let (Some(source), Some(target), Some(options)) = (parts.next(), parts.next(), parts.next())
    else {
        return bind.to_string();
    };
    let kept: Vec<&str> = options
        .split(',')
        .filter(|o| !matches!(*o, "z" | "Z" | ""))
        .collect();
    match kept.is_empty() {
        true => format!("{source}:{target}"),
        false => format!("{source}:{target}:{}", kept.join(",")),
    }
}

/// Podman sets `HOME` for a user other than root from the image's `/etc/passwd`, which only
/// the container it made tells: a record that sets none, for such a user, from an image that
/// sets none, takes the `HOME` of `live`, created from the same image.
pub(super) fn podman_home(spec: &mut ContainerSpec, image: &Value, live: &ContainerSpec) {
    let is_home = |e: &&Value| e.as_str().is_some_and(|e| e.starts_with("HOME="));
    let user = spec
        .config
        .get("User")
        .and_then(Value::as_str)
        .unwrap_or("");
    let root = matches!(user, "" | "root" | "0" | "0:0" | "root:root");
    let set = |env: &Value| {
        env.as_array()
            .is_some_and(|e| e.iter().any(|v| is_home(&v)))
    };
    let recorded_env = spec.config.get("Env").cloned().unwrap_or(Value::Null);
    if root || set(&recorded_env) || set(&image["Env"]) {
        return;
    }
    let Some(home) = live
        .config
        .get("Env")
        .and_then(Value::as_array)
        .and_then(|e| e.iter().find(is_home))
    else {
        return;
    };
    let env = spec
        .config
        .entry("Env")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(env) = env {
        env.push(home.clone());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{capture_with, defaults, image, inspect};
    use super::super::{as_created, diff, normalize, EngineDefaults};
    use super::*;
    use serde_json::json;

    fn podman_defaults() -> EngineDefaults {
        EngineDefaults {
            kind: EngineKind::Podman,
            ..defaults()
        }
    }

    fn record(value: Value) -> ContainerSpec {
        let mut spec: ContainerSpec = serde_json::from_value(value).unwrap();
        normalize("web", &mut spec);
        spec
    }

    #[test]
    fn a_healthcheck_takes_the_images_timings_on_docker_and_podmans_defaults_on_podman() {
        let image = image();
        let mut config = Map::new();
        config.insert(
            "Healthcheck".into(),
            json!({"Test": ["CMD", "true"], "Retries": 0, "Timeout": 0}),
        );
        let mut docker = config.clone();
        healthcheck(&mut docker, Some(&image), EngineKind::Docker);
        assert_eq!(
            docker["Healthcheck"],
            json!({"Test": ["CMD", "true"], "Interval": 30000000000u64})
        );
        let mut podman = config;
        healthcheck(&mut podman, None, EngineKind::Podman);
        assert_eq!(
            podman["Healthcheck"],
            json!({"Test": ["CMD", "true"], "Interval": 30000000000u64,
                   "Timeout": 30000000000u64, "Retries": 3})
        );
        // Timings of the record's own are kept, and compared.
        let mut own = Map::new();
        own.insert(
            "Healthcheck".into(),
            json!({"Test": ["CMD", "true"], "Interval": 5000000000u64}),
        );
        healthcheck(&mut own, Some(&image), EngineKind::Docker);
        assert_eq!(own["Healthcheck"]["Interval"], json!(5000000000u64));
    }

    #[test]
    fn a_container_is_on_the_network_it_is_created_on_and_no_other() {
        let mut live = capture_with(&inspect(), None);
        live.networks.insert("probenet".into(), Map::new());
        let mut recorded = live.clone();
        recorded.networks.clear();
        let created = as_created(&recorded, None, Some(&defaults()), None);
        assert_eq!(diff(&created, &live), Vec::<String>::new());
        // A network the record names and the container lacks is a change.
        let mut more = live.clone();
        more.networks.insert("other".into(), Map::new());
        let created = as_created(&more, None, Some(&defaults()), None);
        assert_eq!(diff(&created, &live), ["networks.other"]);
    }

    #[test]
    fn podmans_own_spellings_compare_equal_and_a_real_change_is_still_one() {
        let hand = record(json!({
            "image": "probe:1", "image_id": "sha256:6ede",
            "config": {"StopSignal": "TERM", "Domainname": "example.com", "User": "nobody"},
            "host_config": {"CapDrop": ["cap_chown", "MKNOD"], "Init": false,
                            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                            "Memory": 67108864, "MemorySwap": -1, "ReadonlyRootfs": true,
                            "PortBindings": {"80": [{"HostIp": "127.0.0.1"}]},
                            "Binds": ["/srv/:/data:ro,z"], "Tmpfs": {"/scratch": "rw"}}
        }));
        // What Podman reports for it, read by `capture` (podman::normalize).
        let live = record(json!({
            "image": "probe:1", "image_id": "sha256:6ede",
            "config": {"User": "nobody", "Env": ["HOME=/"], "ExposedPorts": {"80/tcp": {}}},
            "host_config": {"CapDrop": ["CHOWN"], "Memory": 67108864, "ReadonlyRootfs": true,
                            "PidsLimit": 2048,
                            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40123"}]},
                            "Binds": ["/srv:/data:ro"],
                            "Tmpfs": {"/scratch": "", "/run": "", "/tmp": "", "/var/tmp": ""}},
            "networks": {"podman": {}}
        }));
        let image = json!({"Env": ["PATH=/bin"]});
        let podman = podman_defaults();
        let created = as_created(&hand, Some(&image), Some(&podman), Some(&live));
        assert_eq!(diff(&created, &live), Vec::<String>::new());
        // Each of these is another container than the live one.
        for (part, key, value) in [
            ("config", "StopSignal", json!("USR1")),
            ("config", "Env", json!(["HOME=/srv"])),
            (
                "host_config",
                "CapDrop",
                json!(["CHOWN", "NET_BIND_SERVICE"]),
            ),
            ("host_config", "Memory", json!(33554432)),
            ("host_config", "Binds", json!(["/srv:/data"])),
            ("host_config", "Tmpfs", json!({"/scratch": "size=1m"})),
            (
                "host_config",
                "PortBindings",
                json!({"80/tcp": [{"HostIp": "0.0.0.0"}]}),
            ),
        ] {
            let mut changed = serde_json::to_value(&hand).unwrap();
            changed[part][key] = value;
            let changed = record(changed);
            let created = as_created(&changed, Some(&image), Some(&podman), Some(&live));
            assert_eq!(
                diff(&created, &live),
                [format!("{part}.{key}")],
                "{part}.{key}"
            );
        }
    }
}
