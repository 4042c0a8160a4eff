//! Compare, one spelling per meaning: values the engines accept in several spellings, and
//! report either as sent (Docker) or in a form of their own (Podman), brought into one form on
//! both sides of a comparison. A capability is `NET_ADMIN` however it was written, a signal its
//! number, a path without its trailing slash; a value that means something else stays apart.
//! Never applied to a record: the create request carries what the user wrote. Pure: no IO.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::is_zero;

/// `Config` fields in their one spelling.
pub(super) fn config(config: &mut Map<String, Value>) {
    if let Some(Value::String(signal)) = config.get_mut("StopSignal") {
        if let Some(number) = signal_number(signal) {
            *signal = number.to_string();
        }
    }
    if let Some(Value::Object(volumes)) = config.get_mut("Volumes") {
        *volumes = std::mem::take(volumes)
            .into_iter()
            .map(|(path, v)| (clean_path(&path), v))
            .collect();
    }
}

/// `HostConfig` fields in their one spelling.
pub(super) fn host(host: &mut Map<String, Value>) {
    for key in ["CapAdd", "CapDrop"] {
        if let Some(Value::Array(caps)) = host.get_mut(key) {
            for cap in caps.iter_mut() {
                if let Some(text) = cap.as_str() {
                    *cap = Value::String(capability(text));
                }
            }
        }
    }
    if let Some(Value::Array(options)) = host.get_mut("SecurityOpt") {
        *options = std::mem::take(options)
            .into_iter()
            .filter_map(|o| match o.as_str() {
                Some(text) => security_option(text).map(Value::String),
                None => Some(o),
            })
            .collect();
    }
    if let Some(Value::Array(binds)) = host.get_mut("Binds") {
        for bind in binds.iter_mut() {
            if let Some(text) = bind.as_str() {
                *bind = Value::String(bind_paths_cleaned(text));
            }
        }
    }
    if let Some(Value::Object(tmpfs)) = host.get_mut("Tmpfs") {
        *tmpfs = std::mem::take(tmpfs)
            .into_iter()
            .map(|(path, options)| (clean_path(&path), tmpfs_options(options)))
            .collect();
    }
    // No options and empty options are the same (Docker reports `{}`, Podman `null`).
    if let Some(Value::Object(log)) = host.get_mut("LogConfig") {
        if log.get("Config").is_some_and(is_zero) {
            log.remove("Config");
        }
    }
}

/// A published port that names no host port takes the one the engine picked: Docker picks at
/// every start and reports `""`, Podman picks once, at create, and reports the port. A record
/// that names a port is compared with it.
pub(super) fn any_host_port(recorded: &Map<String, Value>, live: &mut Map<String, Value>) {
    let (Some(Value::Object(wanted)), Some(Value::Object(ports))) =
        (recorded.get("PortBindings"), live.get_mut("PortBindings"))
    else {
        return;
    };
    for (port, bindings) in ports.iter_mut() {
        let (Some(wanted), Value::Array(bindings)) =
            (wanted.get(port).and_then(Value::as_array), bindings)
        else {
            continue;
        };
        for binding in bindings.iter_mut() {
            let any = wanted
                .iter()
                .any(|w| w["HostIp"] == binding["HostIp"] && w["HostPort"] == "");
            if any && !wanted.contains(binding) {
                binding["HostPort"] = Value::String(String::new());
            }
        }
    }
}

/// `net_admin`, `CAP_NET_ADMIN` and `NET_ADMIN` are one capability to both engines.
pub(super) fn capability(text: &str) -> String {
    let upper = text.to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(bare) => bare.to_string(),
        None => upper,
    }
}

/// `no-new-privileges`, `no-new-privileges:true` and `no-new-privileges=true` are one option
/// (and `=false` is the default, no option); `key:value` is the older spelling of `key=value`.
fn security_option(text: &str) -> Option<String> {
    let spelled = match text.split_once('=') {
        Some(_) => text.to_string(),
        None => text.replacen(':', "=", 1),
    };
    match spelled.as_str() {
        "no-new-privileges=true" => Some("no-new-privileges".into()),
        "no-new-privileges=false" => None,
        _ => Some(spelled),
    }
}

/// `/srv/:/data/:ro` is `/srv:/data:ro`: Podman cleans the host path, and a trailing slash
/// names the same directory to both engines. A named volume's name is left as it is.
fn bind_paths_cleaned(bind: &str) -> String {
    let mut parts: Vec<String> = bind.splitn(3, ':').map(String::from).collect();
    for part in parts.iter_mut().take(2) {
        if part.starts_with('/') {
            *part = clean_path(part);
        }
    }
    parts.join(":")
}

/// Tmpfs options without `rw`, the default that Docker keeps and Podman drops.
fn tmpfs_options(options: Value) -> Value {
    match options.as_str() {
        Some(text) => Value::String(
            text.split(',')
                .filter(|o| !o.is_empty() && *o != "rw")
                .collect::<Vec<_>>()
                .join(","),
        ),
        None => options,
    }
}

