//! A record as the docker CLI commands that recreate it: `docker create` with every option,
//! `docker network connect` for each further network (the CLI attaches one network at
//! create), and `docker start` when the record says it runs.

use serde_json::{json, Value};

use super::fields::{self, Flag};
use super::{decimal, devices, link, published, restart, strings, text, tmpfs, Inexpressible};
use crate::record::spec::{self, ContainerSpec};
use crate::record::state::Entry;

/// The commands, one per line, each quoted for a POSIX shell; or the fields the CLI cannot say.
pub fn run_script(entry: &Entry) -> Result<String, Inexpressible> {
    let spec = &entry.spec;
    let mut flags = Flags::default();
    for (key, value) in &spec.config {
        flags.field("config", fields::CONFIG, key, value, config_flags);
    }
    for (key, value) in &spec.host_config {
        flags.field("host_config", fields::HOST, key, value, host_flags);
    }
    for volume in &spec.anonymous_volumes {
        let mut mount = format!(
            "type=volume,source={},target={}",
            volume.name, volume.destination
        );
        if volume.read_only {
            mount += ",readonly";
        }
        flags.push("--mount", mount);
    }
    let (primary, others) = spec::network_attachments(spec);
    if let Some(network) = &primary {
        endpoint_flags(spec, network, &mut flags, true);
    }
    let mut connects = Vec::new();
    for network in &others {
        let mut connect = Flags::default();
        endpoint_flags(spec, network, &mut connect, false);
        connects.push((network.clone(), connect.args));
        flags.unsupported.extend(connect.unsupported);
    }
    if !flags.unsupported.is_empty() {
        return Err(flags.unsupported);
    }

    let name = &entry.name;
    let mut create = vec![
        "docker".to_string(),
        "create".into(),
        "--name".into(),
        name.clone(),
    ];
    create.extend(flags.args);
    create.push(spec.image.clone());
    create.extend(strings(spec.config.get("Cmd")));
    let mut script = format!(
        "# {name}: image {} ({})\n{}\n",
        spec.image,
        spec.image_id,
        quote_line(&create)
    );
    for (network, args) in connects {
        let mut connect = vec!["docker".to_string(), "network".into(), "connect".into()];
        connect.extend(args);
        connect.push(network);
        connect.push(name.clone());
        script += &format!("{}\n", quote_line(&connect));
    }
    if entry.running {
        script += &format!(
            "{}\n",
            quote_line(&["docker".into(), "start".into(), name.clone()])
        );
    }
    Ok(script)
}

/// Options collected for one command, and what could not be expressed.
#[derive(Default)]
struct Flags {
    args: Vec<String>,
    unsupported: Vec<String>,
}

/// Writes the flags of a field with a syntax of its own; `field` is its name in the record.
type Own = fn(key: &str, value: &Value, field: String, flags: &mut Flags);

impl Flags {
    fn push(&mut self, flag: &str, value: impl Into<String>) {
        self.args.push(flag.to_string());
        self.args.push(value.into());
    }

    fn switch(&mut self, flag: &str) {
        self.args.push(flag.to_string());
    }

    fn cannot(&mut self, field: String) {
        self.unsupported.push(field);
    }

    /// One flag per string in a list.
    fn each(&mut self, flag: &str, items: impl IntoIterator<Item = String>) {
        for item in items {
            self.push(flag, item);
        }
    }

    /// The flags of one recorded field, as its row in `table` says.
    fn field(
        &mut self,
        section: &str,
        table: &'static [fields::Field],
        key: &str,
        value: &Value,
        own: Own,
    ) {
        let field = format!("{section}.{key}");
        let flag = fields::lookup(table, key).map_or(Flag::Never, |f| f.flag);
        match flag {
            Flag::Value(flag) => match value {
                Value::String(s) => self.push(flag, s.clone()),
                Value::Number(n) => self.push(flag, n.to_string()),
                _ => self.cannot(field),
            },
            Flag::Each(flag) => self.each(flag, strings(Some(value))),
            Flag::Keys(flag) => {
                let keys = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone());
                self.each(flag, keys);
            }
            Flag::Switch(flag) if value == &json!(true) => self.switch(flag),
            Flag::Own => own(key, value, field, self),
            Flag::Switch(_) | Flag::Never => self.cannot(field),
        }
    }
}

