//! Mounts, devices and resource limits of the process: the forms of dockerd's mount parser
//! (`volume/mounts/linux_parser.go`), its device and ulimit options, and where Podman's
//! readings of the same fields are stricter. Whether a bind source or a device exists is the
//! host's business and left to the engine.

use serde_json::{Map, Value};

use super::{at, strings, with, By, Findings, DOCKER, EVERY_ENGINE, PODMAN};
use crate::record::schema::Step;
use crate::record::spec::ContainerSpec;

/// Bind options dockerd takes.
const DOCKER_MODES: &[&str] = &[
    "rw", "ro", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy",
];
/// Bind options Podman takes besides dockerd's.
const PODMAN_MODES: &[&str] = &[
    "O",
    "U",
    "copy",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "unbindable",
    "runbindable",
    "bind",
    "rbind",
    "relabel=shared",
    "relabel=private",
    "chown",
    "notmpcopyup",
    "tmpcopyup",
    "noatime",
];
const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];
/// The limits `setrlimit` knows, by the names the engines take.
const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

pub(super) fn check(spec: &ContainerSpec, out: &mut Findings) {
    let host = &spec.host_config;
    let mut targets: Vec<String> = Vec::new();
    let mut mounted = |target: &str, place: Vec<Step>, out: &mut Findings| {
        let clean = match target.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        if targets.iter().any(|t| t == clean) {
            out.refuse(
                EVERY_ENGINE,
                place,
                &format!("{target:?}"),
                "a second mount at the same place in the container",
                "keep one mount per target",
            );
        } else {
            targets.push(clean.to_string());
        }
    };
    for (i, entry) in strings(host, "Binds") {
        let place = with(at("host_config", &["Binds"]), Step::Index(i));
        match bind_refused(entry) {
            Some((by, why)) => out.refuse(
                by,
                place,
                &format!("{entry:?}"),
                &why,
                "write SOURCE:TARGET[:OPTIONS]: an absolute host path or a volume name, an \
                 absolute container path, options such as ro, z or rprivate",
            ),
            None => {
                let parts: Vec<&str> = entry.split(':').collect();
                let target = parts.get(1).or(parts.first()).copied().unwrap_or("");
                mounted(target, place, out);
            }
        }
    }
    let mounts = host.get("Mounts").and_then(Value::as_array);
    for (i, mount) in mounts.into_iter().flatten().enumerate() {
        let Value::Object(mount) = mount else {
            continue;
        };
        let place = with(at("host_config", &["Mounts"]), Step::Index(i));
        let refused = mount_refused(mount, &place, out);
        let target = mount.get("Target").and_then(Value::as_str).unwrap_or("");
        if !refused {
            mounted(target, with(place, Step::Key("Target".into())), out);
        }
    }
    for (i, volume) in spec.anonymous_volumes.iter().enumerate() {
        let place = vec![
            Step::Key("anonymous_volumes".into()),
            Step::Index(i),
            Step::Key("destination".into()),
        ];
        mounted(&volume.destination, place, out);
    }
    if let Some(Value::Object(tmpfs)) = host.get("Tmpfs") {
        for key in tmpfs.keys() {
            let path = key.split(':').next().unwrap_or("");
            if !path.starts_with('/') || path == "/" {
                out.refuse(
                    EVERY_ENGINE,
                    at("host_config", &["Tmpfs", key]),
                    &format!("{key:?}"),
                    "a tmpfs mount that is not at an absolute path below the root",
                    "write an absolute path such as \"/run\"",
                );
            }
        }
    }
    devices(host, out);
    ulimits(host, out);
    for (i, from) in strings(host, "VolumesFrom") {
        if from.split(':').next().unwrap_or("").is_empty() {
            out.refuse(
                EVERY_ENGINE,
                with(at("host_config", &["VolumesFrom"]), Step::Index(i)),
                &format!("{from:?}"),
                "volumes from no container",
                "write a container name, optionally with :ro or :rw",
            );
        }
    }
}

