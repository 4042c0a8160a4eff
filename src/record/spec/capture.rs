//! Capture: a container's `docker inspect` minus what its image and the engine supplied, so
//! the record holds what the user set. The same capture runs on the recorded container and on
//! the live one. Pure: no IO.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::networks::{capture_networks, name_network_mode, record_user_mac};
use super::volumes::{drop_covered_volumes, normalize_binds, take_anonymous_volumes};
use super::{is_zero, object, strings, strip_zero, ContainerSpec, EngineDefaults, EngineKind};

/// Everything `capture` needs beyond the container's own inspect output.
pub struct CaptureContext<'a> {
    /// The image's `Config` as `docker image inspect` shows it; `None` when the image is gone, in
    /// which case nothing can be attributed to it and everything is kept.
    pub image_config: Option<&'a Value>,
    pub defaults: &'a EngineDefaults,
    /// Full container id to name, to record `container:<id>` references by name.
    pub names_by_id: &'a HashMap<String, String>,
}

/// The daemon's default `/dev/shm` size (64 MiB).
const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Config fields whose zero value still means something the user chose.
pub(super) const CONFIG_KEEP_ZERO: &[&str] = &["StopTimeout"];
/// HostConfig fields whose zero or false value still means something the user chose
/// (`--init=false` overrides a daemon-wide init; swappiness 0 is not "unset").
/// An empty `MaskedPaths`/`ReadonlyPaths` is `--security-opt systempaths=unconfined`.
pub(super) const HOST_KEEP_ZERO: &[&str] =
    &["Init", "MemorySwappiness", "MaskedPaths", "ReadonlyPaths"];
/// Config fields that describe the container instance, not its configuration. The Attach*
/// flags say how the creating client attached (`docker create` true, `docker run -d` false);
/// they change nothing about how the container runs.
const CONFIG_INSTANCE_FIELDS: &[&str] = &[
    "Image",
    "Hostname",
    "ArgsEscaped",
    "OnBuild",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
];
/// HostConfig fields that are never configuration: the terminal size of whoever ran
/// `docker run`, and the CLI's id file.
const HOST_INSTANCE_FIELDS: &[&str] = &["ConsoleSize", "ContainerIDFile"];
/// Record what the user set on a container, given its `docker inspect` output as JSON.
pub fn capture(inspect: &Value, ctx: &CaptureContext<'_>) -> Result<ContainerSpec> {
    let id = inspect["Id"].as_str().context("inspect output has no Id")?;
    let short_id = id.get(..12).unwrap_or(id);
    let image_id = inspect["Image"].as_str().unwrap_or_default().to_string();
    let mut config = object(&inspect["Config"]);
    let mut host = object(&inspect["HostConfig"]);
    if ctx.defaults.kind == EngineKind::Podman {
        let networks = &inspect["NetworkSettings"]["Networks"];
        super::podman::normalize(&mut config, &mut host, networks, ctx.image_config);
    }
    let image = config
        .get("Image")
        .and_then(Value::as_str)
        .unwrap_or(&image_id)
        .to_string();

    // Anonymous volumes first: they are found through the full Config.Volumes, before the
    // image's volumes are subtracted from it.
    let anonymous_volumes = take_anonymous_volumes(&config, &mut host, &inspect["Mounts"]);

    normalize_binds(&mut host);
    drop_covered_volumes(&mut config, &host);

    let user_hostname = user_set_hostname(&config, &host, short_id);
    if let Some(image_config) = ctx.image_config {
        subtract_image_defaults(&mut config, image_config);
    }
    for key in CONFIG_INSTANCE_FIELDS {
        config.remove(*key);
    }
    if let Some(hostname) = &user_hostname {
        config.insert("Hostname".into(), Value::String(hostname.clone()));
    }
    strip_zero(&mut config, CONFIG_KEEP_ZERO);

    strip_daemon_defaults(&mut host, ctx.defaults);
    for key in ["NetworkMode", "IpcMode", "PidMode"] {
        name_container_reference(&mut host, key, ctx.names_by_id);
    }
    name_network_mode(&mut host, &inspect["NetworkSettings"]["Networks"]);
    for key in HOST_INSTANCE_FIELDS {
        host.remove(*key);
    }
    match ctx.defaults.kind {
        EngineKind::Docker => strip_zero(&mut host, HOST_KEEP_ZERO),
        EngineKind::Podman => strip_zero(&mut host, &[HOST_KEEP_ZERO, &["PidsLimit"]].concat()),
    }

    let name = inspect["Name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/');
    // In another container's network namespace a container has no networks of its own (Docker
    // lists none, Podman lists the owner's, with the owner's id as an alias).
    let shares_network = host
        .get("NetworkMode")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("container:"));
    let user_mac = config.remove("MacAddress");
    let mut networks = match shares_network {
        true => BTreeMap::new(),
        false => capture_networks(&inspect["NetworkSettings"]["Networks"], short_id, name),
    };
    if let Some(mac) = user_mac.filter(|m| ctx.defaults.endpoint_mac && !is_zero(m)) {
        record_user_mac(&mut networks, &host, mac);
    }
    Ok(ContainerSpec {
        image,
        image_id,
        config,
        host_config: host,
        networks,
        anonymous_volumes,
    })
}