fn config_flags(key: &str, value: &Value, field: String, flags: &mut Flags) {
    match key {
        // Positional, after the image.
        "Cmd" => {}
        "Env" => {
            for item in strings(Some(value)) {
                // `-e NAME` without `=` would take NAME from the shell that runs the command.
                match item.contains('=') {
                    true => flags.push("-e", item),
                    false => flags.cannot(field.clone()),
                }
            }
        }
        "Labels" => {
            for (k, v) in value.as_object().into_iter().flatten() {
                flags.push("--label", format!("{k}={}", v.as_str().unwrap_or_default()));
            }
        }
        "Entrypoint" => match strings(Some(value)).as_slice() {
            [] => flags.push("--entrypoint", ""),
            [one] => flags.push("--entrypoint", one.clone()),
            // The CLI takes one word; more would move into Cmd.
            _ => flags.cannot(field),
        },
        "StopTimeout" => flags.push("--stop-timeout", value.to_string()),
        "Healthcheck" => healthcheck_flags(value, flags),
        _ => flags.cannot(field),
    }
}

fn healthcheck_flags(value: &Value, flags: &mut Flags) {
    let test = strings(value.get("Test"));
    match test.first().map(String::as_str) {
        Some("NONE") => return flags.switch("--no-healthcheck"),
        Some("CMD-SHELL") if test.len() == 2 => flags.push("--health-cmd", test[1].clone()),
        // The CLI writes every health command as CMD-SHELL.
        Some(_) => flags.cannot("config.Healthcheck.Test".into()),
        None => {}
    }
    for (key, flag) in [
        ("Interval", "--health-interval"),
        ("Timeout", "--health-timeout"),
        ("StartPeriod", "--health-start-period"),
    ] {
        if let Some(ns) = value.get(key).and_then(Value::as_i64).filter(|n| *n != 0) {
            flags.push(flag, format!("{ns}ns"));
        }
    }
    if let Some(retries) = value
        .get("Retries")
        .and_then(Value::as_i64)
        .filter(|n| *n != 0)
    {
        flags.push("--health-retries", retries.to_string());
    }
    let known = ["Test", "Interval", "Timeout", "StartPeriod", "Retries"];
    for key in value.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !known.contains(&key.as_str()) {
            flags.cannot(format!("config.Healthcheck.{key}"));
        }
    }
}

fn host_flags(key: &str, value: &Value, field: String, flags: &mut Flags) {
    // `key=value` per entry of an object.
    let pairs = |value: &Value| -> Vec<String> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect()
    };
    match key {
        // A user network is expressed with its endpoint settings; these modes have none.
        "NetworkMode" => {
            let mode = text(value);
            if matches!(mode.as_str(), "host" | "none") || mode.starts_with("container:") {
                flags.push("--network", mode);
            }
        }
        "NanoCpus" => match value.as_i64() {
            Some(nanos) => flags.push("--cpus", decimal(nanos, 9)),
            None => flags.cannot(field),
        },
        "Init" => flags.args.push(format!("--init={}", value == &json!(true))),
        "RestartPolicy" => flags.push("--restart", restart(value)),
        "LogConfig" => {
            flags.push("--log-driver", text(&value["Type"]));
            flags.each("--log-opt", pairs(&value["Config"]));
        }
        "Tmpfs" => flags.each("--tmpfs", tmpfs(value)),
        "Sysctls" => flags.each("--sysctl", pairs(value)),
        "Ulimits" => {
            for limit in value.as_array().into_iter().flatten() {
                let (name, soft, hard) = (text(&limit["Name"]), &limit["Soft"], &limit["Hard"]);
                flags.push("--ulimit", format!("{name}={soft}:{hard}"));
            }
        }
        "PortBindings" => flags.each("--publish", published(value)),
        "Devices" => flags.each("--device", devices(value)),
        "Links" => {
            for each in strings(Some(value)) {
                match link(&each) {
                    Some(link) => flags.push("--link", link),
                    None => flags.cannot(field.clone()),
                }
            }
        }
        "Mounts" => {
            for mount in value.as_array().into_iter().flatten() {
                match mount_flag(mount) {
                    Some(m) => flags.push("--mount", m),
                    None => flags.cannot(field.clone()),
                }
            }
        }
        _ => flags.cannot(field),
    }
}