/// A path as Go's `filepath.Clean` writes it, as the engines clean the paths they are sent:
/// no trailing slash, no `.`, no empty element, `..` resolved lexically.
pub(super) fn clean_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The number of a Linux signal given by name (`TERM`, `SIGTERM`, `sigterm`, `SIGRTMIN+3`)
/// or number, as the engines parse a stop signal; `None` for what is no signal.
pub(super) fn signal_number(text: &str) -> Option<u32> {
    if let Ok(number) = text.parse::<u32>() {
        return Some(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(offset) = name.strip_prefix("RTMIN+") {
        return offset.parse::<u32>().ok().map(|n| 34 + n);
    }
    if let Some(offset) = name.strip_prefix("RTMAX-") {
        return offset
            .parse::<u32>()
            .ok()
            .and_then(|n| 64u32.checked_sub(n));
    }
    let names: BTreeMap<&str, u32> = BTreeMap::from([
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
        ("RTMIN", 34),
        ("RTMAX", 64),
    ]);
    names.get(name).copied()
}

/// HostConfig lists the engine treats as sets (capabilities, security options, groups, device
/// rules, links, `--volumes-from`, extra hosts, resolver options, devices, limits). `Dns` and
/// `DnsSearch` are not among them: the resolver tries them in order.
pub(super) const SETS: &[&str] = &[
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "GroupAdd",
    "DeviceCgroupRules",
    "Links",
    "VolumesFrom",
    "ExtraHosts",
    "DnsOptions",
    "Devices",
    "Ulimits",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
];

/// Endpoint settings with their aliases in order: aliases are a set, and the engine and
/// compose list them in different orders. The container's own hostname is no alias of the
/// user's: engines before API 1.45 add it on every user network, later ones do not.
pub(super) fn aliases_as_set(
    endpoint: &Map<String, Value>,
    hostname: Option<&str>,
) -> Map<String, Value> {
    let mut endpoint = endpoint.clone();
    if let Some(Value::Array(aliases)) = endpoint.get_mut("Aliases") {
        aliases.retain(|a| a.as_str() != hostname);
        aliases.sort_by_key(|a| a.to_string());
        aliases.dedup();
        if aliases.is_empty() {
            endpoint.remove("Aliases");
        }
    }
    endpoint
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host_of(value: Value) -> Map<String, Value> {
        let mut map = value.as_object().cloned().unwrap();
        host(&mut map);
        map
    }

    #[test]
    fn spellings_of_one_meaning_are_one_value() {
        assert_eq!(
            host_of(
                json!({"CapAdd": ["net_admin", "CAP_NET_ADMIN", "cap_sys_time"],
                           "SecurityOpt": ["no-new-privileges:true", "seccomp:unconfined",
                                           "no-new-privileges=false", "label=user:u"],
                           "Binds": ["/srv/:/data/:ro", "vol/:/v"],
                           "Tmpfs": {"/scratch/": "rw,size=1m"},
                           "LogConfig": {"Type": "none", "Config": null}})
            ),
            host_of(json!({"CapAdd": ["NET_ADMIN", "NET_ADMIN", "SYS_TIME"],
                           "SecurityOpt": ["no-new-privileges", "seccomp=unconfined",
                                           "label=user:u"],
                           "Binds": ["/srv:/data:ro", "vol/:/v"],
                           "Tmpfs": {"/scratch": "size=1m"},
                           "LogConfig": {"Type": "none"}}))
        );
        for (a, b) in [("TERM", "15"), ("sigterm", "SIGTERM"), ("SIGRTMIN+3", "37")] {
            assert_eq!(signal_number(a), signal_number(b), "{a} {b}");
        }
        assert_eq!(clean_path("/srv//app/./../x/"), "/srv/x");
        assert_eq!(clean_path("/.."), "/");
    }

    #[test]
    fn what_means_something_else_stays_apart() {
        let a = host_of(
            json!({"CapAdd": ["NET_ADMIN"], "SecurityOpt": ["no-new-privileges"],
                               "Binds": ["/srv:/data"], "Tmpfs": {"/scratch": "size=1m"},
                               "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}),
        );
        for other in [
            json!({"CapAdd": ["NET_RAW"]}),
            json!({"SecurityOpt": ["no-new-privileges=false"]}),
            json!({"Binds": ["/srv/a:/data"]}),
            json!({"Tmpfs": {"/scratch": "size=2m"}}),
            json!({"LogConfig": {"Type": "json-file"}}),
        ] {
            let mut b = a.clone();
            for (key, value) in other.as_object().unwrap() {
                b.insert(key.clone(), value.clone());
            }
            assert_ne!(host_of(Value::Object(b)), a, "{other}");
        }
        assert_ne!(signal_number("USR1"), signal_number("USR2"));
        assert_eq!(signal_number("NOSUCH"), None);
    }

    #[test]
    fn a_port_left_to_the_engine_takes_the_one_it_picked_and_only_that() {
        let recorded = json!({"PortBindings": {
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]}});
        let recorded = recorded.as_object().unwrap();
        let mut live = json!({"PortBindings": {
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "35597"}],
            "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8082"}]}})
        .as_object()
        .cloned()
        .unwrap();
        any_host_port(recorded, &mut live);
        assert_eq!(
            live["PortBindings"]["80/tcp"],
            recorded["PortBindings"]["80/tcp"]
        );
        assert_eq!(live["PortBindings"]["81/tcp"][0]["HostPort"], "8082");
        // Another address is another binding.
        let mut elsewhere = json!({"PortBindings": {
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "35597"}]}})
        .as_object()
        .cloned()
        .unwrap();
        any_host_port(recorded, &mut elsewhere);
        assert_eq!(elsewhere["PortBindings"]["80/tcp"][0]["HostPort"], "35597");
    }
}
