//! A record as a compose service, and a file of them: each `container_name` the entry's name,
//! and the networks and volumes they use declared `external` (they exist already; compose must
//! not create prefixed copies).

use serde_json::{json, Map, Value};

use super::fields::{self, Compose};
use super::Inexpressible;
use super::{decimal, devices, keys, link, published, restart, strings, text, tmpfs, yaml};
use crate::record::spec::{self, ContainerSpec};
use crate::record::state::Entry;

/// The file. Entries recorded stopped are marked in a comment: compose has no word for
/// "created but not started" (`up --no-start` does it for all).
pub fn compose_file(entries: &[&Entry]) -> Result<String, (String, Inexpressible)> {
    let mut declared = Declared::default();
    let mut services = Map::new();
    let mut stopped = Vec::new();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    for entry in entries {
        let service =
            service(entry, &names, &mut declared).map_err(|fields| (entry.name.clone(), fields))?;
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
    if !declared.networks.is_empty() {
        file.insert(
            "networks".into(),
            Value::Object(external(declared.networks)),
        );
    }
    if !declared.volumes.is_empty() {
        file.insert("volumes".into(), Value::Object(external(declared.volumes)));
    }
    let mut file = Value::Object(file);
    escape_interpolation(&mut file);
    let mut text = String::from("# Written by `guestlist show --format compose`.\n");
    for name in stopped {
        text += &format!("# {name} is recorded stopped: `docker-compose up --no-start {name}`\n");
    }
    yaml::write(&file, 0, &mut text);
    Ok(text)
}

/// The networks and named volumes the services use, declared at the top of the file.
#[derive(Default)]
struct Declared {
    networks: Map<String, Value>,
    volumes: Map<String, Value>,
}

/// One service as it is being written.
struct Service<'a> {
    spec: &'a ContainerSpec,
    /// The services of the file (a `container:X` of one of them becomes `service:X`).
    services: &'a [&'a str],
    keys: Map<String, Value>,
    /// Its `volumes`: short-syntax strings and long-syntax objects.
    mounts: Vec<Value>,
    cannot: Inexpressible,
}

fn service(
    entry: &Entry,
    services: &[&str],
    declared: &mut Declared,
) -> Result<Map<String, Value>, Inexpressible> {
    let spec = &entry.spec;
    let mut s = Service {
        spec,
        services,
        keys: Map::new(),
        mounts: Vec::new(),
        cannot: Vec::new(),
    };
    s.keys.insert("container_name".into(), json!(entry.name));
    s.keys.insert("image".into(), json!(spec.image));
    for (key, value) in &spec.config {
        let field = format!("config.{key}");
        if let Some(own) = s.table(fields::CONFIG, key, value, &field) {
            s.config_own(own, value, field);
        }
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
            s.cannot.push(field);
            continue;
        }
        if let Some(own) = s.table(fields::HOST, key, value, &field) {
            s.host_own(own, value, field, declared);
        }
    }
    s.anonymous_volumes(declared);
    if !s.mounts.is_empty() {
        s.keys.insert("volumes".into(), json!(s.mounts));
    }
    networks(spec, &mut s.keys, &mut declared.networks, &mut s.cannot);
    match s.cannot.is_empty() {
        true => Ok(s.keys),
        false => Err(s.cannot),
    }
}

