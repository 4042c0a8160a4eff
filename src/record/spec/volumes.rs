//! Capture, the volumes: anonymous volumes found and recorded by their generated names, binds
//! spelled one way, and image volumes a mount covers dropped. Pure: no IO.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::canonical::clean_path;
use super::{is_zero, strings, AnonymousVolume};

/// A volume name the engine generated: 64 hex digits.
fn is_generated_volume_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Find the container's anonymous volumes and take them out of `Binds`/`Mounts`, so that a
/// container created with `-v /data` and its recreation (which mounts the same volume by name)
/// capture to the same spec.
pub(super) fn take_anonymous_volumes(
    config: &Map<String, Value>,
    host: &mut Map<String, Value>,
    mounts: &Value,
) -> Vec<AnonymousVolume> {
    // The engine mounts at the clean path what `Config.Volumes` may name with a trailing slash.
    let mounted_volume = |destination: &str| {
        let destination = clean_path(destination);
        mounts.as_array()?.iter().find(|m| {
            m["Type"].as_str() == Some("volume")
                && m["Destination"].as_str() == Some(destination.as_str())
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
                found.insert(clean_path(parts[1]), (parts[0].to_string(), read_only));
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
                    found.insert(clean_path(target), (name.to_string(), read_only));
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
                    clean_path(destination),
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
pub(super) fn normalize_binds(host: &mut Map<String, Value>) {
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
pub(super) fn drop_covered_volumes(config: &mut Map<String, Value>, host: &Map<String, Value>) {
    let covered = host_destinations(host);
    if let Some(Value::Object(volumes)) = config.get_mut("Volumes") {
        volumes.retain(|path, _| !covered.contains(path));
    }
}

/// Destinations already given a source by Binds, Mounts or Tmpfs.
pub(super) fn host_destinations(host: &Map<String, Value>) -> BTreeSet<String> {
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
