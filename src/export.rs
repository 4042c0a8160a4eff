//! Export: a recorded container as the docker CLI commands that recreate it, or as a compose
//! service. Report stage, pure: no IO.
//!
//! Every recorded field is either expressed exactly or named as inexpressible: a command that
//! quietly recreates something else would be worse than none. Values are written as the engine
//! stores them (bytes, nanoseconds), which the CLI and compose read back unchanged.

use serde_json::{json, Map, Value};

use crate::spec::{self, ContainerSpec};
use crate::state::Entry;

/// Fields of a record that the chosen format cannot express, named as in the state file.
pub type Inexpressible = Vec<String>;

/// `docker create` with every option, `docker network connect` for each further network (the
/// CLI attaches one network at create), and `docker start` when the record says it runs.
pub fn run_script(entry: &Entry) -> Result<String, Inexpressible> {
    let spec = &entry.spec;
    let mut flags = Flags::default();
    for (key, value) in &spec.config {
        config_flags(key, value, &mut flags);
    }
    for (key, value) in &spec.host_config {
        host_flags(key, value, &mut flags);
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
        endpoint_flags(
            &format!("networks.{network}"),
            spec,
            network,
            &mut flags,
            true,
        );
    }
    let mut connects = Vec::new();
    for network in &others {
        let mut connect = Flags::default();
        endpoint_flags(
            &format!("networks.{network}"),
            spec,
            network,
            &mut connect,
            false,
        );
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

/// A compose file with one service per entry, each `container_name` the entry's name, and the
/// networks and volumes they use declared `external` (they exist already; compose must not
/// create prefixed copies). Entries recorded stopped are marked in a comment: compose has no
/// word for "created but not started" (`up --no-start` does it for all).
pub fn compose_file(entries: &[&Entry]) -> Result<String, (String, Inexpressible)> {
    let mut services = Map::new();
    let mut networks = Map::new();
    let mut volumes = Map::new();
    let mut stopped = Vec::new();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    for entry in entries {
        let service = compose_service(entry, &names, &mut networks, &mut volumes)
            .map_err(|fields| (entry.name.clone(), fields))?;
        services.insert(entry.name.clone(), Value::Object(service));
        if !entry.running {
            stopped.push(entry.name.clone());
        }
    }
    let mut file = Map::new();
    file.insert("services".into(), Value::Object(services));
    let external = |names: Map<String, Value>| {
        names
            .into_iter()
            .map(|(name, _)| (name, json!({"external": true})))
            .collect::<Map<String, Value>>()
    };
    if !networks.is_empty() {
        file.insert("networks".into(), Value::Object(external(networks)));
    }
    if !volumes.is_empty() {
        file.insert("volumes".into(), Value::Object(external(volumes)));
    }
    let mut file = Value::Object(file);
    escape_interpolation(&mut file);
    let mut text = String::from("# Written by `guestlist show --format compose`.\n");
    for name in stopped {
        text += &format!("# {name} is recorded stopped: `docker-compose up --no-start {name}`\n");
    }
    yaml(&file, 0, &mut text);
    Ok(text)
}

fn compose_service(
    entry: &Entry,
    services: &[&str],
    networks: &mut Map<String, Value>,
    volumes: &mut Map<String, Value>,
) -> Result<Map<String, Value>, Inexpressible> {
    let spec = &entry.spec;
    let mut service = Map::new();
    let mut cannot = Vec::new();
    service.insert("container_name".into(), json!(entry.name));
    service.insert("image".into(), json!(spec.image));
    let mut mounts: Vec<Value> = Vec::new();
    for (key, value) in &spec.config {
        let field = format!("config.{key}");
        let (name, v) = match key.as_str() {
            "Cmd" => ("command", value.clone()),
            "Entrypoint" => ("entrypoint", value.clone()),
            "Env" => ("environment", value.clone()),
            "Labels" => ("labels", value.clone()),
            "WorkingDir" => ("working_dir", value.clone()),
            "User" => ("user", value.clone()),
            "Hostname" => ("hostname", value.clone()),
            "Domainname" => ("domainname", value.clone()),
            "StopSignal" => ("stop_signal", value.clone()),
            "StopTimeout" => ("stop_grace_period", json!(format!("{}s", value))),
            "Tty" => ("tty", value.clone()),
            "OpenStdin" => ("stdin_open", value.clone()),
            "ExposedPorts" => ("expose", keys(value)),
            "Volumes" => {
                // Anonymous volumes at a path the record gives no source: compose creates them.
                let covered: Vec<&str> = spec
                    .anonymous_volumes
                    .iter()
                    .map(|v| v.destination.as_str())
                    .collect();
                mounts.extend(
                    keys(value)
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| !covered.contains(&p.as_str().unwrap_or_default()))
                        .cloned(),
                );
                continue;
            }
            "Healthcheck" => match compose_healthcheck(value) {
                Some(h) => ("healthcheck", h),
                None => {
                    cannot.push(field);
                    continue;
                }
            },
            _ => {
                cannot.push(field);
                continue;
            }
        };
        service.insert(name.into(), v);
    }
    for (key, value) in &spec.host_config {
        let field = format!("host_config.{key}");
        // Compose checks at parse time that a `container:X` exists, unless X is a service of
        // the same file, which it then also creates first.
        let value = &match value.as_str().and_then(|v| v.strip_prefix("container:")) {
            Some(other) if services.contains(&other) => json!(format!("service:{other}")),
            _ => value.clone(),
        };
        // Only Podman records a pids limit of 0 (its own "no limit"); compose leaves a 0 out,
        // and Podman then applies its default of 2048.
        if key == "PidsLimit" && value.as_i64() == Some(0) {
            cannot.push(field);
            continue;
        }
        let simple = COMPOSE_HOST.iter().find(|(k, _)| *k == key);
        if let Some((_, name)) = simple {
            service.insert((*name).into(), value.clone());
            continue;
        }
        let (name, v) = match key.as_str() {
            "NetworkMode" => {
                let mode = text(value);
                let shared = mode.starts_with("container:") || mode.starts_with("service:");
                if matches!(mode.as_str(), "host" | "none") || shared {
                    ("network_mode", json!(mode))
                } else {
                    continue;
                }
            }
            "NanoCpus" => match value.as_i64() {
                Some(nanos) => ("cpus", json!(decimal(nanos, 9))),
                None => {
                    cannot.push(field);
                    continue;
                }
            },
            "Binds" => {
                for bind in strings(Some(value)) {
                    let source = bind.split(':').next().unwrap_or_default();
                    if !source.starts_with('/') && !source.starts_with('.') {
                        volumes.insert(source.to_string(), Value::Null);
                    }
                    mounts.push(json!(bind));
                }
                continue;
            }
            "Mounts" => {
                for mount in value.as_array().into_iter().flatten() {
                    match compose_mount(mount) {
                        Some(m) => {
                            if mount["Type"] == "volume" {
                                if let Some(source) = mount["Source"].as_str() {
                                    volumes.insert(source.to_string(), Value::Null);
                                }
                            }
                            mounts.push(m)
                        }
                        None => cannot.push(field.clone()),
                    }
                }
                continue;
            }
            "Tmpfs" => {
                let list: Vec<String> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(path, o)| match o.as_str().unwrap_or_default() {
                        "" => path.clone(),
                        o => format!("{path}:{o}"),
                    })
                    .collect();
                ("tmpfs", json!(list))
            }
            "RestartPolicy" => {
                let name = value["Name"].as_str().unwrap_or_default();
                match value["MaximumRetryCount"].as_i64().unwrap_or(0) {
                    0 => ("restart", json!(name)),
                    n => ("restart", json!(format!("{name}:{n}"))),
                }
            }
            "LogConfig" => (
                "logging",
                json!({"driver": value["Type"], "options": value["Config"]}),
            ),
            "Ulimits" => {
                let mut limits = Map::new();
                for limit in value.as_array().into_iter().flatten() {
                    limits.insert(
                        text(&limit["Name"]),
                        json!({"soft": limit["Soft"], "hard": limit["Hard"]}),
                    );
                }
                ("ulimits", Value::Object(limits))
            }
            "PortBindings" => {
                let mut ports = Vec::new();
                for (port, bindings) in value.as_object().into_iter().flatten() {
                    for binding in bindings.as_array().into_iter().flatten() {
                        let ip = binding["HostIp"].as_str().unwrap_or_default();
                        let host = binding["HostPort"].as_str().unwrap_or_default();
                        ports.push(match (ip, host) {
                            ("", "") => port.clone(),
                            ("", host) => format!("{host}:{port}"),
                            (ip, host) => format!("{}:{host}:{port}", bracketed(ip)),
                        });
                    }
                }
                ("ports", json!(ports))
            }
            "Devices" => {
                let list: Vec<String> = value
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
                    .collect();
                ("devices", json!(list))
            }
            "VolumesFrom" => {
                // Compose reads a bare name as a service: one of this file, or a container.
                let list: Vec<String> = strings(Some(value))
                    .into_iter()
                    .map(
                        |v| match services.contains(&v.split(':').next().unwrap_or_default()) {
                            true => v,
                            false => format!("container:{v}"),
                        },
                    )
                    .collect();
                ("volumes_from", json!(list))
            }
            "Links" => {
                let mut list = Vec::new();
                for link in strings(Some(value)) {
                    match link.split_once(':') {
                        Some((target, alias)) => {
                            let alias = alias.rsplit('/').next().unwrap_or(alias);
                            list.push(format!("{}:{alias}", target.trim_start_matches('/')));
                        }
                        None => cannot.push(field.clone()),
                    }
                }
                ("external_links", json!(list))
            }
            _ => {
                cannot.push(field);
                continue;
            }
        };
        service.insert(name.into(), v);
    }
    let declared = spec.config.get("Volumes").and_then(Value::as_object);
    for volume in &spec.anonymous_volumes {
        volumes.insert(volume.name.clone(), Value::Null);
        // Compose declares the path in Config.Volumes for the short syntax only: use it
        // exactly where the record has the declaration (`-v /path`, not `--mount`).
        let mount = match declared.is_some_and(|d| d.contains_key(&volume.destination)) {
            true => {
                let mode = if volume.read_only { ":ro" } else { "" };
                json!(format!("{}:{}{mode}", volume.name, volume.destination))
            }
            false => {
                let mut m = json!({"type": "volume", "source": volume.name,
                                   "target": volume.destination});
                if volume.read_only {
                    m["read_only"] = json!(true);
                }
                m
            }
        };
        mounts.push(mount);
    }
    if !mounts.is_empty() {
        service.insert("volumes".into(), json!(mounts));
    }
    compose_networks(spec, &mut service, networks, &mut cannot);
    match cannot.is_empty() {
        true => Ok(service),
        false => Err(cannot),
    }
}

