//! Compare: a record against the live container, so that nothing flaps. A hand-written record
//! is brought into the form `capture` writes (`normalize`, when the state is read) and read as
//! the engine will report the container it creates (`as_created`, when a pass compares); then
//! `diff` names the fields that differ. Pure: no IO.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::canonical::{self, aliases_as_set, clean_path, SETS};
use super::capture::{
    settle_pids_limit, strip_configured_defaults, strip_fixed_defaults, subtract_image_values,
    CONFIG_KEEP_ZERO, HOST_KEEP_ZERO,
};
use super::volumes::{
    drop_covered_volumes, host_destinations, normalize_binds, volume_mounts_as_binds,
};
use super::{filled, *};

/// Bring a record written by hand into the form `capture` writes, so that it compares equal to
/// the container created from it and no pass replaces that container again: what the engine
/// fills in when it creates one (a retry count of 0, twice the memory as swap), spells another
/// way (`:rw` binds), or what means nothing (zero values, the 64 MiB shm, `private` IPC, the
/// default network, the container's own name as an alias). A port without a protocol is TCP:
/// the engine would keep `80` and the image's `80/tcp` apart. Idempotent, and a record
/// `capture` wrote is left as it is.
pub fn normalize(name: &str, spec: &mut ContainerSpec) {
    let (config, host) = (&mut spec.config, &mut spec.host_config);
    normalize_binds(host);
    drop_covered_volumes(config, host);
    for (part, key) in [(&mut *config, "ExposedPorts"), (&mut *host, "PortBindings")] {
        if let Some(Value::Object(ports)) = part.get_mut(key) {
            *ports = std::mem::take(ports)
                .into_iter()
                .map(|(port, v)| match port.contains('/') {
                    true => (port, v),
                    false => (format!("{port}/tcp"), v),
                })
                .collect();
        }
    }
    // A binding without an address or a port is one to every address, on a port the engine
    // picks: the engine reports both, empty.
    if let Some(Value::Object(ports)) = host.get_mut("PortBindings") {
        for binding in ports.values_mut().filter_map(Value::as_array_mut).flatten() {
            if let Value::Object(binding) = binding {
                for key in ["HostIp", "HostPort"] {
                    binding.entry(key).or_insert(Value::String(String::new()));
                }
            }
        }
    }
    if let Some(Value::Object(policy)) = host.get_mut("RestartPolicy") {
        policy.entry("MaximumRetryCount").or_insert(Value::from(0));
    }
    // The environment as the process sees it: a name set twice has its last value, where the
    // last one stood (Docker's runtime and Podman's map agree on that).
    if let Some(Value::Array(env)) = config.get_mut("Env") {
        let name = |e: &Value| {
            let text = e.as_str().unwrap_or_default().to_string();
            text.split_once('=')
                .map_or(text.clone(), |(n, _)| n.to_string())
        };
        let names: Vec<String> = env.iter().map(name).collect();
        let mut index = 0;
        env.retain(|_| {
            index += 1;
            !names[index..].contains(&names[index - 1])
        });
    }
    // Both engines clean the working directory they are sent (`/srv/` runs in `/srv`).
    if let Some(Value::String(dir)) = config.get_mut("WorkingDir") {
        if dir.starts_with('/') {
            *dir = clean_path(dir);
        }
    }
    // Neither engine reports a zero part of a healthcheck.
    if let Some(Value::Object(check)) = config.get_mut("Healthcheck") {
        check.retain(|_, v| !is_zero(v));
    }
    strip_zero(config, CONFIG_KEEP_ZERO);
    strip_fixed_defaults(host);
    // A zero pids limit means something to Podman, nothing to Docker: the engine decides, when
    // a pass compares (`as_created`).
    strip_zero(host, &[HOST_KEEP_ZERO, &["PidsLimit"]].concat());
    for endpoint in spec.networks.values_mut() {
        if let Some(Value::Array(aliases)) = endpoint.get_mut("Aliases") {
            aliases.retain(|a| a.as_str() != Some(name));
        }
        if let Some(Value::Object(ipam)) = endpoint.get_mut("IPAMConfig") {
            ipam.retain(|_, v| !is_zero(v));
        }
        // The engine reports the address in lower case.
        if let Some(Value::String(mac)) = endpoint.get_mut("MacAddress") {
            *mac = mac.to_lowercase();
        }
        endpoint.retain(|_, v| !is_zero(v));
    }
}

