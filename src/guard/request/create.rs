//! A create's body, read as the engine reads it: its name, image, labels and the processes it
//! would share. Pure.

use std::collections::HashMap;

use super::{Create, Judged, Query};
use crate::guard::body::{self, Json, Object};

impl Judged<'_> {
    pub(super) fn create(&self, bytes: &[u8], query: &Query) -> Result<Create, String> {
        let body = match body::parse(bytes) {
            Ok(Json::Object(o)) => o,
            Ok(_) => return Err("the create's body is not a JSON object".into()),
            Err(e) => return Err(format!("the create's body is ambiguous to the engine: {e}")),
        };
        let text = |key: &str| -> Result<Option<String>, String> {
            match body.field(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{key} in the create's body is not a string")),
            }
        };
        let labels = match body.field("Labels") {
            None | Some(Json::Null) => HashMap::new(),
            Some(Json::Object(o)) => o.strings().map_err(|e| format!("Labels: {e}"))?,
            Some(_) => return Err("Labels in the create's body is not an object".into()),
        };
        let (name, image) = match self.routed.libpod {
            false => {
                // dockerd up to 26 also reads host configuration at the top level when the body
                // has no HostConfig; nothing a client needs, so refused rather than read.
                if let Some(key) = body.keys_among(HOST_CONFIG_FIELDS).next() {
                    return Err(format!(
                        "{key} belongs in HostConfig; at the top level Docker 26 and older read \
                         it as host configuration"
                    ));
                }
                // Podman sets the body's `Name` to the query's, whatever either says.
                (query.single("name")?, text("Image")?)
            }
            true => {
                let rootfs = text("rootfs")?.filter(|r| !r.is_empty());
                let image = match (text("image")?, rootfs) {
                    (Some(image), None) => Some(image),
                    (None, Some(rootfs)) => Some(format!("rootfs:{rootfs}")),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err("the create names both an image and a root file system".into())
                    }
                };
                (text("name")?, image)
            }
        };
        let name = name
            .map(|n| n.strip_prefix('/').map(str::to_string).unwrap_or(n))
            .filter(|n| !n.is_empty());
        Ok(Create {
            name,
            image: image.unwrap_or_default(),
            labels,
            shares_processes_of: shared_processes(&body, self.routed.libpod)?,
            through_libpod: self.routed.libpod,
        })
    }
}

/// The container whose process namespace a create joins: `HostConfig.PidMode`
/// `container:X`, or Podman's `pidns` `{"nsmode": "container", "value": X}`. Joining one by
/// its path (Podman's `ns:/proc/N/ns/pid`) names no container the guard could judge: refused.
fn shared_processes(body: &Object, libpod: bool) -> Result<Option<String>, String> {
    let by_path = || {
        Err(
            "a create that joins a process namespace by its path: the guard cannot tell whose \
             processes it could kill"
                .to_string(),
        )
    };
    let joined = match libpod {
        false => {
            let host = body.field("HostConfig").and_then(Json::as_object_ref);
            let mode = host.and_then(|h| h.field("PidMode")).and_then(Json::as_str);
            match mode.unwrap_or_default().split_once(':') {
                Some(("container", joined)) => joined.to_string(),
                Some(("ns", _)) => return by_path(),
                _ => return Ok(None),
            }
        }
        true => {
            let pidns = body.field("pidns").and_then(Json::as_object_ref);
            let field = |k: &str| pidns.and_then(|p| p.field(k)).and_then(Json::as_str);
            match field("nsmode").unwrap_or_default() {
                "container" => field("value").unwrap_or_default().to_string(),
                "path" => return by_path(),
                _ => return Ok(None),
            }
        }
    };
    Ok(Some(joined).filter(|j| !j.is_empty()))
}

/// HostConfig's fields (with Resources') as Docker 26 knows them, and the wrapper's `Cpuset`.
const HOST_CONFIG_FIELDS: &[&str] = &[
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "ConsoleSize",
    "Annotations",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "Isolation",
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Mounts",
    "MaskedPaths",
    "ReadonlyPaths",
    "Init",
    "Cpuset",
];