/// HostConfig fields that compose takes as they are, under its own name.
const COMPOSE_HOST: &[(&str, &str)] = &[
    ("CapAdd", "cap_add"),
    ("CapDrop", "cap_drop"),
    ("SecurityOpt", "security_opt"),
    ("ReadonlyRootfs", "read_only"),
    ("Memory", "mem_limit"),
    ("MemorySwap", "memswap_limit"),
    ("MemoryReservation", "mem_reservation"),
    ("MemorySwappiness", "mem_swappiness"),
    ("CpuShares", "cpu_shares"),
    ("CpuQuota", "cpu_quota"),
    ("CpuPeriod", "cpu_period"),
    ("CpusetCpus", "cpuset"),
    ("PidsLimit", "pids_limit"),
    ("ShmSize", "shm_size"),
    ("OomScoreAdj", "oom_score_adj"),
    ("OomKillDisable", "oom_kill_disable"),
    ("Init", "init"),
    ("ExtraHosts", "extra_hosts"),
    ("Dns", "dns"),
    ("DnsSearch", "dns_search"),
    ("DnsOptions", "dns_opt"),
    ("GroupAdd", "group_add"),
    ("IpcMode", "ipc"),
    ("PidMode", "pid"),
    ("UsernsMode", "userns_mode"),
    ("Sysctls", "sysctls"),
    ("Privileged", "privileged"),
    ("Runtime", "runtime"),
    ("CgroupParent", "cgroup_parent"),
    ("PublishAllPorts", "publish_all_ports"),
];

