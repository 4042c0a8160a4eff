//! The record checked against the engine's own rules: every value a create (or the start that
//! follows it) would refuse, refused here first, so that `check` says so and no pass ever acts
//! on a list the engine cannot run (a replacement whose old container is gone before the new
//! one is refused). `schema` checks that a create request can carry each field; this checks
//! what the engine then makes of its value: name and reference syntax, ranges, port, mount and
//! device forms, modes, and the combinations the engine forbids.
//!
//! No false refusals: a value an engine takes must never stop a working host's list. Each rule
//! says which engines refuse the value (every Docker from 20.10 to 28, at create or at start;
//! Podman 4 through its Docker-compatible API), found by sending each value to each engine
//! (tests/validate.rs keeps that corpus). A list that names its engine (`engine.kind`) is held
//! to that engine's rules; one that names none, to what every engine refuses. Rules that depend
//! on the host (whether a network, device, user or bind source exists, the CPU count, the cgroup
//! version) are left to the engine. Pure: no IO.

mod ports;
mod process;
mod resources;
mod storage;

use serde_json::{Map, Value};

use crate::record::schema::{Problem, Step};
use crate::record::spec::{ContainerSpec, EngineKind};

/// Which engines refuse a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct By {
    pub docker: bool,
    pub podman: bool,
}

pub const EVERY_ENGINE: By = By {
    docker: true,
    podman: true,
};
pub const DOCKER: By = By {
    docker: true,
    podman: false,
};
pub const PODMAN: By = By {
    docker: false,
    podman: true,
};

impl By {
    /// Whether a list for `kind` (`None`: any engine) is refused for it.
    fn binds(self, kind: Option<EngineKind>) -> bool {
        match kind {
            Some(EngineKind::Docker) => self.docker,
            Some(EngineKind::Podman) => self.podman,
            None => self.docker && self.podman,
        }
    }

    fn anyone(self) -> bool {
        self.docker || self.podman
    }

    fn who(self) -> &'static str {
        match (self.docker, self.podman) {
            (true, true) => "the engine refuses",
            (true, false) => "Docker refuses",
            _ => "Podman refuses",
        }
    }
}

/// Where the refusals of one entry go, with the engine they are for.
struct Findings {
    kind: Option<EngineKind>,
    found: Vec<(Vec<Step>, String)>,
}

impl Findings {
    /// Note that `by` refuses `value` at `at`: `why` names the rule, `fix` what to write instead.
    fn refuse(
        &mut self,
        by: By,
        at: Vec<Step>,
        value: &dyn std::fmt::Display,
        why: &str,
        fix: &str,
    ) {
        if by.binds(self.kind) {
            let who = by.who();
            self.found
                .push((at, format!("{value}: {who} {why}; {fix}")));
        }
    }
}

/// Every value in `containers` that the engine of a list for `kind` would refuse.
pub fn check(containers: &[(String, &ContainerSpec)], kind: Option<EngineKind>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (entry, (container, spec)) in containers.iter().enumerate() {
        let mut findings = Findings {
            kind,
            found: Vec::new(),
        };
        name(container, &mut findings);
        let named = findings.found.len();
        image(spec, &mut findings);
        process::config(&spec.config, &mut findings);
        modes(spec, &mut findings);
        process::restart(&spec.host_config, &mut findings);
        process::log_config(&spec.host_config, &mut findings);
        resources::check(&spec.host_config, &mut findings);
        ports::check(spec, &mut findings);
        storage::check(spec, &mut findings);
        for (i, (at, message)) in findings.found.into_iter().enumerate() {
            problems.push(Problem {
                entry,
                container: container.clone(),
                at,
                message,
                outside_spec: i < named,
            });
        }
    }
    problems
}

/// `[host_config, key]`, and so on: a field's place from the entry's spec.
fn at(part: &str, keys: &[&str]) -> Vec<Step> {
    std::iter::once(part)
        .chain(keys.iter().copied())
        .map(|k| Step::Key(k.to_string()))
        .collect()
}

fn with(mut at: Vec<Step>, step: Step) -> Vec<Step> {
    at.push(step);
    at
}

/// A value shown as the file holds it: strings quoted, numbers bare.
fn shown(value: &Value) -> String {
    value.to_string()
}

fn int(fields: &Map<String, Value>, key: &str) -> i64 {
    fields.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> &'a str {
    fields.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The strings of a list field, with their positions (other values are `schema`'s to refuse).
fn strings<'a>(fields: &'a Map<String, Value>, key: &str) -> Vec<(usize, &'a str)> {
    let list = fields.get(key).and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.as_str()?)))
        .collect()
}