/// The record as `capture` would read the container created from it by an engine with
/// `defaults`, from an image with the `Config` `image`, for comparing with the live container:
/// what a hand-written record states although the engine's settings or the image supply it
/// (the default runtime, an env entry, the command, a label) is theirs, and the image's volumes
/// get anonymous volumes the record need not name. `capture`'s own records come out as they
/// went in. What only the container made tells (Podman's `HOME` for a user other than root)
/// is read from `live`, made from the same image. For comparing only: a create request is
/// built from the record itself.
pub fn as_created(
    recorded: &ContainerSpec,
    image: Option<&Value>,
    defaults: Option<&EngineDefaults>,
    live: Option<&ContainerSpec>,
) -> ContainerSpec {
    let mut spec = recorded.clone();
    if let Some(defaults) = defaults {
        strip_configured_defaults(&mut spec.host_config, defaults);
        settle_pids_limit(&mut spec.host_config, defaults.kind);
        filled::network_created_on(&mut spec, defaults.kind);
        filled::healthcheck(&mut spec.config, image, defaults.kind);
        // An engine before API 1.44 cannot be asked for one (README, "MAC addresses").
        if !defaults.endpoint_mac {
            for endpoint in spec.networks.values_mut() {
                endpoint.remove("MacAddress");
            }
        }
        if defaults.kind == EngineKind::Podman {
            filled::podman(&mut spec, image);
        }
    }
    let Some(image) = image else {
        return spec;
    };
    if let (Some(live), Some(EngineKind::Podman)) = (live, defaults.map(|d| d.kind)) {
        filled::podman_home(&mut spec, image, live);
    }
    let config = &mut spec.config;
    // Anonymous volumes at the image's and the record's volume paths that nothing else mounts.
    let covered = host_destinations(&spec.host_config);
    let mut places: Vec<String> = strings_of_keys(&image["Volumes"]);
    places.extend(
        config
            .get("Volumes")
            .map(strings_of_keys)
            .unwrap_or_default(),
    );
    // The engine mounts the volume at the clean path (`/cache/` at `/cache`).
    let places = places.iter().map(|p| clean_path(p));
    for destination in places {
        let named = spec
            .anonymous_volumes
            .iter()
            .any(|v| v.destination == destination);
        if !named && !covered.contains(&destination) {
            spec.anonymous_volumes.push(AnonymousVolume {
                destination,
                name: String::new(),
                read_only: false,
            });
        }
    }
    spec.anonymous_volumes
        .sort_by(|a, b| a.destination.cmp(&b.destination));
    spec.anonymous_volumes
        .dedup_by(|a, b| a.destination == b.destination);
    subtract_image_values(config, image);
    // The image's command runs when the record names no entrypoint of its own; the image's
    // entrypoint with its command is the image's too.
    let entrypoint = config.get("Entrypoint").cloned().unwrap_or(Value::Null);
    let cmd_is_image = config.get("Cmd") == Some(&image["Cmd"]);
    if cmd_is_image && (entrypoint.is_null() || entrypoint == image["Entrypoint"]) {
        config.remove("Cmd");
        if entrypoint == image["Entrypoint"] {
            config.remove("Entrypoint");
        }
    }
    strip_zero(config, CONFIG_KEEP_ZERO);
    spec
}