fn compose_networks(
    spec: &ContainerSpec,
    service: &mut Map<String, Value>,
    networks: &mut Map<String, Value>,
    cannot: &mut Inexpressible,
) {
    let (primary, others) = spec::network_attachments(spec);
    let Some(primary) = primary else { return };
    let plain_bridge = spec.networks.get("bridge").is_none_or(Map::is_empty);
    if primary == "bridge" && others.is_empty() && plain_bridge {
        // Not compose's own project network: the default bridge, as `docker run` has it.
        service.insert("network_mode".into(), json!("bridge"));
        return;
    }
    let mut attached = Map::new();
    for (i, name) in std::iter::once(&primary).chain(&others).enumerate() {
        let endpoint = spec.networks.get(name).cloned().unwrap_or_default();
        // The primary network connects first and becomes the NetworkMode.
        let mut settings = json!({"priority": 1000 - i});
        for (key, value) in endpoint {
            match key.as_str() {
                "Aliases" => settings["aliases"] = value,
                "IPAMConfig" => {
                    for (k, v) in value.as_object().into_iter().flatten() {
                        match k.as_str() {
                            "IPv4Address" => settings["ipv4_address"] = v.clone(),
                            "IPv6Address" => settings["ipv6_address"] = v.clone(),
                            other => cannot.push(format!("networks.{name}.IPAMConfig.{other}")),
                        }
                    }
                }
                other => cannot.push(format!("networks.{name}.{other}")),
            }
        }
        attached.insert(name.clone(), settings);
        networks.insert(name.clone(), Value::Null);
    }
    service.insert("networks".into(), Value::Object(attached));
}

