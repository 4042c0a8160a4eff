//! How the container's process runs: its environment, working directory, stop signal, health
//! check, hostname, labels, restart policy and log driver.

use serde_json::{Map, Value};

use super::{at, int, strings, text, with, By, Findings, DOCKER, EVERY_ENGINE, PODMAN};
use crate::record::schema::Step;

/// `Config` values: environment, working directory, stop signal, health check, hostname.
pub(super) fn config(config: &Map<String, Value>, out: &mut Findings) {
    for (i, entry) in strings(config, "Env") {
        if entry.is_empty() || entry.starts_with('=') {
            out.refuse(
                EVERY_ENGINE,
                with(at("config", &["Env"]), Step::Index(i)),
                &format!("{entry:?}"),
                "an environment entry without a name",
                "write NAME=value, or remove the entry",
            );
        }
    }
    let workdir = text(config, "WorkingDir");
    if !workdir.is_empty() && !workdir.starts_with('/') {
        out.refuse(
            EVERY_ENGINE,
            at("config", &["WorkingDir"]),
            &format!("{workdir:?}"),
            "a working directory that is not an absolute path",
            &format!(
                "write it from the root, such as \"/{}\"",
                workdir.trim_start_matches(['.', '/', '~'])
            ),
        );
    }
    if let Some(signal) = config.get("StopSignal").and_then(Value::as_str) {
        let by = signal_refused(signal);
        out.refuse(
            by,
            at("config", &["StopSignal"]),
            &format!("{signal:?}"),
            "this signal",
            "write a signal name such as SIGTERM, SIGINT or SIGRTMIN+3, or a number from 1 to 64",
        );
    }
    let hostname = text(config, "Hostname");
    if hostname.len() > 64 {
        out.refuse(
            EVERY_ENGINE,
            at("config", &["Hostname"]),
            &format!("{} bytes", hostname.len()),
            "a hostname longer than 64 bytes (the kernel's limit)",
            "shorten it",
        );
    }
    if let Some(Value::Object(health)) = config.get("Healthcheck") {
        for key in ["Interval", "Timeout", "StartPeriod"] {
            let value = int(health, key);
            if value != 0 && value < 1_000_000 {
                out.refuse(
                    DOCKER,
                    at("config", &["Healthcheck", key]),
                    &value,
                    "a health check duration under 1ms (it is in nanoseconds)",
                    "write 0 for the default, or 1000000 (1ms) or more",
                );
            }
        }
        let retries = int(health, "Retries");
        if retries < 0 {
            out.refuse(
                DOCKER,
                at("config", &["Healthcheck", "Retries"]),
                &retries,
                "a negative retry count",
                "write 0 for the default, or a positive count",
            );
        }
    }
    if let Some(Value::Object(labels)) = config.get("Labels") {
        if labels.contains_key("") {
            out.refuse(
                PODMAN,
                at("config", &["Labels", ""]),
                &"\"\"",
                "a label without a key",
                "give the label a key, or remove it",
            );
        }
    }
}

/// The log driver: Podman knows its own few; dockerd checks the options of its file drivers
/// (any other name may be a plugin, which only the engine knows).
pub(super) fn log_config(host: &Map<String, Value>, out: &mut Findings) {
    const PODMAN_DRIVERS: &[&str] = &[
        "",
        "json-file",
        "k8s-file",
        "journald",
        "none",
        "passthrough",
        "passthrough-tty",
    ];
    const FILE_OPTIONS: &[&str] = &[
        "max-size",
        "max-file",
        "compress",
        "labels",
        "labels-regex",
        "env",
        "env-regex",
        "tag",
    ];
    let Some(Value::Object(log)) = host.get("LogConfig") else {
        return;
    };
    let driver = text(log, "Type");
    if !PODMAN_DRIVERS.contains(&driver) {
        out.refuse(
            PODMAN,
            at("host_config", &["LogConfig", "Type"]),
            &format!("{driver:?}"),
            "this log driver",
            &format!("write one of {}", PODMAN_DRIVERS[1..].join(", ")),
        );
    }
    if driver == "json-file" {
        if let Some(Value::Object(options)) = log.get("Config") {
            for key in options
                .keys()
                .filter(|k| !FILE_OPTIONS.contains(&k.as_str()))
            {
                out.refuse(
                    DOCKER,
                    at("host_config", &["LogConfig", "Config", key]),
                    &format!("{key:?}"),
                    "this json-file log option",
                    &format!("write one of {}", FILE_OPTIONS.join(", ")),
                );
            }
        }
    }
}

/// Which engines refuse `signal` as a stop signal: a name from the Linux table (any case, with
/// or without `SIG`) or a number; Podman takes numbers up to 64 only.
fn signal_refused(signal: &str) -> By {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
        "RTMIN", "RTMAX",
    ];
    let none = By {
        docker: false,
        podman: false,
    };
    if let Ok(number) = signal.parse::<i64>() {
        return match number {
            0 => EVERY_ENGINE,
            n if n > 64 => PODMAN,
            _ => none,
        };
    }
    let upper = signal.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: &str, sign: char| {
        bare.strip_prefix(base)
            .and_then(|r| r.strip_prefix(sign))
            .is_some_and(|n| (1..=15).any(|i: u8| i.to_string() == n))
    };
    match NAMES.contains(&bare) || realtime("RTMIN", '+') || realtime("RTMAX", '-') {
        true => none,
        false => EVERY_ENGINE,
    }
}

/// The restart policy's retry count, which only `on-failure` takes, and `AutoRemove`, which
/// takes no restart policy.
pub(super) fn restart(host: &Map<String, Value>, out: &mut Findings) {
    let Some(Value::Object(policy)) = host.get("RestartPolicy") else {
        return;
    };
    let name = text(policy, "Name");
    let retries = int(policy, "MaximumRetryCount");
    let place = at("host_config", &["RestartPolicy", "MaximumRetryCount"]);
    if name == "on-failure" && retries < 0 {
        out.refuse(
            EVERY_ENGINE,
            place,
            &retries,
            "a negative retry count",
            "write 0 to retry forever, or a positive count",
        );
    } else if retries != 0 && ["always", "unless-stopped", "no"].contains(&name) {
        out.refuse(
            DOCKER,
            place,
            &retries,
            &format!("a retry count with the {name:?} policy (only on-failure takes one)"),
            "remove MaximumRetryCount, or use on-failure",
        );
    }
    if host.get("AutoRemove") == Some(&Value::Bool(true)) && !["", "no"].contains(&name) {
        out.refuse(
            EVERY_ENGINE,
            at("host_config", &["AutoRemove"]),
            &true,
            &format!("AutoRemove with the {name:?} restart policy"),
            "remove one of them",
        );
    }
}
