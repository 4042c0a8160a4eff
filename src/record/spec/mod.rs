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

mod canonical;
mod capture;
mod compare;
mod create;
mod filled;
mod networks;
mod podman;
#[cfg(test)]
mod tests;
mod volumes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use capture::{capture, CaptureContext};
pub use compare::{as_created, diff, normalize};
pub use create::create_body;
pub use networks::{network_attachments, primary_network, ENDPOINT_FIELDS};

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
    /// Its name in the state file.
    pub fn word(self) -> &'static str {
        match self {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
        }
    }

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

/// The volumes a record names: named sources of `Binds` and of volume `Mounts`, and its
/// anonymous volumes by the name that holds their data.
pub fn volume_names(spec: &ContainerSpec) -> Vec<String> {
    let host = &spec.host_config;
    let binds = host.get("Binds").map(strings).unwrap_or_default();
    let named = binds
        .into_iter()
        .filter_map(|b| b.split(':').next())
        .filter(|source| !source.is_empty() && !source.starts_with('/'))
        .map(String::from);
    let mounts = host
        .get("Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mounted = mounts
        .filter(|m| m["Type"].as_str() == Some("volume"))
        .filter_map(|m| m["Source"].as_str())
        .filter(|source| !source.is_empty())
        .map(String::from);
    let anonymous = spec.anonymous_volumes.iter().map(|v| v.name.clone());
    let mut names: Vec<String> = named.chain(mounted).chain(anonymous).collect();
    names.sort();
    names.dedup();
    names
}

/// The networks a record attaches to that someone made (not the engine's own `bridge`,
/// `host`, `none`, Podman's `podman`).
pub fn user_networks(spec: &ContainerSpec) -> Vec<String> {
    let builtin = ["bridge", "host", "none", "default", "podman"];
    let mode = spec.host_config.get("NetworkMode").and_then(Value::as_str);
    let mut names: Vec<String> = spec
        .networks
        .keys()
        .map(String::as_str)
        .chain(mode.filter(|m| !m.starts_with("container:")))
        .filter(|n| !builtin.contains(n))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A JSON object's fields; anything else has none.
pub(super) fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Remove zero values (null, false, 0, "", [], {}) from the top level, except the listed keys.
pub(super) fn strip_zero(map: &mut Map<String, Value>, keep: &[&str]) {
    map.retain(|key, value| keep.contains(&key.as_str()) && !value.is_null() || !is_zero(value));
}

pub(super) fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

pub(super) fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