impl Service<'_> {
    /// Write a field as its row says; `Some(key)` for a field with a syntax of its own.
    fn table<'k>(
        &mut self,
        table: &'static [fields::Field],
        key: &'k str,
        value: &Value,
        field: &str,
    ) -> Option<&'k str> {
        match fields::lookup(table, key).map_or(Compose::Never, |f| f.compose) {
            Compose::Same(name) => {
                self.keys.insert(name.into(), value.clone());
            }
            Compose::Keys(name) => {
                self.keys.insert(name.into(), keys(value));
            }
            Compose::Own => return Some(key),
            Compose::Never => self.cannot.push(field.to_string()),
        }
        None
    }

    fn config_own(&mut self, key: &str, value: &Value, field: String) {
        match key {
            "StopTimeout" => {
                self.keys
                    .insert("stop_grace_period".into(), json!(format!("{value}s")));
            }
            "Volumes" => {
                // Anonymous volumes at a path the record gives no source: compose creates them.
                let covered: Vec<&str> = self
                    .spec
                    .anonymous_volumes
                    .iter()
                    .map(|v| v.destination.as_str())
                    .collect();
                let paths = keys(value);
                let uncovered = paths
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| !covered.contains(&p.as_str().unwrap_or_default()));
                self.mounts.extend(uncovered.cloned());
            }
            "Healthcheck" => match healthcheck(value) {
                Some(h) => {
                    self.keys.insert("healthcheck".into(), h);
                }
                None => self.cannot.push(field),
            },
            _ => self.cannot.push(field),
        }
    }

    fn host_own(&mut self, key: &str, value: &Value, field: String, declared: &mut Declared) {
        let (name, v) = match key {
            "NetworkMode" => {
                let mode = text(value);
                let shared = mode.starts_with("container:") || mode.starts_with("service:");
                if !(matches!(mode.as_str(), "host" | "none") || shared) {
                    return;
                }
                ("network_mode", json!(mode))
            }
            "NanoCpus" => match value.as_i64() {
                Some(nanos) => ("cpus", json!(decimal(nanos, 9))),
                None => return self.cannot.push(field),
            },
            "Binds" => {
                for bind in strings(Some(value)) {
                    let source = bind.split(':').next().unwrap_or_default();
                    if !source.starts_with('/') && !source.starts_with('.') {
                        declared.volumes.insert(source.to_string(), Value::Null);
                    }
                    self.mounts.push(json!(bind));
                }
                return;
            }
            "Mounts" => {
                for each in value.as_array().into_iter().flatten() {
                    let Some(m) = mount(each) else {
                        self.cannot.push(field.clone());
                        continue;
                    };
                    if each["Type"] == "volume" {
                        if let Some(source) = each["Source"].as_str() {
                            declared.volumes.insert(source.to_string(), Value::Null);
                        }
                    }
                    self.mounts.push(m);
                }
                return;
            }
            "Tmpfs" => ("tmpfs", json!(tmpfs(value))),
            "RestartPolicy" => ("restart", json!(restart(value))),
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
            "PortBindings" => ("ports", json!(published(value))),
            "Devices" => ("devices", json!(devices(value))),
            "VolumesFrom" => {
                // Compose reads a bare name as a service: one of this file, or a container.
                let list: Vec<String> = strings(Some(value))
                    .into_iter()
                    .map(|v| {
                        match self
                            .services
                            .contains(&v.split(':').next().unwrap_or_default())
                        {
                            true => v,
                            false => format!("container:{v}"),
                        }
                    })
                    .collect();
                ("volumes_from", json!(list))
            }
            "Links" => {
                let mut list = Vec::new();
                for each in strings(Some(value)) {
                    match link(&each) {
                        Some(link) => list.push(link),
                        None => self.cannot.push(field.clone()),
                    }
                }
                ("external_links", json!(list))
            }
            _ => return self.cannot.push(field),
        };
        self.keys.insert(name.into(), v);
    }

    fn anonymous_volumes(&mut self, declared: &mut Declared) {
        let paths = self.spec.config.get("Volumes").and_then(Value::as_object);
        for volume in &self.spec.anonymous_volumes {
            declared.volumes.insert(volume.name.clone(), Value::Null);
            // Compose declares the path in Config.Volumes for the short syntax only: use it
            // exactly where the record has the declaration (`-v /path`, not `--mount`).
            let mount = match paths.is_some_and(|d| d.contains_key(&volume.destination)) {
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
            self.mounts.push(mount);
        }
    }
}

fn networks(
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

fn healthcheck(value: &Value) -> Option<Value> {
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
fn mount(mount: &Value) -> Option<Value> {
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

/// Compose replaces `$NAME` in every value of the file; `$$` is a literal `$`.
fn escape_interpolation(value: &mut Value) {
    match value {
        Value::String(s) => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_interpolation),
        Value::Object(map) => map.values_mut().for_each(escape_interpolation),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::export::tests::entry;

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
}
