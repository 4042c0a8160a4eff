//! What a container is, as the user set it: captured from `docker inspect`, turned back into a
//! create request, and compared field by field.
//!
//! Inspect output is the configuration *after* the engine merged the image's defaults and filled
//! in its own. Recording it verbatim would pin the old short id as hostname and alias, freeze the
//! image's environment, and bake today's daemon defaults into every record. `capture` therefore
//! subtracts what the image and the engine supplied, and the same `capture` runs on the recorded
//! container and on the live one, so a comparison never flaps between the two forms.
//!
//! Fields keep the Docker Engine API's own names (`Env`, `PortBindings`, ...) so that a state file
//! reads like `docker inspect` output and an operator can edit it with the API docs at hand.
//! No IO here: the caller brings the inspect output, the image config and the engine's defaults.

mod compare;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use compare::{as_created, diff, normalize};

/// The recorded run configuration of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// The image reference as the user gave it (`Config.Image`), e.g. `nginx:1.27`.
    pub image: String,
    /// The id of the image the container ran. Identity is compared by this, never by `image`.
    pub image_id: String,
    /// `Config` fields the user set (the engine's field names), minus image defaults.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// `HostConfig` fields the user set, minus the daemon's defaults.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub host_config: Map<String, Value>,
    /// Networks by name, each with the endpoint settings the user chose (aliases, static IPs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Map<String, Value>>,
    /// Volumes without a user-given name, reattached by their generated name on recreate so
    /// their data comes back with the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<AnonymousVolume>,
}