fn strings_of_keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The fields in which `observed` differs from `recorded`, named as in the state file
/// (`image`, `config.Env`, `host_config.Memory`, `networks.backend`, `anonymous_volumes`).
pub fn diff(recorded: &ContainerSpec, observed: &ContainerSpec) -> Vec<String> {
    let mut fields = Vec::new();
    if recorded.image_id != observed.image_id {
        fields.push("image".to_string());
    }
    let observed_config = without_compose_labels(recorded, observed);
    diff_maps(
        "config",
        &comparable_config(&recorded.config, recorded),
        &comparable_config(&observed_config, observed),
        &mut fields,
    );
    let mut observed_host = observed.host_config.clone();
    canonical::any_host_port(&recorded.host_config, &mut observed_host);
    diff_maps(
        "host_config",
        &comparable_host(&recorded.host_config),
        &comparable_host(&observed_host),
        &mut fields,
    );
    let names: BTreeSet<&String> = recorded
        .networks
        .keys()
        .chain(observed.networks.keys())
        .collect();
    for name in names {
        let endpoint = |s: &ContainerSpec| {
            let hostname = s.config.get("Hostname").and_then(Value::as_str);
            s.networks.get(name).map(|e| aliases_as_set(e, hostname))
        };
        let mut live = endpoint(observed);
        // A record without a MAC address says nothing about it: taken before API 1.44 or by a
        // guestlist that did not record one, it must not make a pass replace the container
        // (and lose the address) once the live one is read.
        let recorded_mac = recorded
            .networks
            .get(name)
            .is_some_and(|e| e.contains_key("MacAddress"));
        if !recorded_mac {
            if let Some(live) = &mut live {
                live.remove("MacAddress");
            }
        }
        if endpoint(recorded) != live {
            fields.push(format!("networks.{name}"));
        }
    }
    // Compared by destination only: the volume *name* of a live container is its current data,
    // and a container recreated by hand with a fresh volume must not be replaced to swap it.
    let places = |s: &ContainerSpec| -> Vec<(String, bool)> {
        let mut places: Vec<(String, bool)> = s
            .anonymous_volumes
            .iter()
            .map(|v| (clean_path(&v.destination), v.read_only))
            .collect();
        places.sort();
        places
    };
    if places(recorded) != places(observed) {
        fields.push("anonymous_volumes".to_string());
    }
    fields
}

/// Labels compose adds to every container it creates (project, service, config hash, ...) are
/// its bookkeeping: a container recorded without them and recreated by compose (`guestlist
/// show --format compose`) is the same container.
fn without_compose_labels(
    recorded: &ContainerSpec,
    observed: &ContainerSpec,
) -> Map<String, Value> {
    const COMPOSE: &str = "com.docker.compose.";
    let mut config = observed.config.clone();
    let recorded_has_them = recorded
        .config
        .get("Labels")
        .and_then(Value::as_object)
        .is_some_and(|l| l.keys().any(|k| k.starts_with(COMPOSE)));
    if !recorded_has_them {
        if let Some(Value::Object(labels)) = config.get_mut("Labels") {
            labels.retain(|k, _| !k.starts_with(COMPOSE));
            if labels.is_empty() {
                config.remove("Labels");
            }
        }
    }
    config
}

/// HostConfig as compared: binds and mounts in order (each has its own destination, so their
/// order means nothing, and compose writes them in another order than the docker CLI), and no
/// restart policy where it is `no` or empty (both mean none: a record taken before `no` was
/// kept must not make every container look changed).
/// A `Config.Volumes` entry where an anonymous volume is mounted says nothing more: the docker
/// CLI's `-v /path` sends one, Compose 2 mounts the same volume without it.
fn comparable_config(config: &Map<String, Value>, spec: &ContainerSpec) -> Map<String, Value> {
    let mut config = config.clone();
    canonical::config(&mut config);
    // The environment as the process sees it: by name, the last value of a name winning. The
    // docker CLI does not keep the order of `-e`, and the same variables in another order are
    // the same environment.
    if let Some(Value::Array(env)) = config.get_mut("Env") {
        let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
        for entry in env.iter() {
            let text = entry.as_str().unwrap_or_default();
            let name = text.split_once('=').map_or(text, |(n, _)| n);
            by_name.insert(name.to_string(), entry.clone());
        }
        *env = by_name.into_values().collect();
    }
    if let Some(Value::Object(volumes)) = config.get_mut("Volumes") {
        volumes.retain(|path, _| {
            !spec
                .anonymous_volumes
                .iter()
                .any(|v| clean_path(&v.destination) == *path)
        });
        if volumes.is_empty() {
            config.remove("Volumes");
        }
    }
    config
}