fn compose_healthcheck(value: &Value) -> Option<Value> {
    let test = strings(value.get("Test"));
    if test.first().map(String::as_str) == Some("NONE") {
        return Some(json!({"disable": true}));
    }
    let mut health = json!({"test": test});
    for (key, name) in [
        ("Interval", "interval"),
        ("Timeout", "timeout"),
        ("StartPeriod", "start_period"),
    ] {
        if let Some(ns) = value.get(key).and_then(Value::as_i64).filter(|n| *n != 0) {
            health[name] = json!(duration(ns)?);
        }
    }
    if let Some(retries) = value.get("Retries").filter(|r| !r.is_null()) {
        health["retries"] = retries.clone();
    }
    let known = ["Test", "Interval", "Timeout", "StartPeriod", "Retries"];
    value
        .as_object()?
        .keys()
        .all(|k| known.contains(&k.as_str()))
        .then_some(health)
}

/// Nanoseconds in the largest unit compose reads that keeps them exact.
fn duration(ns: i64) -> Option<String> {
    [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")]
        .into_iter()
        .find(|(unit, _)| ns % unit == 0)
        .map(|(unit, suffix)| format!("{}{suffix}", ns / unit))
}

/// A compose long-syntax volume entry for one HostConfig mount.
fn compose_mount(mount: &Value) -> Option<Value> {
    let mut m = json!({"type": mount["Type"], "target": mount["Target"]});
    if let Some(source) = mount["Source"].as_str().filter(|s| !s.is_empty()) {
        m["source"] = json!(source);
    }
    if mount["ReadOnly"] == json!(true) {
        m["read_only"] = json!(true);
    }
    if let Some(p) = mount["BindOptions"]["Propagation"].as_str() {
        m["bind"] = json!({"propagation": p});
    }
    if mount["VolumeOptions"]["NoCopy"] == json!(true) {
        m["volume"] = json!({"nocopy": true});
    }
    if let Some(size) = mount["TmpfsOptions"]["SizeBytes"].as_i64() {
        m["tmpfs"] = json!({"size": size});
    }
    let covered = |section: &str, keys: &[&str]| {
        mount[section]
            .as_object()
            .is_none_or(|o| o.keys().all(|k| keys.contains(&k.as_str())))
    };
    let known = [
        "Type",
        "Target",
        "Source",
        "ReadOnly",
        "BindOptions",
        "VolumeOptions",
        "TmpfsOptions",
    ];
    (mount
        .as_object()?
        .keys()
        .all(|k| known.contains(&k.as_str()))
        && covered("BindOptions", &["Propagation"])
        && covered("VolumeOptions", &["NoCopy"])
        && covered("TmpfsOptions", &["SizeBytes"]))
    .then_some(m)
}

/// The keys of an object, as a list.
fn keys(value: &Value) -> Value {
    json!(value
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default())
}

/// Block-style YAML for a JSON value. Scalars are written as JSON (a double-quoted YAML
/// string is a JSON string), so nothing is ever reinterpreted (`no`, `1.10`, `*`).
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        *out += &format!("{pad}{}:\n", Value::String(key.clone()));
                        yaml(v, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        *out += &format!("{pad}{}:\n", Value::String(key.clone()));
                        yaml(v, indent + 2, out);
                    }
                    _ => *out += &format!("{pad}{}: {v}\n", Value::String(key.clone())),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut nested = String::new();
                        yaml(item, indent + 2, &mut nested);
                        // The first key goes on the dash's line.
                        *out += &format!("{pad}- {}", &nested[indent + 2..]);
                    }
                    _ => *out += &format!("{pad}- {item}\n"),
                }
            }
        }
        scalar => *out += &format!("{pad}{scalar}\n"),
    }
}