/// The hostname, unless the engine made it up: the container's own short id by default, and
/// the host's or the namespace owner's under `--network host|container:X` or `--uts host`.
fn user_set_hostname(
    config: &Map<String, Value>,
    host: &Map<String, Value>,
    short_id: &str,
) -> Option<String> {
    let hostname = config.get("Hostname")?.as_str()?;
    let network_mode = host
        .get("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or("");
    let uts_mode = host.get("UTSMode").and_then(Value::as_str).unwrap_or("");
    let inherited = network_mode == "host" || network_mode.starts_with("container:");
    if hostname.is_empty() || hostname == short_id || inherited || uts_mode == "host" {
        return None;
    }
    Some(hostname.to_string())
}

/// Remove from `config` what the image supplied, following the engine's merge rules
/// (moby `daemon/commit.go` `merge`): a value equal to the image's is the image's.
fn subtract_image_defaults(config: &mut Map<String, Value>, image: &Value) {
    subtract_image_values(config, image);
    subtract_command(config, image);
}

/// Everything of `subtract_image_defaults` but the command, which is decided as a pair.
pub(super) fn subtract_image_values(config: &mut Map<String, Value>, image: &Value) {
    let image_env: BTreeSet<&str> = strings(&image["Env"]).into_iter().collect();
    if let Some(Value::Array(env)) = config.get_mut("Env") {
        env.retain(|e| !e.as_str().is_some_and(|s| image_env.contains(s)));
    }
    if let (Some(Value::Object(labels)), Some(image_labels)) =
        (config.get_mut("Labels"), image["Labels"].as_object())
    {
        labels.retain(|k, v| image_labels.get(k) != Some(v));
    }
    for key in ["ExposedPorts", "Volumes"] {
        if let (Some(Value::Object(mine)), Some(theirs)) =
            (config.get_mut(key), image[key].as_object())
        {
            mine.retain(|k, _| !theirs.contains_key(k));
        }
    }
    for key in ["WorkingDir", "User", "StopSignal", "Healthcheck", "Shell"] {
        if config.get(key).is_some_and(|v| v == &image[key]) {
            config.remove(key);
        }
    }
}

/// Entrypoint and Cmd are inherited together: the image's Cmd applies only while the user gave
/// no entrypoint, so the pair is decided as one.
fn subtract_command(config: &mut Map<String, Value>, image: &Value) {
    let empty = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
    let entrypoint = config.get("Entrypoint").cloned().unwrap_or(Value::Null);
    let cmd = config.get("Cmd").cloned().unwrap_or(Value::Null);
    let (image_entrypoint, image_cmd) = (&image["Entrypoint"], &image["Cmd"]);
    let same_entrypoint =
        entrypoint == *image_entrypoint || (empty(&entrypoint) && empty(image_entrypoint));
    if same_entrypoint && (cmd == *image_cmd || (empty(&cmd) && empty(image_cmd))) {
        config.remove("Entrypoint");
        config.remove("Cmd");
    } else if same_entrypoint && !empty(&cmd) {
        config.remove("Entrypoint");
    } else if empty(&entrypoint) && !empty(image_entrypoint) {
        // `--entrypoint ""`: the engine stores null, and sending null back would bring the
        // image's entrypoint back. `[""]` is how the CLI asks for "none".
        config.insert(
            "Entrypoint".into(),
            Value::Array(vec![Value::String(String::new())]),
        );
    }
}

/// Drop HostConfig values the daemon fills in by itself (engine-api notes, section 3.1 item 18).
fn strip_daemon_defaults(host: &mut Map<String, Value>, defaults: &EngineDefaults) {
    strip_configured_defaults(host, defaults);
    strip_fixed_defaults(host);
    if defaults.kind == EngineKind::Docker {
        settle_pids_limit(host, defaults.kind);
    }
}

/// Drop HostConfig values equal to what this engine's own settings fill in.
pub(super) fn strip_configured_defaults(host: &mut Map<String, Value>, defaults: &EngineDefaults) {
    let is = |host: &Map<String, Value>, key: &str, value: &str| {
        host.get(key).and_then(Value::as_str) == Some(value)
    };
    if is(host, "Runtime", &defaults.runtime) {
        host.remove("Runtime");
    }
    let log_is_default = host.get("LogConfig").is_some_and(|log| {
        log["Type"].as_str() == Some(defaults.log_driver.as_str())
            && log["Config"].as_object().is_none_or(Map::is_empty)
    });
    if log_is_default {
        host.remove("LogConfig");
    }
    if is(host, "CgroupnsMode", &defaults.cgroupns_mode) {
        host.remove("CgroupnsMode");
    }
}

/// Drop HostConfig values every engine fills in the same way, whatever its settings.
pub(super) fn strip_fixed_defaults(host: &mut Map<String, Value>) {
    let is = |host: &Map<String, Value>, key: &str, value: &str| {
        host.get(key).and_then(Value::as_str) == Some(value)
    };
    // The daemon fills these with the OCI default lists unless the container is privileged.
    for key in ["MaskedPaths", "ReadonlyPaths"] {
        if host
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty())
        {
            host.remove(key);
        }
    }
    if host.get("ShmSize").and_then(Value::as_u64) == Some(DEFAULT_SHM_SIZE) {
        host.remove("ShmSize");
    }
    if is(host, "IpcMode", "private") {
        host.remove("IpcMode");
    }
    // "default" (20.10) and "bridge" (newer engines convert at create) are the same network.
    if is(host, "NetworkMode", "default") || is(host, "NetworkMode", "bridge") {
        host.remove("NetworkMode");
    }
    // The docker CLI sends `no` for every `docker run` without `--restart`: that is recorded as
    // the container had it (`docker inspect` of a recreation must show it too). An empty name
    // is what an API request without a policy leaves; it means the same and is not recorded.
    if host.get("RestartPolicy").and_then(|p| p["Name"].as_str()) == Some("") {
        host.remove("RestartPolicy");
    }
    // Without --memory-swap the daemon sets twice the memory limit.
    let memory = host.get("Memory").and_then(Value::as_i64).unwrap_or(0);
    if memory > 0 && host.get("MemorySwap").and_then(Value::as_i64) == Some(memory * 2) {
        host.remove("MemorySwap");
    }
}