/// An anonymous volume (image `VOLUME` or `-v /path`) and the generated name that holds its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousVolume {
    pub destination: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Which engine answers: Podman reports some configuration in its own way (`podman.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineKind {
    #[default]
    Docker,
    Podman,
}

impl EngineKind {
    /// The kind a state file names (`engine.kind`); `None` when it names none.
    pub fn named(kind: &str) -> Option<EngineKind> {
        match kind {
            "" => None,
            k if k.starts_with("Podman") => Some(EngineKind::Podman),
            _ => Some(EngineKind::Docker),
        }
    }
}

/// The engine-wide defaults a container gets without asking; recorded values equal to these are
/// dropped so a record never pins today's daemon configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineDefaults {
    pub kind: EngineKind,
    pub runtime: String,
    pub log_driver: String,
    /// `host` on cgroup v1, `private` on cgroup v2.
    pub cgroupns_mode: String,
    /// Whether a create request can set a MAC address per endpoint (API 1.44 and later). Older
    /// engines read it only from `Config.MacAddress`, which bollard cannot send.
    pub endpoint_mac: bool,
}

/// What an engine adds to a container it creates: its image's `Config` (`None` when the image
/// is gone) and the engine's own defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub image: Option<std::sync::Arc<Value>>,
    pub defaults: EngineDefaults,
}

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
const CONFIG_KEEP_ZERO: &[&str] = &["StopTimeout"];
/// HostConfig fields whose zero or false value still means something the user chose
/// (`--init=false` overrides a daemon-wide init; swappiness 0 is not "unset").
/// An empty `MaskedPaths`/`ReadonlyPaths` is `--security-opt systempaths=unconfined`.
const HOST_KEEP_ZERO: &[&str] = &["Init", "MemorySwappiness", "MaskedPaths", "ReadonlyPaths"];
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
/// Endpoint settings that are user intent; the rest (IP, gateway, ids) is runtime data. A
/// `MacAddress` is recorded only on the primary network, and only as the user set it
/// (`record_user_mac`): the endpoint itself reports whatever address the engine generated.
pub const ENDPOINT_FIELDS: &[&str] =
    &["Aliases", "IPAMConfig", "Links", "DriverOpts", "MacAddress"];

/// Record what the user set on a container, given its `docker inspect` output as JSON.
pub fn capture(inspect: &Value, ctx: &CaptureContext<'_>) -> Result<ContainerSpec> {
    let id = inspect["Id"].as_str().context("inspect output has no Id")?;
    let short_id = id.get(..12).unwrap_or(id);
    let image_id = inspect["Image"].as_str().unwrap_or_default().to_string();
    let mut config = object(&inspect["Config"]);
    let mut host = object(&inspect["HostConfig"]);
    if ctx.defaults.kind == EngineKind::Podman {
        let networks = &inspect["NetworkSettings"]["Networks"];
        crate::podman::normalize(&mut config, &mut host, networks, ctx.image_config);
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

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
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
fn subtract_image_values(config: &mut Map<String, Value>, image: &Value) {
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
fn strip_configured_defaults(host: &mut Map<String, Value>, defaults: &EngineDefaults) {
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
fn strip_fixed_defaults(host: &mut Map<String, Value>) {
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
fn settle_pids_limit(host: &mut Map<String, Value>, kind: EngineKind) {
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

/// Remove zero values (null, false, 0, "", [], {}) from the top level, except the listed keys.
fn strip_zero(map: &mut Map<String, Value>, keep: &[&str]) {
    map.retain(|key, value| keep.contains(&key.as_str()) && !value.is_null() || !is_zero(value));
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A volume name the engine generated: 64 hex digits.
fn is_generated_volume_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Find the container's anonymous volumes and take them out of `Binds`/`Mounts`, so that a
/// container created with `-v /data` and its recreation (which mounts the same volume by name)
/// capture to the same spec.
fn take_anonymous_volumes(
    config: &Map<String, Value>,
    host: &mut Map<String, Value>,
    mounts: &Value,
) -> Vec<AnonymousVolume> {
    let mounted_volume = |destination: &str| {
        mounts.as_array()?.iter().find(|m| {
            m["Type"].as_str() == Some("volume") && m["Destination"].as_str() == Some(destination)
        })
    };
    let mut found = BTreeMap::new();

    if let Some(Value::Array(binds)) = host.get_mut("Binds") {
        binds.retain(|bind| {
            let parts: Vec<&str> = bind.as_str().unwrap_or_default().split(':').collect();
            if parts.len() >= 2 && is_generated_volume_name(parts[0]) {
                let read_only = parts
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "ro"));
                found.insert(parts[1].to_string(), (parts[0].to_string(), read_only));
                return false;
            }
            true
        });
    }
    if let Some(Value::Array(list)) = host.get_mut("Mounts") {
        list.retain(|m| {
            let target = m["Target"].as_str().unwrap_or_default();
            let source = m["Source"].as_str().unwrap_or_default();
            let plain = m.get("VolumeOptions").is_none_or(is_zero);
            if m["Type"].as_str() != Some("volume") || !plain {
                return true;
            }
            let name = if source.is_empty() {
                mounted_volume(target).and_then(|v| v["Name"].as_str())
            } else if is_generated_volume_name(source) {
                Some(source)
            } else {
                None
            };
            match name {
                Some(name) => {
                    let read_only = m["ReadOnly"].as_bool().unwrap_or(false);
                    found.insert(target.to_string(), (name.to_string(), read_only));
                    false
                }
                None => true,
            }
        });
    }

    // Config.Volumes (the user's `-v /path` and the image's VOLUMEs) that nothing else covers.
    let covered: BTreeSet<String> = host_destinations(host);
    if let Some(volumes) = config.get("Volumes").and_then(Value::as_object) {
        for destination in volumes.keys() {
            if covered.contains(destination) || found.contains_key(destination) {
                continue;
            }
            if let Some(m) = mounted_volume(destination) {
                let name = m["Name"].as_str().unwrap_or_default().to_string();
                found.insert(
                    destination.clone(),
                    (name, !m["RW"].as_bool().unwrap_or(true)),
                );
            }
        }
    }
    found
        .into_iter()
        .filter(|(_, (name, _))| !name.is_empty())
        .map(|(destination, (name, read_only))| AnonymousVolume {
            destination,
            name,
            read_only,
        })
        .collect()
}

/// `source:target:rw` is `source:target`: read-write is the default, and compose spells it out
/// where the docker CLI does not.
fn normalize_binds(host: &mut Map<String, Value>) {
    if let Some(Value::Array(binds)) = host.get_mut("Binds") {
        for bind in binds.iter_mut() {
            if let Some(plain) = bind.as_str().and_then(|b| b.strip_suffix(":rw")) {
                if plain.matches(':').count() == 1 {
                    *bind = Value::String(plain.to_string());
                }
            }
        }
    }
}

/// A named volume mounted with nothing but a source, a target and read-only is the same to the
/// engine as the bind `name:/path[:ro]` (`-v` and `--mount type=volume` alike). Compose 2 sends
/// the one, the docker CLI and Compose 1 the other: one form keeps them equal when a pass
/// compares (records keep the form the container was created with).
pub(super) fn volume_mounts_as_binds(host: &mut Map<String, Value>) {
    let Some(Value::Array(mounts)) = host.get_mut("Mounts") else {
        return;
    };
    let mut binds = Vec::new();
    mounts.retain(|mount| {
        let Some(fields) = mount.as_object() else {
            return true;
        };
        let plain = fields.iter().all(|(key, value)| match key.as_str() {
            "Type" => value == "volume",
            "Source" | "Target" => value
                .as_str()
                .is_some_and(|v| !v.is_empty() && !v.contains(':')),
            "ReadOnly" => value.is_boolean(),
            "VolumeOptions" => is_zero(value),
            "Consistency" => is_zero(value) || value == "default",
            _ => false,
        });
        if !plain || !fields.contains_key("Source") || !fields.contains_key("Target") {
            return true;
        }
        let read_only = fields.get("ReadOnly").and_then(Value::as_bool) == Some(true);
        binds.push(Value::String(format!(
            "{}:{}{}",
            fields["Source"].as_str().unwrap_or_default(),
            fields["Target"].as_str().unwrap_or_default(),
            if read_only { ":ro" } else { "" }
        )));
        false
    });
    if mounts.is_empty() {
        host.remove("Mounts");
    }
    if !binds.is_empty() {
        let entry = host
            .entry("Binds")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.extend(binds);
        }
    }
}

/// A `Config.Volumes` entry at a path that a bind, mount or tmpfs already gives a source says
/// nothing more (compose adds one for every volume it mounts; the docker CLI does not).
fn drop_covered_volumes(config: &mut Map<String, Value>, host: &Map<String, Value>) {
    let covered = host_destinations(host);
    if let Some(Value::Object(volumes)) = config.get_mut("Volumes") {
        volumes.retain(|path, _| !covered.contains(path));
    }
}

/// Destinations already given a source by Binds, Mounts or Tmpfs.
fn host_destinations(host: &Map<String, Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for bind in host.get("Binds").map(strings).unwrap_or_default() {
        if let Some(dest) = bind.split(':').nth(1) {
            out.insert(dest.to_string());
        }
    }
    if let Some(mounts) = host.get("Mounts").and_then(Value::as_array) {
        out.extend(
            mounts
                .iter()
                .filter_map(|m| m["Target"].as_str().map(String::from)),
        );
    }
    if let Some(tmpfs) = host.get("Tmpfs").and_then(Value::as_object) {
        out.extend(tmpfs.keys().cloned());
    }
    out
}

fn capture_networks(
    networks: &Value,
    short_id: &str,
    container: &str,
) -> BTreeMap<String, Map<String, Value>> {
    let Some(networks) = networks.as_object() else {
        return BTreeMap::new();
    };
    networks
        .iter()
        .map(|(name, endpoint)| {
            let mut kept = Map::new();
            for key in ENDPOINT_FIELDS.iter().filter(|k| **k != "MacAddress") {
                let mut value = endpoint[*key].clone();
                if *key == "Aliases" {
                    // API < 1.45 adds the short id on every start: copying it piles up aliases.
                    // The container's own name resolves on every user network anyway (compose
                    // adds it as an alias, the docker CLI does not).
                    if let Value::Array(aliases) = &mut value {
                        aliases.retain(|a| {
                            a.as_str() != Some(short_id) && a.as_str() != Some(container)
                        });
                    }
                }
                if let Value::Object(ipam) = &mut value {
                    ipam.retain(|_, v| !is_zero(v));
                }
                if !is_zero(&value) {
                    kept.insert((*key).to_string(), value);
                }
            }
            (name.clone(), kept)
        })
        .collect()
}

/// `Config.MacAddress` is the address the user asked for on the primary network
/// (`--mac-address`, or `mac-address=` of the first `--network`), absent when the engine
/// generated it; from API 1.44 it is set per endpoint, so the record keeps it there. A user-set
/// address on a further network cannot be told from a generated one and is not recorded.
fn record_user_mac(
    networks: &mut BTreeMap<String, Map<String, Value>>,
    host: &Map<String, Value>,
    mac: Value,
) {
    if let Some(endpoint) = primary_network(host).and_then(|p| networks.get_mut(p)) {
        endpoint.insert("MacAddress".into(), mac);
    }
}

/// Compose 2 on API 1.44 and later creates a container on a network by the network's id: the
/// record names it, as a network created again under that name gets another id.
fn name_network_mode(host: &mut Map<String, Value>, networks: &Value) {
    let Some(Value::String(mode)) = host.get_mut("NetworkMode") else {
        return;
    };
    let named = networks.as_object().and_then(|networks| {
        networks
            .iter()
            .find(|(_, endpoint)| endpoint["NetworkID"].as_str() == Some(mode.as_str()))
    });
    if let Some((name, _)) = named {
        *mode = name.clone();
    }
}

/// The network a container is created on: none in the host's or another container's network
/// namespace, or without networking.
pub fn primary_network(host: &Map<String, Value>) -> Option<&str> {
    match host.get("NetworkMode").and_then(Value::as_str) {
        None | Some("default") => Some("bridge"),
        Some("host") | Some("none") => None,
        Some(m) if m.starts_with("container:") => None,
        Some(m) => Some(m),
    }
}

/// An image or container id as people read it: 12 hex digits, without `sha256:`.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// Names of the containers this spec needs to exist first, and whether each reference shares a
/// namespace (which dies with the container, so a recreated dependency forces a recreate).
pub fn dependencies(spec: &ContainerSpec) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for key in ["NetworkMode", "IpcMode", "PidMode"] {
        if let Some(name) = spec.host_config.get(key).and_then(Value::as_str) {
            if let Some(name) = name.strip_prefix("container:") {
                out.push((name.to_string(), true));
            }
        }
    }
    for from in spec
        .host_config
        .get("VolumesFrom")
        .map(strings)
        .unwrap_or_default()
    {
        out.push((from.split(':').next().unwrap_or(from).to_string(), false));
    }
    for link in spec
        .host_config
        .get("Links")
        .map(strings)
        .unwrap_or_default()
    {
        let target = link.split(':').next().unwrap_or(link);
        out.push((target.trim_start_matches('/').to_string(), false));
    }
    out.sort();
    out.dedup();
    out
}

/// The network a container is created on, and the networks to connect it to afterwards.
pub fn network_attachments(spec: &ContainerSpec) -> (Option<String>, Vec<String>) {
    let Some(primary) = primary_network(&spec.host_config) else {
        return (None, Vec::new());
    };
    let primary = primary.to_string();
    let others = spec
        .networks
        .keys()
        .filter(|n| **n != primary)
        .cloned()
        .collect();
    let primary = spec.networks.contains_key(&primary).then_some(primary);
    (primary, others)
}

/// The create request body for `spec`, using `image` (a reference or an id) as the image. Only
/// the primary network goes into the request: API 1.41 accepts one network at create, and
/// connecting the others before start works on every version.
pub fn create_body(spec: &ContainerSpec, image: &str) -> Result<Value> {
    let mut body = spec.config.clone();
    body.insert("Image".into(), Value::String(image.to_string()));
    let mut host = spec.host_config.clone();
    if !spec.anonymous_volumes.is_empty() {
        let mut mounts = host
            .get("Mounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for volume in &spec.anonymous_volumes {
            mounts.push(serde_json::json!({
                "Type": "volume",
                "Source": volume.name,
                "Target": volume.destination,
                "ReadOnly": volume.read_only,
            }));
        }
        host.insert("Mounts".into(), Value::Array(mounts));
    }
    body.insert("HostConfig".into(), Value::Object(host));
    if let (Some(primary), _) = network_attachments(spec) {
        let endpoint = spec.networks.get(&primary).cloned().unwrap_or_default();
        body.insert(
            "NetworkingConfig".into(),
            serde_json::json!({ "EndpointsConfig": { primary: endpoint } }),
        );
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