/// Host settings in one form where the engine accepts two that mean the same: a named volume
/// as a bind or as a plain mount (Compose 2 sends the one, the docker CLI and Compose 1 the
/// other); lists in order.
fn comparable_host(host: &Map<String, Value>) -> Map<String, Value> {
    let mut host = host.clone();
    canonical::host(&mut host);
    volume_mounts_as_binds(&mut host);
    for key in ["Binds", "Mounts"] {
        if let Some(Value::Array(items)) = host.get_mut(key) {
            items.sort_by_key(|item| item.to_string());
        }
    }
    // Lists the engine treats as sets: each item once, their order meaning nothing.
    for key in SETS {
        if let Some(Value::Array(items)) = host.get_mut(*key) {
            items.sort_by_key(|item| item.to_string());
            items.dedup();
        }
    }
    // A port's bindings too.
    if let Some(Value::Object(ports)) = host.get_mut("PortBindings") {
        for bindings in ports.values_mut() {
            if let Value::Array(items) = bindings {
                items.sort_by_key(|item| item.to_string());
                items.dedup();
            }
        }
    }
    let no_restart = host.get("RestartPolicy").is_some_and(|p| {
        matches!(p["Name"].as_str(), Some("no" | "") | None)
            && p["MaximumRetryCount"].as_i64().unwrap_or(0) == 0
    });
    if no_restart {
        host.remove("RestartPolicy");
    }
    host
}