/// Compose replaces `$NAME` in every value of the file; `$$` is a literal `$`.
fn escape_interpolation(value: &mut Value) {
    match value {
        Value::String(s) => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_interpolation),
        Value::Object(map) => map.values_mut().for_each(escape_interpolation),
        _ => {}
    }
}

/// Options collected for one command, and what could not be expressed.
#[derive(Default)]
struct Flags {
    args: Vec<String>,
    unsupported: Vec<String>,
}

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
    fn each(&mut self, flag: &str, value: &Value) {
        for item in strings(Some(value)) {
            self.push(flag, item);
        }
    }
}

fn config_flags(key: &str, value: &Value, flags: &mut Flags) {
    let field = || format!("config.{key}");
    match key {
        // Positional, after the image.
        "Cmd" => {}
        "Env" => {
            for item in strings(Some(value)) {
                // `-e NAME` without `=` would take NAME from the shell that runs the command.
                match item.contains('=') {
                    true => flags.push("-e", item),
                    false => flags.cannot(field()),
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
            _ => flags.cannot(field()),
        },
        "WorkingDir" => flags.push("--workdir", text(value)),
        "User" => flags.push("--user", text(value)),
        "Hostname" => flags.push("--hostname", text(value)),
        "Domainname" => flags.push("--domainname", text(value)),
        "StopSignal" => flags.push("--stop-signal", text(value)),
        "StopTimeout" => flags.push("--stop-timeout", value.to_string()),
        "Tty" if value == &json!(true) => flags.switch("--tty"),
        "OpenStdin" if value == &json!(true) => flags.switch("--interactive"),
        "ExposedPorts" => {
            for port in value.as_object().into_iter().flatten().map(|(p, _)| p) {
                flags.push("--expose", port.clone());
            }
        }
        "Volumes" => {
            for path in value.as_object().into_iter().flatten().map(|(p, _)| p) {
                flags.push("--volume", path.clone());
            }
        }
        "Healthcheck" => healthcheck_flags(value, flags),
        _ => flags.cannot(field()),
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

/// HostConfig fields that map one to one onto a flag with the value as the engine stores it.
const HOST_SCALARS: &[(&str, &str)] = &[
    ("Memory", "--memory"),
    ("MemorySwap", "--memory-swap"),
    ("MemoryReservation", "--memory-reservation"),
    ("MemorySwappiness", "--memory-swappiness"),
    ("CpuShares", "--cpu-shares"),
    ("CpuPeriod", "--cpu-period"),
    ("CpuQuota", "--cpu-quota"),
    ("CpuRealtimePeriod", "--cpu-rt-period"),
    ("CpuRealtimeRuntime", "--cpu-rt-runtime"),
    ("CpusetCpus", "--cpuset-cpus"),
    ("CpusetMems", "--cpuset-mems"),
    ("PidsLimit", "--pids-limit"),
    ("ShmSize", "--shm-size"),
    ("OomScoreAdj", "--oom-score-adj"),
    ("BlkioWeight", "--blkio-weight"),
    ("IpcMode", "--ipc"),
    ("PidMode", "--pid"),
    ("UTSMode", "--uts"),
    ("UsernsMode", "--userns"),
    ("CgroupnsMode", "--cgroupns"),
    ("CgroupParent", "--cgroup-parent"),
    ("Runtime", "--runtime"),
];

/// HostConfig lists of strings that take one flag per item.
const HOST_LISTS: &[(&str, &str)] = &[
    ("Binds", "--volume"),
    ("CapAdd", "--cap-add"),
    ("CapDrop", "--cap-drop"),
    ("SecurityOpt", "--security-opt"),
    ("ExtraHosts", "--add-host"),
    ("Dns", "--dns"),
    ("DnsSearch", "--dns-search"),
    ("DnsOptions", "--dns-option"),
    ("GroupAdd", "--group-add"),
    ("VolumesFrom", "--volumes-from"),
    ("DeviceCgroupRules", "--device-cgroup-rule"),
];

fn host_flags(key: &str, value: &Value, flags: &mut Flags) {
    let field = || format!("host_config.{key}");
    if let Some((_, flag)) = HOST_SCALARS.iter().find(|(k, _)| *k == key) {
        return match value {
            Value::String(s) => flags.push(flag, s.clone()),
            Value::Number(n) => flags.push(flag, n.to_string()),
            _ => flags.cannot(field()),
        };
    }
    if let Some((_, flag)) = HOST_LISTS.iter().find(|(k, _)| *k == key) {
        return flags.each(flag, value);
    }
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
            None => flags.cannot(field()),
        },
        "ReadonlyRootfs" if value == &json!(true) => flags.switch("--read-only"),
        "PublishAllPorts" if value == &json!(true) => flags.switch("--publish-all"),
        "AutoRemove" if value == &json!(true) => flags.switch("--rm"),
        "Privileged" if value == &json!(true) => flags.switch("--privileged"),
        "OomKillDisable" if value == &json!(true) => flags.switch("--oom-kill-disable"),
        "Init" => flags.args.push(format!("--init={}", value == &json!(true))),
        "RestartPolicy" => {
            let name = value["Name"].as_str().unwrap_or_default();
            match value["MaximumRetryCount"].as_i64().unwrap_or(0) {
                0 => flags.push("--restart", name),
                n => flags.push("--restart", format!("{name}:{n}")),
            }
        }
        "LogConfig" => {
            flags.push("--log-driver", text(&value["Type"]));
            for (k, v) in value["Config"].as_object().into_iter().flatten() {
                flags.push(
                    "--log-opt",
                    format!("{k}={}", v.as_str().unwrap_or_default()),
                );
            }
        }
        "Tmpfs" => {
            for (path, options) in value.as_object().into_iter().flatten() {
                match options.as_str().unwrap_or_default() {
                    "" => flags.push("--tmpfs", path.clone()),
                    options => flags.push("--tmpfs", format!("{path}:{options}")),
                }
            }
        }
        "Sysctls" => {
            for (k, v) in value.as_object().into_iter().flatten() {
                flags.push(
                    "--sysctl",
                    format!("{k}={}", v.as_str().unwrap_or_default()),
                );
            }
        }
        "Ulimits" => {
            for limit in value.as_array().into_iter().flatten() {
                flags.push(
                    "--ulimit",
                    format!(
                        "{}={}:{}",
                        text(&limit["Name"]),
                        limit["Soft"],
                        limit["Hard"]
                    ),
                );
            }
        }
        "PortBindings" => {
            for (port, bindings) in value.as_object().into_iter().flatten() {
                for binding in bindings.as_array().into_iter().flatten() {
                    let ip = binding["HostIp"].as_str().unwrap_or_default();
                    let host = binding["HostPort"].as_str().unwrap_or_default();
                    let publish = match (ip, host) {
                        ("", "") => port.clone(),
                        ("", host) => format!("{host}:{port}"),
                        (ip, host) => format!("{}:{host}:{port}", bracketed(ip)),
                    };
                    flags.push("--publish", publish);
                }
            }
        }
        "Devices" => {
            for device in value.as_array().into_iter().flatten() {
                flags.push(
                    "--device",
                    format!(
                        "{}:{}:{}",
                        text(&device["PathOnHost"]),
                        text(&device["PathInContainer"]),
                        text(&device["CgroupPermissions"])
                    ),
                );
            }
        }
        "Links" => {
            // The engine keeps `/db:/app/db`; the CLI takes `db:db`.
            for link in strings(Some(value)) {
                match link.split_once(':') {
                    Some((target, alias)) => {
                        let alias = alias.rsplit('/').next().unwrap_or(alias);
                        flags.push(
                            "--link",
                            format!("{}:{alias}", target.trim_start_matches('/')),
                        );
                    }
                    None => flags.cannot(field()),
                }
            }
        }
        "Mounts" => {
            for mount in value.as_array().into_iter().flatten() {
                match mount_flag(mount) {
                    Some(m) => flags.push("--mount", m),
                    None => flags.cannot(field()),
                }
            }
        }
        _ => flags.cannot(field()),
    }
}

/// A `--mount` value for one HostConfig mount, or `None` if it holds options the CLI's
/// syntax cannot carry.
fn mount_flag(mount: &Value) -> Option<String> {
    let mut parts = vec![format!("type={}", text(&mount["Type"]))];
    let mut known = vec!["Type", "Target"];
    if let Some(source) = mount["Source"].as_str().filter(|s| !s.is_empty()) {
        parts.push(format!("source={source}"));
    }
    known.push("Source");
    parts.push(format!("target={}", text(&mount["Target"])));
    if mount["ReadOnly"] == json!(true) {
        parts.push("readonly".into());
    }
    known.push("ReadOnly");
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

fn endpoint_flags(
    field: &str,
    spec: &ContainerSpec,
    network: &str,
    flags: &mut Flags,
    at_create: bool,
) {
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
            "Aliases" => flags.each(alias_flag, value),
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

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| value.to_string())
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

/// An IPv6 host address in brackets, as `-p` wants it.
fn bracketed(ip: &str) -> String {
    match ip.contains(':') {
        true => format!("[{ip}]"),
        false => ip.to_string(),
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

    fn entry(config: Value, host: Value, networks: Value) -> Entry {
        serde_json::from_value(json!({
            "name": "web",
            "spec": {"image": "img:1", "image_id": "sha256:1", "config": config,
                     "host_config": host, "networks": networks,
                     "anonymous_volumes": [{"destination": "/cache", "name": "abc"}]}
        }))
        .unwrap()
    }

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
    fn a_compose_file_escapes_dollars_declares_what_exists_and_links_services() {
        let web = entry(
            json!({"Env": ["A=$HOME"]}),
            json!({"Binds": ["data:/d"]}),
            json!({"front": {"Aliases": ["w"]}}),
        );
        let mut web = web;
        web.spec
            .host_config
            .insert("NetworkMode".into(), json!("front"));
        let mut sidecar = entry(
            json!({}),
            json!({"NetworkMode": "container:web"}),
            json!({}),
        );
        sidecar.name = "sidecar".into();
        sidecar.running = false;
        let text = compose_file(&[&web, &sidecar]).unwrap();
        assert!(text.contains("# sidecar is recorded stopped"), "{text}");
        assert!(text.contains(r#"- "A=$$HOME""#), "{text}");
        assert!(text.contains(r#""network_mode": "service:web""#), "{text}");
        assert!(
            text.contains("\"volumes\":\n  \"abc\":\n    \"external\": true\n  \"data\":"),
            "{text}"
        );
        assert!(
            text.contains("\"networks\":\n  \"front\":\n    \"external\": true"),
            "{text}"
        );
        assert!(text.contains(r#""priority": 1000"#), "{text}");
        assert_eq!(duration(1_500_000_000).as_deref(), Some("1500ms"));
        assert_eq!(duration(30_000_000_000).as_deref(), Some("30s"));
        assert_eq!(duration(7), None);
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
        assert_eq!(decimal(250_000_000, 9), "0.25");
        assert_eq!(decimal(2_000_000_000, 9), "2");
    }
}
