//! What changed in a container, with both values: what `diff` shows an operator deciding
//! whether to let a pass replace it, as terraform and `ansible --diff` would. Secrets never
//! leave here: environment values and credential-bearing options are masked when a change is
//! made, so no report, log or JSON can print them. Pure: no IO.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::record::spec::ContainerSpec;

/// One field in which a live container differs from its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// As in the state file: `image`, `config.Env`, `host_config.Memory`, `networks.front`.
    pub field: String,
    /// The recorded and the live value, secrets masked; `null` where one has none.
    pub recorded: Value,
    pub live: Value,
    /// What changed, where the values cannot be shown: `PASSWORD changed, DEBUG added`.
    pub summary: Option<String>,
}

/// What a masked value reads as.
pub const HIDDEN: &str = "<hidden>";

/// The changes that make `live` differ from `recorded`, one per field `fields` names (those
/// `spec::diff` found).
pub fn changes(recorded: &ContainerSpec, live: &ContainerSpec, fields: &[String]) -> Vec<Change> {
    fields
        .iter()
        .map(|field| {
            let (mut a, mut b) = (value_of(recorded, field), value_of(live, field));
            let mut summary = None;
            if field == "config.Env" {
                summary = Some(env_summary(&a, &b));
                (a, b) = (masked_env(&a), masked_env(&b));
            } else if let Some(key) = field.strip_prefix("host_config.") {
                (a, b) = (masked_host(key, a), masked_host(key, b));
            }
            Change {
                field: field.clone(),
                recorded: a,
                live: b,
                summary,
            }
        })
        .collect()
}

fn value_of(spec: &ContainerSpec, field: &str) -> Value {
    let get = |map: &Map<String, Value>, key: &str| map.get(key).cloned().unwrap_or(Value::Null);
    if field == "image" {
        return json!({"image": spec.image, "image_id": spec.image_id});
    }
    if field == "anonymous_volumes" {
        let places: Vec<&str> = spec
            .anonymous_volumes
            .iter()
            .map(|v| v.destination.as_str())
            .collect();
        return json!(places);
    }
    match field.split_once('.') {
        Some(("config", key)) => get(&spec.config, key),
        Some(("host_config", key)) => get(&spec.host_config, key),
        Some(("networks", name)) => spec
            .networks
            .get(name)
            .map_or(Value::Null, |e| Value::Object(e.clone())),
        _ => Value::Null,
    }
}

/// `NAME=VALUE` entries as a map of name to value (a name alone has no value).
fn env_map(env: &Value) -> BTreeMap<String, Option<String>> {
    env.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| match e.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (e.to_string(), None),
        })
        .collect()
}

/// Which variables were added, removed or changed, by name only.
fn env_summary(recorded: &Value, live: &Value) -> String {
    let (a, b) = (env_map(recorded), env_map(live));
    let mut parts = Vec::new();
    for (name, value) in &a {
        match b.get(name) {
            None => parts.push(format!("{name} removed")),
            Some(other) if other != value => parts.push(format!("{name} changed")),
            Some(_) => {}
        }
    }
    parts.extend(
        b.keys()
            .filter(|n| !a.contains_key(*n))
            .map(|n| format!("{n} added")),
    );
    if parts.is_empty() {
        // The same variables with the same values, in another order.
        parts.push("the same variables in another order".into());
    }
    parts.join(", ")
}

fn masked_env(env: &Value) -> Value {
    let masked: Vec<String> = env_map(env)
        .into_keys()
        .map(|name| format!("{name}={HIDDEN}"))
        .collect();
    match env.is_null() {
        true => Value::Null,
        false => json!(masked),
    }
}

/// Option names that carry credentials (log drivers' tokens and URLs, volume drivers'
/// passwords).
fn sensitive(option: &str) -> bool {
    let option = option.to_lowercase();
    [
        "token", "pass", "secret", "key", "auth", "cred", "url", "address",
    ]
    .iter()
    .any(|word| option.contains(word))
}

/// A HostConfig value with the values of credential-bearing options masked.
fn masked_host(key: &str, mut value: Value) -> Value {
    let mask = |options: &mut Value| {
        if let Some(options) = options.as_object_mut() {
            for (name, v) in options.iter_mut() {
                if sensitive(name) {
                    *v = json!(HIDDEN);
                }
            }
        }
    };
    match key {
        "LogConfig" => mask(&mut value["Config"]),
        "Mounts" => {
            for mount in value.as_array_mut().into_iter().flatten() {
                mask(&mut mount["VolumeOptions"]["DriverConfig"]["Options"]);
            }
        }
        _ => {}
    }
    value
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(value: Value) -> ContainerSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn environment_values_are_never_in_a_change() {
        let a = spec(json!({"image": "i", "image_id": "1",
            "config": {"Env": ["PASSWORD=hunter2", "KEEP=same", "OLD=x"]}}));
        let b = spec(json!({"image": "i", "image_id": "1",
            "config": {"Env": ["PASSWORD=letmein", "KEEP=same", "DEBUG=1"]}}));
        let found = changes(&a, &b, &["config.Env".into()]);
        assert_eq!(
            found[0].summary.as_deref(),
            Some("OLD removed, PASSWORD changed, DEBUG added")
        );
        let shown = format!("{found:?}");
        for secret in ["hunter2", "letmein", "same", "=x", "=1"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(
            found[0].live,
            json!(["DEBUG=<hidden>", "KEEP=<hidden>", "PASSWORD=<hidden>"])
        );
    }

    #[test]
    fn credential_options_are_masked_and_the_rest_shown() {
        let a = spec(json!({"image": "i", "image_id": "1", "host_config": {
            "LogConfig": {"Type": "splunk", "Config": {"splunk-token": "abc", "max-size": "1m"}},
            "Mounts": [{"Type": "volume", "Target": "/d", "VolumeOptions": {"DriverConfig":
                {"Name": "local", "Options": {"password": "pw", "type": "cifs"}}}}]}}));
        let b = spec(json!({"image": "i", "image_id": "1"}));
        let fields = ["host_config.LogConfig".into(), "host_config.Mounts".into()];
        let found = changes(&a, &b, &fields);
        assert_eq!(found[0].recorded["Config"]["splunk-token"], json!(HIDDEN));
        assert_eq!(found[0].recorded["Config"]["max-size"], json!("1m"));
        let options = &found[1].recorded[0]["VolumeOptions"]["DriverConfig"]["Options"];
        assert_eq!(options, &json!({"password": HIDDEN, "type": "cifs"}));
        assert_eq!(found[1].live, Value::Null);
    }

    #[test]
    fn each_field_carries_both_values() {
        let a = spec(json!({"image": "nginx:1.27", "image_id": "sha256:6ede",
            "host_config": {"Memory": 67108864}, "networks": {"front": {"Aliases": ["w"]}}}));
        let b = spec(json!({"image": "nginx:1.28", "image_id": "sha256:1f3a",
            "host_config": {"Memory": 134217728}}));
        let fields = [
            "image".into(),
            "host_config.Memory".into(),
            "networks.front".into(),
        ];
        let found = changes(&a, &b, &fields);
        assert_eq!(
            found[0].live,
            json!({"image": "nginx:1.28", "image_id": "sha256:1f3a"})
        );
        assert_eq!(
            (&found[1].recorded, &found[1].live),
            (&json!(67108864), &json!(134217728))
        );
        assert_eq!(found[2].recorded, json!({"Aliases": ["w"]}));
        assert_eq!(found[2].live, Value::Null);
    }
}