/// Podman's pids limit for a container that asked for none (containers.conf `pids_limit`).
const PODMAN_PIDS_LIMIT: i64 = 2048;

/// The pids limit as `kind` reports it. 0 and -1 both mean "no pids limit" to Docker. To Podman
/// they are choices: without one it applies its own default limit (2048), which it reports.
pub(super) fn settle_pids_limit(host: &mut Map<String, Value>, kind: EngineKind) {
    let limit = host.get("PidsLimit").and_then(Value::as_i64);
    match kind {
        EngineKind::Docker if limit.is_some_and(|l| l <= 0) => {
            host.remove("PidsLimit");
        }
        EngineKind::Podman if limit.is_none() => {
            host.insert("PidsLimit".into(), Value::from(PODMAN_PIDS_LIMIT));
        }
        _ => {}
    }
}

/// `container:<full id>` becomes `container:<name>`: the id dies with the container, the name
/// is what a recreated dependency will carry.
fn name_container_reference(
    host: &mut Map<String, Value>,
    key: &str,
    names_by_id: &HashMap<String, String>,
) {
    let Some(Value::String(mode)) = host.get_mut(key) else {
        return;
    };
    if let Some(target) = mode.strip_prefix("container:") {
        if let Some(name) = names_by_id.get(target) {
            *mode = format!("container:{name}");
        }
    }
}
