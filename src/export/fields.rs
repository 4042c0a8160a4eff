//! The recorded fields both formats can say, in one table: the create request's field, the
//! `docker create` flag and the compose key. A field is added here once; the two writers
//! (`script`, `compose`) look it up, and only values with a syntax of their own have code there.
//! A field in no row is named as inexpressible by both.

/// How `docker create` says a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--flag VALUE`, the value as the engine stores it (bytes, a mode word).
    Value(&'static str),
    /// `--flag ITEM` once per string of a list.
    Each(&'static str),
    /// `--flag KEY` once per key of an object.
    Keys(&'static str),
    /// `--flag` when true (a record keeps no false value of these).
    Switch(&'static str),
    /// A syntax of its own, written by `script`.
    Own,
    /// The CLI has no flag for it.
    Never,
}

/// How compose says a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compose {
    /// The value as it is, under this key.
    Same(&'static str),
    /// The keys of an object, as a list under this key.
    Keys(&'static str),
    /// A syntax of its own, written by `compose`.
    Own,
    /// Compose has no key for it.
    Never,
}

/// One recorded field and how each format says it.
#[derive(Debug)]
pub struct Field {
    /// The key under `config` or `host_config`, as the engine names it.
    pub key: &'static str,
    pub flag: Flag,
    pub compose: Compose,
}

const fn field(key: &'static str, flag: Flag, compose: Compose) -> Field {
    Field { key, flag, compose }
}

use Compose::{Keys as ComposeKeys, Never as NoKey, Own as ComposeOwn, Same};
use Flag::{Each, Keys, Own, Switch, Value};

/// `config` fields (`Config` in the create request).
pub const CONFIG: &[Field] = &[
    // Positional, after the image.
    field("Cmd", Own, Same("command")),
    field("Entrypoint", Own, Same("entrypoint")),
    field("Env", Own, Same("environment")),
    field("Labels", Own, Same("labels")),
    field("WorkingDir", Value("--workdir"), Same("working_dir")),
    field("User", Value("--user"), Same("user")),
    field("Hostname", Value("--hostname"), Same("hostname")),
    field("Domainname", Value("--domainname"), Same("domainname")),
    field("StopSignal", Value("--stop-signal"), Same("stop_signal")),
    field("StopTimeout", Own, ComposeOwn),
    field("Tty", Switch("--tty"), Same("tty")),
    field("OpenStdin", Switch("--interactive"), Same("stdin_open")),
    field("ExposedPorts", Keys("--expose"), ComposeKeys("expose")),
    field("Volumes", Keys("--volume"), ComposeOwn),
    field("Healthcheck", Own, ComposeOwn),
];

/// `host_config` fields (`HostConfig` in the create request).
pub const HOST: &[Field] = &[
    field("Memory", Value("--memory"), Same("mem_limit")),
    field("MemorySwap", Value("--memory-swap"), Same("memswap_limit")),
    field(
        "MemoryReservation",
        Value("--memory-reservation"),
        Same("mem_reservation"),
    ),
    field(
        "MemorySwappiness",
        Value("--memory-swappiness"),
        Same("mem_swappiness"),
    ),
    field("CpuShares", Value("--cpu-shares"), Same("cpu_shares")),
    field("CpuPeriod", Value("--cpu-period"), Same("cpu_period")),
    field("CpuQuota", Value("--cpu-quota"), Same("cpu_quota")),
    field("CpuRealtimePeriod", Value("--cpu-rt-period"), NoKey),
    field("CpuRealtimeRuntime", Value("--cpu-rt-runtime"), NoKey),
    field("CpusetCpus", Value("--cpuset-cpus"), Same("cpuset")),
    field("CpusetMems", Value("--cpuset-mems"), NoKey),
    field("NanoCpus", Own, ComposeOwn),
    field("PidsLimit", Value("--pids-limit"), Same("pids_limit")),
    field("ShmSize", Value("--shm-size"), Same("shm_size")),
    field(
        "OomScoreAdj",
        Value("--oom-score-adj"),
        Same("oom_score_adj"),
    ),
    field(
        "OomKillDisable",
        Switch("--oom-kill-disable"),
        Same("oom_kill_disable"),
    ),
    field("BlkioWeight", Value("--blkio-weight"), NoKey),
    field("IpcMode", Value("--ipc"), Same("ipc")),
    field("PidMode", Value("--pid"), Same("pid")),
    field("UTSMode", Value("--uts"), NoKey),
    field("UsernsMode", Value("--userns"), Same("userns_mode")),
    field("CgroupnsMode", Value("--cgroupns"), NoKey),
    field(
        "CgroupParent",
        Value("--cgroup-parent"),
        Same("cgroup_parent"),
    ),
    field("Runtime", Value("--runtime"), Same("runtime")),
    field("NetworkMode", Own, ComposeOwn),
    field("Binds", Each("--volume"), ComposeOwn),
    field("Mounts", Own, ComposeOwn),
    field("Tmpfs", Own, ComposeOwn),
    field("VolumesFrom", Each("--volumes-from"), ComposeOwn),
    field("CapAdd", Each("--cap-add"), Same("cap_add")),
    field("CapDrop", Each("--cap-drop"), Same("cap_drop")),
    field("SecurityOpt", Each("--security-opt"), Same("security_opt")),
    field("ExtraHosts", Each("--add-host"), Same("extra_hosts")),
    field("Dns", Each("--dns"), Same("dns")),
    field("DnsSearch", Each("--dns-search"), Same("dns_search")),
    field("DnsOptions", Each("--dns-option"), Same("dns_opt")),
    field("GroupAdd", Each("--group-add"), Same("group_add")),
    field("DeviceCgroupRules", Each("--device-cgroup-rule"), NoKey),
    field("Devices", Own, ComposeOwn),
    field("ReadonlyRootfs", Switch("--read-only"), Same("read_only")),
    field(
        "PublishAllPorts",
        Switch("--publish-all"),
        Same("publish_all_ports"),
    ),
    field("AutoRemove", Switch("--rm"), NoKey),
    field("Privileged", Switch("--privileged"), Same("privileged")),
    field("Init", Own, Same("init")),
    field("Sysctls", Own, Same("sysctls")),
    field("Ulimits", Own, ComposeOwn),
    field("PortBindings", Own, ComposeOwn),
    field("RestartPolicy", Own, ComposeOwn),
    field("LogConfig", Own, ComposeOwn),
    field("Links", Own, ComposeOwn),
];

/// The row of a `config` or `host_config` key; `None`: neither format can say it.
pub fn lookup(table: &'static [Field], key: &str) -> Option<&'static Field> {
    table.iter().find(|f| f.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_one_row() {
        for table in [CONFIG, HOST] {
            let mut keys: Vec<&str> = table.iter().map(|f| f.key).collect();
            keys.sort_unstable();
            let before = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), before, "a key has two rows");
        }
    }
}