/// A volume name as the engines take it.
fn volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Why which engines refuse the `Binds` entry `entry`, if any does.
fn bind_refused(entry: &str) -> Option<(By, String)> {
    let parts: Vec<&str> = entry.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return Some((EVERY_ENGINE, "a bind with more than three `:` parts".into())),
    };
    match source {
        Some("") => return Some((EVERY_ENGINE, "a bind without a source".into())),
        Some(s) if !s.starts_with('/') && !volume_name(s) => {
            let why = "a source that is neither an absolute host path nor a volume name";
            return Some((EVERY_ENGINE, why.into()));
        }
        _ => {}
    }
    if !target.starts_with('/') {
        return Some((EVERY_ENGINE, "a target that is not an absolute path".into()));
    }
    if target.trim_end_matches('/').is_empty() {
        return Some((EVERY_ENGINE, "a bind over the container's root".into()));
    }
    let mode = mode?;
    if mode.is_empty() {
        return Some((PODMAN, "empty options after the last `:`".into()));
    }
    let options: Vec<&str> = mode.split(',').collect();
    for option in &options {
        let docker = DOCKER_MODES.contains(option);
        let podman = docker || PODMAN_MODES.contains(option) || option.starts_with("idmap");
        if !docker {
            let by = By {
                docker: true,
                podman: !podman,
            };
            return Some((by, format!("the bind option {option:?}")));
        }
    }
    let count = |set: &[&str]| options.iter().filter(|o| set.contains(o)).count();
    if count(&["rw", "ro"]) > 1 {
        return Some((EVERY_ENGINE, "more than one of rw and ro".into()));
    }
    if count(&["z", "Z"]) > 1 || count(PROPAGATIONS) > 1 || count(&["nocopy"]) > 1 {
        let why = "the same kind of option twice (z/Z, propagation or nocopy)";
        return Some((DOCKER, why.into()));
    }
    if options.contains(&"nocopy") && source.is_some_and(|s| s.starts_with('/')) {
        return Some((DOCKER, "nocopy on a host path (it is for volumes)".into()));
    }
    None
}

