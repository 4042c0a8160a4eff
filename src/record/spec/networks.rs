//! Networks: the endpoint settings a record keeps (aliases, static addresses, a user-set MAC
//! on the primary network), and which network a container is created on. Pure: no IO.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{is_zero, ContainerSpec};

/// Endpoint settings that are user intent; the rest (IP, gateway, ids) is runtime data. A
/// `MacAddress` is recorded only on the primary network, and only as the user set it
/// (`record_user_mac`): the endpoint itself reports whatever address the engine generated.
pub const ENDPOINT_FIELDS: &[&str] =
    &["Aliases", "IPAMConfig", "Links", "DriverOpts", "MacAddress"];

pub(super) fn capture_networks(
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
pub(super) fn record_user_mac(
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
pub(super) fn name_network_mode(host: &mut Map<String, Value>, networks: &Value) {
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
