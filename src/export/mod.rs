//! Export: a recorded container as the docker CLI commands that recreate it (`script`), or as
//! a compose service (`compose`). Report stage, pure: no IO.
//!
//! Every recorded field is either expressed exactly or named as inexpressible: a command that
//! quietly recreates something else would be worse than none. Values are written as the engine
//! stores them (bytes, nanoseconds), which the CLI and compose read back unchanged. Which flag
//! and which compose key say a field is one table (`fields`); the values both formats write
//! alike (ports, devices, links, restart policies) are written here once.

mod compose;
mod fields;
mod script;
mod yaml;

pub use compose::compose_file;
pub use script::run_script;

use serde_json::{json, Value};

/// Fields of a record that the chosen format cannot express, named as in the state file.
pub type Inexpressible = Vec<String>;

/// A list of strings (non-strings as JSON); anything else is empty.
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().map(text).collect())
        .unwrap_or_default()
}

/// A string as it is; anything else as JSON.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| value.to_string())
}

/// The keys of an object, as a list.
fn keys(value: &Value) -> Value {
    json!(value
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default())
}

/// `n / 10^places` written exactly, without trailing zeros: 1500000000 nanos → `1.5`.
fn decimal(n: i64, places: u32) -> String {
    let scale = 10i64.pow(places);
    let (whole, fraction) = (n / scale, (n % scale).abs());
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = places as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `PortBindings` as `-p` and compose's `ports` write them: `[ip:]host:port/proto`, an IPv6
/// host address in brackets.
fn published(value: &Value) -> Vec<String> {
    let mut ports = Vec::new();
    for (port, bindings) in value.as_object().into_iter().flatten() {
        for binding in bindings.as_array().into_iter().flatten() {
            let ip = binding["HostIp"].as_str().unwrap_or_default();
            let host = binding["HostPort"].as_str().unwrap_or_default();
            ports.push(match (ip, host) {
                ("", "") => port.clone(),
                ("", host) => format!("{host}:{port}"),
                (ip, host) if ip.contains(':') => format!("[{ip}]:{host}:{port}"),
                (ip, host) => format!("{ip}:{host}:{port}"),
            });
        }
    }
    ports
}

/// `Devices` as `--device` and compose's `devices` write them: `host:container:permissions`.
fn devices(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            format!(
                "{}:{}:{}",
                text(&d["PathOnHost"]),
                text(&d["PathInContainer"]),
                text(&d["CgroupPermissions"])
            )
        })
        .collect()
}

/// One of `Links` as the CLI and compose take it: the engine keeps `/db:/app/db`, they take
/// `db:db`. `None`: no alias, which neither can say.
fn link(link: &str) -> Option<String> {
    let (target, alias) = link.split_once(':')?;
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    Some(format!("{}:{alias}", target.trim_start_matches('/')))
}

/// `Tmpfs` as `--tmpfs` and compose's `tmpfs` write it: `path[:options]`.
fn tmpfs(value: &Value) -> Vec<String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(
            |(path, options)| match options.as_str().unwrap_or_default() {
                "" => path.clone(),
                options => format!("{path}:{options}"),
            },
        )
        .collect()
}

/// `RestartPolicy` as `--restart` and compose's `restart` write it: `name[:retries]`.
fn restart(value: &Value) -> String {
    let name = value["Name"].as_str().unwrap_or_default();
    match value["MaximumRetryCount"].as_i64().unwrap_or(0) {
        0 => name.to_string(),
        n => format!("{name}:{n}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::state::Entry;

    /// An entry named web with an anonymous volume, for the writers' tests.
    pub fn entry(config: Value, host: Value, networks: Value) -> Entry {
        serde_json::from_value(json!({
            "name": "web",
            "spec": {"image": "img:1", "image_id": "sha256:1", "config": config,
                     "host_config": host, "networks": networks,
                     "anonymous_volumes": [{"destination": "/cache", "name": "abc"}]}
        }))
        .unwrap()
    }

    #[test]
    fn shared_values_are_written_as_both_formats_read_them() {
        assert_eq!(decimal(250_000_000, 9), "0.25");
        assert_eq!(decimal(2_000_000_000, 9), "2");
        let ports = json!({"80/tcp": [{"HostIp": "::1", "HostPort": "8080"},
                                      {"HostIp": "", "HostPort": ""}]});
        assert_eq!(published(&ports), ["[::1]:8080:80/tcp", "80/tcp"]);
        assert_eq!(link("/db:/web/database").as_deref(), Some("db:database"));
        assert_eq!(link("/db"), None);
        assert_eq!(
            restart(&json!({"Name": "on-failure", "MaximumRetryCount": 3})),
            "on-failure:3"
        );
    }
}