fn is_set(fields: &Map<String, Value>, key: &str) -> bool {
    fields
        .get(key)
        .is_some_and(|v| !crate::record::spec::is_zero(v))
}

/// dockerd's container name rule (`daemon/names`): `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. Podman's is
/// the same but takes one character too.
fn name(container: &str, out: &mut Findings) {
    let mut chars = container.chars();
    let pattern = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let by = match (pattern, container.len() >= 2) {
        (false, _) => EVERY_ENGINE,
        (true, false) => DOCKER,
        (true, true) => return,
    };
    let fixed: String = container
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                true => c,
                false => '-',
            },
        )
        .collect();
    let fix = match fixed.len() >= 2 {
        true => format!("rename it, say to {fixed:?}"),
        false => "rename it".to_string(),
    };
    out.refuse(
        by,
        vec![Step::Key("name".into())],
        &format!("{container:?}"),
        "this name (a letter or digit, then letters, digits, `_`, `.` or `-`, two characters \
         at least on Docker)",
        &fix,
    );
}

/// The image reference (the distribution grammar, with an IPv6 registry as Docker 26 and later
/// read it) and the recorded image id (what every engine names an image by).
fn image(spec: &ContainerSpec, out: &mut Findings) {
    let reference = spec.image.as_str();
    let refused = reference_refused(reference);
    if refused.anyone() {
        let lower = reference.to_lowercase();
        let fix = match lower != reference && !reference_refused(&lower).anyone() {
            true => format!("a repository name is lowercase: did you mean {lower:?}?"),
            false => {
                "write a reference such as `nginx:1.27` or `registry:5000/team/app@sha256:…`, \
                      or the image id"
                    .to_string()
            }
        };
        out.refuse(
            refused,
            vec![Step::Key("image".into())],
            &format!("{reference:?}"),
            "this image reference",
            &fix,
        );
    }
    if !is_image_id(&spec.image_id) {
        out.refuse(
            EVERY_ENGINE,
            vec![Step::Key("image_id".into())],
            &format!("{:?}", spec.image_id),
            "names no image by this id (an id is `sha256:` and 64 lowercase hex digits)",
            "write the id `docker image inspect -f '{{.Id}}' IMAGE` prints, or take the entry \
             again with `guestlist snapshot NAME`",
        );
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn is_image_id(id: &str) -> bool {
    id.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Which engines refuse `reference` as the image of a create.
fn reference_refused(reference: &str) -> By {
    use std::str::FromStr;
    if reference.is_empty() {
        // Docker creates from no image at all, but a pass has nothing to look up or pull.
        return EVERY_ENGINE;
    }
    if is_image_id(reference) {
        return By {
            docker: false,
            podman: false,
        };
    }
    // The grammar is ASCII (Go's `\w`); the crate's regex reads `\w` as Unicode.
    let grammar = |r: &str| r.is_ascii() && oci_spec::distribution::Reference::from_str(r).is_ok();
    // Docker 26 and later read `[::1]:5000/app`; 20.10 and Podman 4 do not.
    let bracketed = reference.strip_prefix('[').and_then(|rest| {
        let (host, tail) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        Some(format!("ipv6{tail}"))
    });
    let docker = match &bracketed {
        Some(named) => !grammar(named),
        None => !grammar(reference),
    };
    let bare_hex = reference.len() == 64 && reference.bytes().all(|b| b.is_ascii_hexdigit());
    let podman = !grammar(reference) || bare_hex || reference.starts_with("sha256:");
    By { docker, podman }
}

/// Namespace modes and the options a shared namespace rules out.
fn modes(spec: &ContainerSpec, out: &mut Findings) {
    let host = &spec.host_config;
    fn shared(mode: &str) -> Option<&str> {
        mode.strip_prefix("container:")
    }
    let network = text(host, "NetworkMode");
    if network == "container" || shared(network) == Some("") {
        out.refuse(
            EVERY_ENGINE,
            at("host_config", &["NetworkMode"]),
            &format!("{network:?}"),
            "a container network mode without its container",
            "write container:NAME",
        );
    }
    let ipc = text(host, "IpcMode");
    let ipc_known = ["", "private", "shareable", "host", "none"].contains(&ipc)
        || shared(ipc).is_some_and(|c| !c.is_empty());
    if !ipc_known {
        out.refuse(
            EVERY_ENGINE,
            at("host_config", &["IpcMode"]),
            &format!("{ipc:?}"),
            "this IPC mode",
            "write private, shareable, host, none or container:NAME",
        );
    }
    for (key, modes) in [("PidMode", "host"), ("UTSMode", "host")] {
        let mode = text(host, key);
        let known = ["", "host", "private"].contains(&mode)
            || shared(mode).is_some_and(|c| !c.is_empty())
            || mode.starts_with("ns:");
        let by = match (shared(mode) == Some(""), known) {
            (true, _) => EVERY_ENGINE,
            (false, false) => PODMAN,
            (false, true) => continue,
        };
        out.refuse(
            by,
            at("host_config", &[key]),
            &format!("{mode:?}"),
            "this namespace mode",
            &format!("write {modes} or container:NAME, or leave it out"),
        );
    }
    let cgroupns = text(host, "CgroupnsMode");
    if !["", "host", "private"].contains(&cgroupns) {
        out.refuse(
            DOCKER,
            at("host_config", &["CgroupnsMode"]),
            &format!("{cgroupns:?}"),
            "this cgroup namespace mode",
            "write host or private, or leave it out",
        );
    }
    let isolation = text(host, "Isolation");
    if !["", "default"].contains(&isolation) {
        out.refuse(
            DOCKER,
            at("host_config", &["Isolation"]),
            &format!("{isolation:?}"),
            "this isolation on Linux",
            "write default, or leave it out",
        );
    }
    let hostname = text(&spec.config, "Hostname");
    if !hostname.is_empty() {
        let by_network = shared(network).is_some();
        let by_uts = text(host, "UTSMode") == "host";
        if by_network || by_uts {
            let owner = match by_network {
                true => "host_config.NetworkMode",
                false => "host_config.UTSMode",
            };
            out.refuse(
                EVERY_ENGINE,
                at("config", &["Hostname"]),
                &format!("{hostname:?}"),
                &format!("a hostname with {owner} sharing another's"),
                "remove the hostname: the shared namespace has its own",
            );
        }
    }
    if shared(network).is_some() {
        let conflicts = [
            ("host_config", "PublishAllPorts", EVERY_ENGINE),
            ("host_config", "PortBindings", DOCKER),
            ("config", "ExposedPorts", DOCKER),
            ("host_config", "Dns", DOCKER),
            ("host_config", "ExtraHosts", DOCKER),
            ("host_config", "Links", DOCKER),
        ];
        for (part, key, by) in conflicts {
            let fields = match part {
                "config" => &spec.config,
                _ => host,
            };
            if is_set(fields, key) {
                out.refuse(
                    by,
                    at(part, &[key]),
                    &shown(&fields[key]),
                    "this with a container network mode (the network is the other container's)",
                    &format!("remove {key}, or give the container its own network"),
                );
            }
        }
    }
    for key in ["CapAdd", "CapDrop"] {
        for (i, cap) in strings(host, key) {
            if !capability_known(cap) {
                out.refuse(
                    EVERY_ENGINE,
                    with(at("host_config", &[key]), Step::Index(i)),
                    &format!("{cap:?}"),
                    "this capability",
                    "write a Linux capability such as NET_ADMIN or CAP_SYS_TIME, or ALL",
                );
            }
        }
    }
    for (i, option) in strings(host, "SecurityOpt") {
        if !security_option_known(option) {
            out.refuse(
                EVERY_ENGINE,
                with(at("host_config", &["SecurityOpt"]), Step::Index(i)),
                &format!("{option:?}"),
                "this security option",
                "write no-new-privileges, label=…, apparmor=… or seccomp=…",
            );
        }
    }
}

fn capability_known(cap: &str) -> bool {
    const KNOWN: &[&str] = &[
        "ALL",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let upper = cap.to_ascii_uppercase();
    KNOWN.contains(&upper.strip_prefix("CAP_").unwrap_or(&upper))
}

/// dockerd's `parseSecurityOpt`, and the keys Podman adds.
fn security_option_known(option: &str) -> bool {
    const BARE: &[&str] = &["no-new-privileges", "writable-cgroups", "disable"];
    const KEYS: &[&str] = &[
        "label",
        "apparmor",
        "seccomp",
        "no-new-privileges",
        "writable-cgroups",
        "mask",
        "unmask",
        "proc-opts",
        "systempaths",
        "mount",
    ];
    if BARE.contains(&option) {
        return true;
    }
    let split = option.split_once('=').or_else(|| option.split_once(':'));
    let Some((key, value)) = split else {
        return false;
    };
    let boolean = [
        "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
    ];
    match key {
        "no-new-privileges" | "writable-cgroups" => boolean.contains(&value),
        _ => KEYS.contains(&key),
    }
}

#[cfg(test)]
mod tests;