/// A `--mount` value for one HostConfig mount, or `None` if it holds options the CLI's
/// syntax cannot carry.
fn mount_flag(mount: &Value) -> Option<String> {
    let mut parts = vec![format!("type={}", text(&mount["Type"]))];
    let known = ["Type", "Target", "Source", "ReadOnly"];
    if let Some(source) = mount["Source"].as_str().filter(|s| !s.is_empty()) {
        parts.push(format!("source={source}"));
    }
    parts.push(format!("target={}", text(&mount["Target"])));
    if mount["ReadOnly"] == json!(true) {
        parts.push("readonly".into());
    }
    if let Some(p) = mount["BindOptions"]["Propagation"].as_str() {
        parts.push(format!("bind-propagation={p}"));
    }
    if mount["VolumeOptions"]["NoCopy"] == json!(true) {
        parts.push("volume-nocopy".into());
    }
    if let Some(size) = mount["TmpfsOptions"]["SizeBytes"].as_i64() {
        parts.push(format!("tmpfs-size={size}"));
    }
    if let Some(mode) = mount["TmpfsOptions"]["Mode"].as_u64() {
        parts.push(format!("tmpfs-mode={mode:o}"));
    }
    let covered = |section: &str, keys: &[&str]| {
        mount[section]
            .as_object()
            .is_none_or(|o| o.keys().all(|k| keys.contains(&k.as_str())))
    };
    let expressible = mount
        .as_object()?
        .keys()
        .all(|k| known.contains(&k.as_str()) || k.ends_with("Options"))
        && covered("BindOptions", &["Propagation"])
        && covered("VolumeOptions", &["NoCopy"])
        && covered("TmpfsOptions", &["SizeBytes", "Mode"]);
    // A comma or quote inside a value would need the CLI's CSV quoting; not worth guessing.
    let plain = parts.iter().all(|p| !p.contains([',', '"']));
    (expressible && plain).then(|| parts.join(","))
}

/// The endpoint settings of `network`: `--network` and `--network-alias` at create, `--alias`
/// for `docker network connect`.
fn endpoint_flags(spec: &ContainerSpec, network: &str, flags: &mut Flags, at_create: bool) {
    let field = format!("networks.{network}");
    let endpoint = spec.networks.get(network).cloned().unwrap_or_default();
    if at_create {
        flags.push("--network", network);
    }
    let alias_flag = if at_create {
        "--network-alias"
    } else {
        "--alias"
    };
    for (key, value) in &endpoint {
        match key.as_str() {
            "Aliases" => flags.each(alias_flag, strings(Some(value))),
            "IPAMConfig" => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    match k.as_str() {
                        "IPv4Address" => flags.push("--ip", text(v)),
                        "IPv6Address" => flags.push("--ip6", text(v)),
                        other => flags.cannot(format!("{field}.IPAMConfig.{other}")),
                    }
                }
            }
            other => flags.cannot(format!("{field}.{other}")),
        }
    }
}

fn quote_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| match shlex::try_quote(w) {
            Ok(quoted) => quoted.into_owned(),
            // A NUL byte cannot be passed on a command line at all.
            Err(_) => format!("'{}'", w.replace('\0', "")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::export::tests::entry;

    #[test]
    fn a_record_becomes_create_connect_and_start_with_every_option_quoted() {
        let e = entry(
            json!({"Env": ["A=it's $HOME"], "Cmd": ["sh", "-c", "echo hi"],
                   "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1500000000}}),
            json!({"NetworkMode": "front", "NanoCpus": 1500000000, "Memory": 67108864,
                   "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                   "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                   "Links": ["/db:/web/database"]}),
            json!({"front": {"Aliases": ["w"]}, "back": {"IPAMConfig": {"IPv4Address": "10.1.0.5"}}}),
        );
        let script = run_script(&e).unwrap();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[0], "# web: image img:1 (sha256:1)");
        assert_eq!(
            lines[1],
            "docker create --name web -e \"A=it's \"'$HOME' --health-cmd true \
             --health-interval 1500000000ns --link db:database --memory 67108864 \
             --cpus 1.5 --publish 127.0.0.1::80/tcp --restart on-failure:3 \
             --mount 'type=volume,source=abc,target=/cache' --network front \
             --network-alias w img:1 sh -c 'echo hi'"
        );
        assert_eq!(lines[2], "docker network connect --ip 10.1.0.5 back web");
        assert_eq!(lines[3], "docker start web");
    }

    #[test]
    fn what_the_cli_cannot_say_is_named_not_dropped() {
        let e = entry(
            json!({"Entrypoint": ["a", "b"], "Healthcheck": {"Test": ["CMD", "x"]}}),
            json!({"StorageOpt": {"size": "1G"}}),
            json!({"bridge": {"DriverOpts": {"a": "b"}}}),
        );
        assert_eq!(
            run_script(&e).unwrap_err(),
            [
                "config.Entrypoint",
                "config.Healthcheck.Test",
                "host_config.StorageOpt",
                "networks.bridge.DriverOpts"
            ]
        );
    }
}