/// Note what is refused in one `Mounts` entry; whether any engine refuses it.
fn mount_refused(mount: &Map<String, Value>, place: &[Step], out: &mut Findings) -> bool {
    let field = |key: &str| with(place.to_vec(), Step::Key(key.into()));
    let text = |key: &str| mount.get(key).and_then(Value::as_str).unwrap_or("");
    let kind = text("Type");
    let source = text("Source");
    let target = text("Target");
    let mut refuse = |by: By, key: &str, value: &str, why: &str, fix: &str| {
        out.refuse(by, field(key), &format!("{value:?}"), why, fix);
        by.anyone()
    };
    let mut refused = false;
    match kind {
        "" => {
            refused |= refuse(
                EVERY_ENGINE,
                "Type",
                kind,
                "a mount without a type",
                "write bind, volume or tmpfs",
            )
        }
        "npipe" => {
            refused |= refuse(
                EVERY_ENGINE,
                "Type",
                kind,
                "a named pipe on Linux",
                "write bind, volume or tmpfs",
            )
        }
        "bind" if !source.starts_with('/') => {
            let why = "a bind mount whose source is no absolute host path";
            refused |= refuse(
                EVERY_ENGINE,
                "Source",
                source,
                why,
                "write the absolute path on the host",
            );
        }
        "volume" if !source.is_empty() && !volume_name(source) => {
            let why = "a volume mount whose source is no volume name";
            let fix = "write a volume name (a host path is a bind mount), or none for a new volume";
            refused |= refuse(EVERY_ENGINE, "Source", source, why, fix);
        }
        "tmpfs" if !source.is_empty() => {
            let why = "a tmpfs mount with a source";
            refused |= refuse(EVERY_ENGINE, "Source", source, why, "remove Source");
        }
        _ => {}
    }
    if !target.starts_with('/') {
        let why = "a mount target that is not an absolute path";
        refused |= refuse(
            EVERY_ENGINE,
            "Target",
            target,
            why,
            "write an absolute container path",
        );
    } else if target.trim_end_matches('/').is_empty() {
        let why = "a mount over the container's root";
        refused |= refuse(EVERY_ENGINE, "Target", target, why, "mount below the root");
    }
    for (key, owner) in [
        ("BindOptions", "bind"),
        ("VolumeOptions", "volume"),
        ("TmpfsOptions", "tmpfs"),
    ] {
        if mount.get(key).is_some_and(|v| !v.is_null()) && kind != owner && !kind.is_empty() {
            let why = format!("{key} on a {kind} mount");
            refused |= refuse(DOCKER, key, kind, &why, &format!("remove {key}"));
        }
    }
    let size = mount
        .get("TmpfsOptions")
        .and_then(|o| o.get("SizeBytes"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if size < 0 {
        let place = with(field("TmpfsOptions"), Step::Key("SizeBytes".into()));
        out.refuse(
            EVERY_ENGINE,
            place,
            &size,
            "a negative tmpfs size",
            "write 0 for the default, or a size in bytes",
        );
        refused = true;
    }
    refused
}

fn devices(host: &Map<String, Value>, out: &mut Findings) {
    let list = host.get("Devices").and_then(Value::as_array);
    for (i, device) in list.into_iter().flatten().enumerate() {
        let Value::Object(device) = device else {
            continue;
        };
        let place = |key: &str| {
            with(at("host_config", &["Devices"]), Step::Index(i))
                .into_iter()
                .chain([Step::Key(key.into())])
                .collect::<Vec<_>>()
        };
        let text = |key: &str| device.get(key).and_then(Value::as_str).unwrap_or("");
        let permissions = text("CgroupPermissions");
        let by = match permissions {
            "" => EVERY_ENGINE,
            p if !p.chars().all(|c| "rwm".contains(c)) => PODMAN,
            _ => By {
                docker: false,
                podman: false,
            },
        };
        out.refuse(
            by,
            place("CgroupPermissions"),
            &format!("{permissions:?}"),
            "these device permissions",
            "write some of r, w and m, such as \"rwm\"",
        );
        for key in ["PathOnHost", "PathInContainer"] {
            let path = text(key);
            if !path.starts_with('/') {
                out.refuse(
                    PODMAN,
                    place(key),
                    &format!("{path:?}"),
                    "a device path that is not absolute",
                    "write the device's absolute path, such as \"/dev/fuse\"",
                );
            }
        }
    }
}

fn ulimits(host: &Map<String, Value>, out: &mut Findings) {
    let list = host.get("Ulimits").and_then(Value::as_array);
    for (i, limit) in list.into_iter().flatten().enumerate() {
        let Value::Object(limit) = limit else {
            continue;
        };
        let place = with(at("host_config", &["Ulimits"]), Step::Index(i));
        let name = limit.get("Name").and_then(Value::as_str).unwrap_or("");
        let by = By {
            docker: !ULIMITS.contains(&name.to_ascii_lowercase().as_str()),
            podman: !ULIMITS.contains(&name),
        };
        out.refuse(
            by,
            with(place.clone(), Step::Key("Name".into())),
            &format!("{name:?}"),
            "this limit name",
            &format!("write one of {}", ULIMITS.join(", ")),
        );
        let soft = limit.get("Soft").and_then(Value::as_i64).unwrap_or(0);
        let hard = limit.get("Hard").and_then(Value::as_i64).unwrap_or(0);
        if soft >= 0 && hard >= 0 && soft > hard {
            out.refuse(
                EVERY_ENGINE,
                with(place, Step::Key("Soft".into())),
                &soft,
                &format!("a soft limit over the hard limit ({hard})"),
                &format!("write {hard} or less, or raise Hard"),
            );
        }
    }
}
