//! Resource limits: the ranges dockerd's `verifyPlatformContainerResources` and the runtime
//! hold them to, and the pairs that must agree (swap and memory, reservation and memory, CPUs
//! and a CFS period). Host-dependent bounds (the CPU count, what the cgroup version clamps) are
//! left to the engine.

use serde_json::{Map, Value};

use super::{at, int, Findings, DOCKER, EVERY_ENGINE};

/// dockerd's smallest memory limit and reservation: 6 MiB.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

pub(super) fn check(host: &Map<String, Value>, out: &mut Findings) {
    let place = |key: &str| at("host_config", &[key]);
    let given = |key: &str| host.get(key).and_then(Value::as_i64);
    let memory = int(host, "Memory");
    if let Some(memory) = given("Memory").filter(|m| *m < 0 || (1..MIN_MEMORY).contains(m)) {
        out.refuse(
            DOCKER,
            place("Memory"),
            &memory,
            "a memory limit under 6 MiB (6291456 bytes)",
            "write 0 for no limit, or 6291456 or more",
        );
    }
    if let Some(swap) = given("MemorySwap").filter(|s| *s > 0) {
        if memory <= 0 {
            out.refuse(
                EVERY_ENGINE,
                place("MemorySwap"),
                &swap,
                "a swap limit without a memory limit",
                "set Memory too, or write -1 for unlimited swap",
            );
        } else if swap < memory {
            out.refuse(
                EVERY_ENGINE,
                place("MemorySwap"),
                &swap,
                &format!("a swap limit under the memory limit ({memory}): it counts memory and swap together"),
                &format!("write {memory} or more, or -1 for unlimited swap"),
            );
        }
    }
    if let Some(reservation) = given("MemoryReservation").filter(|r| *r > 0) {
        if reservation < MIN_MEMORY {
            out.refuse(
                DOCKER,
                place("MemoryReservation"),
                &reservation,
                "a memory reservation under 6 MiB (6291456 bytes)",
                "write 0 for none, or 6291456 or more",
            );
        } else if memory > 0 && memory < reservation {
            out.refuse(
                EVERY_ENGINE,
                place("MemoryReservation"),
                &reservation,
                &format!("a memory reservation over the memory limit ({memory})"),
                &format!("write {memory} or less, or raise Memory"),
            );
        }
    }
    if let Some(shm) = given("ShmSize").filter(|s| *s < 0) {
        out.refuse(
            DOCKER,
            place("ShmSize"),
            &shm,
            "a negative /dev/shm size",
            "write 0 for the default, or a size in bytes",
        );
    }
    if let Some(shares) = given("CpuShares").filter(|s| *s < 0) {
        out.refuse(
            EVERY_ENGINE,
            place("CpuShares"),
            &shares,
            "negative CPU shares",
            "write 0 for the default, or 2 to 262144",
        );
    }
    let period = int(host, "CpuPeriod");
    let quota = int(host, "CpuQuota");
    if let Some(cpus) = given("NanoCpus") {
        if cpus < 0 {
            out.refuse(
                DOCKER,
                place("NanoCpus"),
                &cpus,
                "a negative CPU count",
                "write 0 for no limit, or CPUs × 1000000000",
            );
        } else if cpus > 0 && (period > 0 || quota > 0) {
            out.refuse(
                EVERY_ENGINE,
                place("NanoCpus"),
                &cpus,
                "NanoCpus together with CpuPeriod or CpuQuota",
                "keep NanoCpus or the period and quota, not both",
            );
        }
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        out.refuse(
            EVERY_ENGINE,
            place("CpuPeriod"),
            &period,
            "a CFS period outside 1000 to 1000000 microseconds",
            "write 0 for the default, or 1000 to 1000000",
        );
    }
    if (1..1000).contains(&quota) {
        out.refuse(
            EVERY_ENGINE,
            place("CpuQuota"),
            &quota,
            "a CFS quota under 1000 microseconds",
            "write 0 or -1 for no quota, or 1000 or more",
        );
    }
    if let Some(score) = given("OomScoreAdj").filter(|s| !(-1000..=1000).contains(s)) {
        out.refuse(
            EVERY_ENGINE,
            place("OomScoreAdj"),
            &score,
            "an OOM score adjustment outside -1000 to 1000",
            "write a value from -1000 to 1000",
        );
    }
    if let Some(swappiness) = given("MemorySwappiness") {
        let by = match swappiness {
            s if s > 100 => Some(EVERY_ENGINE),
            s if s < -1 => Some(DOCKER),
            _ => None,
        };
        if let Some(by) = by {
            out.refuse(
                by,
                place("MemorySwappiness"),
                &swappiness,
                "a swappiness outside 0 to 100",
                "write 0 to 100, or -1 (or nothing) for the default",
            );
        }
    }
    realtime(host, out);
    for key in ["CpusetCpus", "CpusetMems"] {
        let list = host.get(key).and_then(Value::as_str).unwrap_or("");
        if !list.is_empty() && !cpu_list(list) {
            out.refuse(
                EVERY_ENGINE,
                at("host_config", &[key]),
                &format!("{list:?}"),
                "this list (numbers and rising ranges, separated by commas)",
                "write a list such as \"0-3,6\"",
            );
        }
    }
}

/// A list such as `0-3,6`, as the kernel's cpuset files take it.
fn cpu_list(list: &str) -> bool {
    let number = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    list.split(',').all(|item| match item.split_once('-') {
        Some((low, high)) if number(low) && number(high) => {
            low.parse::<u64>().ok() <= high.parse::<u64>().ok()
        }
        Some(_) => false,
        None => number(item),
    })
}

/// Real-time CPU time, and the Windows-only I/O limits.
fn realtime(host: &Map<String, Value>, out: &mut Findings) {
    let period = int(host, "CpuRealtimePeriod");
    let runtime = int(host, "CpuRealtimeRuntime");
    if period != 0 && runtime != 0 && runtime > period {
        out.refuse(
            DOCKER,
            at("host_config", &["CpuRealtimeRuntime"]),
            &runtime,
            &format!("a real-time runtime over its period ({period})"),
            &format!("write {period} or less"),
        );
    }
    for key in ["IOMaximumBandwidth", "IOMaximumIOps"] {
        let value = int(host, key);
        if value != 0 {
            out.refuse(
                DOCKER,
                at("host_config", &[key]),
                &value,
                "this Windows-only limit on Linux",
                &format!("remove {key}, or use BlkioDeviceReadBps and the like"),
            );
        }
    }
}