fn diff_maps(prefix: &str, a: &Map<String, Value>, b: &Map<String, Value>, out: &mut Vec<String>) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        if a.get(key) != b.get(key) {
            out.push(format!("{prefix}.{key}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::{capture_with, defaults, image, inspect, IMAGE_VOLUME};
    use super::*;
    use serde_json::json;

    #[test]
    fn the_environment_and_set_like_lists_compare_by_content_not_order() {
        let spec = capture_with(&inspect(), None);
        let mut a = spec.clone();
        a.config.insert("Env".into(), json!(["A=1", "B=2", "A=3"]));
        a.host_config
            .insert("CapAdd".into(), json!(["NET_ADMIN", "SYS_TIME"]));
        a.host_config.insert(
            "PortBindings".into(),
            json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                              {"HostIp": "127.0.0.1", "HostPort": "8081"}]}),
        );
        let mut b = a.clone();
        b.config.insert("Env".into(), json!(["B=2", "A=3"]));
        b.host_config
            .insert("CapAdd".into(), json!(["SYS_TIME", "NET_ADMIN"]));
        b.host_config.insert(
            "PortBindings".into(),
            json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"},
                              {"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
        );
        assert_eq!(diff(&a, &b), Vec::<String>::new());
        // A value that differs still differs; so does the order of DNS servers.
        b.config.insert("Env".into(), json!(["B=2", "A=1"]));
        assert_eq!(diff(&a, &b), ["config.Env"]);
        let mut c = a.clone();
        c.host_config
            .insert("Dns".into(), json!(["10.0.0.1", "10.0.0.2"]));
        let mut d = a.clone();
        d.host_config
            .insert("Dns".into(), json!(["10.0.0.2", "10.0.0.1"]));
        assert_eq!(diff(&c, &d), ["host_config.Dns"]);
    }

    #[test]
    fn restart_policy_no_is_recorded_and_equals_none() {
        let spec = capture_with(&inspect(), None);
        assert_eq!(
            spec.host_config["RestartPolicy"],
            json!({"Name": "no", "MaximumRetryCount": 0})
        );
        let mut unset = inspect();
        unset["HostConfig"]["RestartPolicy"] = json!({"Name": "", "MaximumRetryCount": 0});
        let unset = capture_with(&unset, None);
        assert!(!unset.host_config.contains_key("RestartPolicy"));
        // A record taken before `no` was kept, an API-made container, and a CLI-made one.
        assert_eq!(diff(&spec, &unset), Vec::<String>::new());
        let mut always = spec.clone();
        always.host_config["RestartPolicy"] = json!({"Name": "always", "MaximumRetryCount": 0});
        assert_eq!(diff(&always, &unset), ["host_config.RestartPolicy"]);
    }

    #[test]
    fn what_capture_records_is_left_as_it_is_by_normalize_and_as_created() {
        let image = image();
        let mut defaults_only = inspect();
        defaults_only["HostConfig"]["NetworkMode"] = json!("default");
        defaults_only["NetworkSettings"]["Networks"] = json!({"bridge": {}});
        for mut inspect in [inspect(), defaults_only] {
            inspect["Name"] = json!("/web");
            let captured = capture_with(&inspect, Some(&image));
            let mut normalized = captured.clone();
            normalize("web", &mut normalized);
            assert_eq!(normalized, captured);
            let created = as_created(&captured, Some(&image), Some(&defaults()), None);
            assert_eq!(created, captured);
        }
    }

    #[test]
    fn a_hand_written_record_compares_equal_to_the_container_made_from_it() {
        let image = image();
        // As a person writes it: the image's env and command restated, a port without its
        // protocol, a policy without its count, a `:rw` bind, zero values, no networks, and no
        // word of the image's volume.
        let mut hand: ContainerSpec = serde_json::from_value(json!({
            "image": "probe:1", "image_id": "sha256:6ede",
            "config": {"Env": ["PATH=/bin", "MODE=prod"], "Cmd": ["sleep", "3600"],
                       "ExposedPorts": {"80": {}}, "Tty": false, "Labels": {}},
            "host_config": {"Memory": 67108864, "MemorySwap": 134217728, "Privileged": false,
                            "Runtime": "runc", "LogConfig": {"Type": "json-file"},
                            "RestartPolicy": {"Name": "always"}, "Binds": ["/srv:/srv:rw"],
                            "PortBindings": {"80": [{"HostIp": "127.0.0.1", "HostPort": "8081"}]}}
        }))
        .unwrap();
        normalize("web", &mut hand);
        // What the engine reports for the container created from it.
        let mut created = inspect();
        created["Config"]["Env"] = json!(["PATH=/bin", "MODE=prod", "IMG_ENV=from-image"]);
        created["Config"]["Labels"] = json!({"img.label": "from-image"});
        created["Config"]["Volumes"] = json!({"/vol": {}});
        created["HostConfig"]["NetworkMode"] = json!("default");
        created["HostConfig"]["Init"] = Value::Null;
        created["HostConfig"]["Binds"] = json!(["/srv:/srv"]);
        created["HostConfig"]["RestartPolicy"] = json!({"Name": "always", "MaximumRetryCount": 0});
        created["NetworkSettings"]["Networks"] = json!({"bridge": {"Aliases": null}});
        created["Mounts"] = json!([
            {"Type": "bind", "Source": "/srv", "Destination": "/srv", "RW": true},
            {"Type": "volume", "Name": IMAGE_VOLUME, "Destination": "/vol", "RW": true}
        ]);
        let live = capture_with(&created, Some(&image));
        assert_eq!(
            diff(&hand, &live),
            [
                "config.Cmd",
                "config.Env",
                "host_config.LogConfig",
                "host_config.Runtime",
                "networks.bridge",
                "anonymous_volumes"
            ]
        );
        let hand = as_created(&hand, Some(&image), Some(&defaults()), None);
        assert_eq!(diff(&hand, &live), Vec::<String>::new());
    }

    #[test]
    fn diff_names_each_changed_field() {
        let image = image();
        let a = capture_with(&inspect(), Some(&image));
        let mut b = a.clone();
        b.image_id = "sha256:other".into();
        b.config.insert("Env".into(), json!(["A=1"]));
        b.host_config.remove("Memory");
        b.networks.insert("extra".into(), Map::new());
        b.anonymous_volumes[0].name = "different-data".into();
        assert_eq!(
            diff(&a, &b),
            vec![
                "image",
                "config.Env",
                "host_config.Memory",
                "networks.extra"
            ]
        );
    }

    #[test]
    fn what_compose_writes_differently_captures_the_same() {
        let image = image();
        let mut docker_cli = inspect();
        docker_cli["Name"] = json!("/web");
        docker_cli["HostConfig"]["Binds"] = json!(["/srv:/srv:ro", "data:/d"]);
        let mut compose = docker_cli.clone();
        compose["Config"]["AttachStdout"] = json!(true);
        // Compose spells out rw, orders binds its own way, declares every volume it mounts,
        // adds the service name as an alias and its bookkeeping labels.
        compose["HostConfig"]["Binds"] = json!(["data:/d:rw", "/srv:/srv:ro"]);
        compose["Config"]["Volumes"] = json!({"/data": {}, "/vol": {}, "/srv": {}, "/d": {}});
        compose["NetworkSettings"]["Networks"]["probenet"]["Aliases"] =
            json!(["476ec8cd91b7", "web", "web"]);
        compose["Config"]["Labels"]["com.docker.compose.project"] = json!("p");
        let recorded = capture_with(&docker_cli, Some(&image));
        let live = capture_with(&compose, Some(&image));
        assert_eq!(diff(&recorded, &live), Vec::<String>::new());
        assert_eq!(
            recorded.host_config["Binds"],
            json!(["/srv:/srv:ro", "data:/d"])
        );
        // A record that has compose's labels keeps comparing them.
        let mut recorded_by_compose = live.clone();
        recorded_by_compose.config["Labels"]["com.docker.compose.project"] = json!("q");
        assert_eq!(diff(&recorded_by_compose, &live), ["config.Labels"]);
    }

    #[test]
    fn a_named_volume_as_a_bind_or_a_plain_mount_is_the_same_volume() {
        let mut by_bind = capture_with(&inspect(), None);
        let mut by_mount = by_bind.clone();
        by_bind.host_config.insert(
            "Binds".into(),
            json!(["/srv:/srv:ro", "data:/data", "logs:/logs:ro"]),
        );
        by_mount
            .host_config
            .insert("Binds".into(), json!(["/srv:/srv:ro"]));
        by_mount.host_config.insert(
            "Mounts".into(),
            json!([
                {"Type": "volume", "Source": "data", "Target": "/data", "VolumeOptions": {}},
                {"Type": "volume", "Source": "logs", "Target": "/logs", "ReadOnly": true}
            ]),
        );
        assert_eq!(diff(&by_bind, &by_mount), Vec::<String>::new());
        // Options a bind cannot say keep the mount apart.
        by_mount.host_config["Mounts"][0]["VolumeOptions"] = json!({"NoCopy": true});
        assert_eq!(
            diff(&by_bind, &by_mount),
            vec!["host_config.Binds", "host_config.Mounts"]
        );
    }

    #[test]
    fn an_anonymous_volume_with_or_without_its_config_volumes_entry_is_the_same() {
        let with_entry = capture_with(&inspect(), None);
        assert!(with_entry.config["Volumes"].get("/data").is_some());
        let mut without = with_entry.clone();
        without.config.remove("Volumes");
        assert_eq!(diff(&with_entry, &without), Vec::<String>::new());
    }

    #[test]
    fn a_record_without_a_mac_address_takes_any_live_one() {
        let recorded = capture_with(&inspect(), None);
        let mut live = recorded.clone();
        let endpoint = live.networks.get_mut("probenet").unwrap();
        endpoint.insert("MacAddress".into(), json!("02:42:0a:4d:00:05"));
        assert_eq!(diff(&recorded, &live), Vec::<String>::new());
        // One the record holds is compared.
        let mut with_mac = live.clone();
        with_mac.networks.get_mut("probenet").unwrap()["MacAddress"] = json!("02:42:0a:4d:00:06");
        assert_eq!(diff(&with_mac, &live), vec!["networks.probenet"]);
    }
}
