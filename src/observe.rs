//! Observe: one read of the host as domain values. A read that fails fails the whole
//! observation: planning from a partial view would remove containers that are merely unseen.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::Value;

use crate::engine::{Engine, Listed};
use crate::plan::{LastRun, Observed, Status};
use crate::record::rules::{Claims, Scope};
use crate::record::spec::{self, CaptureContext};

/// Engine reads in flight at once. The engine answers reads on both cores, so a few in flight
/// hide each other's latency; the bound keeps a host with hundreds of containers from opening
/// hundreds of connections. Measured with `diff` over 500 containers (2 cores, Docker 20.10,
/// medians of 11): 8 at once took 347 ms, 16 took 254 ms, 32 took 263 ms, 64 took 241 ms.
const READS_IN_FLIGHT: usize = 16;

/// Which containers to inspect and capture (the others are listed only).
pub enum Capture<'a> {
    All,
    Named(&'a BTreeSet<String>),
}

/// What a pass needs of one inspected container. Each inspect is captured as it arrives and its
/// JSON dropped, so a pass over hundreds of containers holds their specs, never their inspects.
struct Inspected {
    spec: spec::ContainerSpec,
    status: Status,
    last_run: LastRun,
    origin: Arc<spec::Origin>,
}

/// Every container in `scope`, with the run configuration captured for those `capture` names,
/// each placed with another orchestrator where its labels claim so and `claims` believes it.
pub async fn host(
    engine: &Engine,
    scope: &Scope,
    claims: Claims,
    capture: Capture<'_>,
) -> Result<Vec<Observed>> {
    let listed = engine.list(scope).await?;
    from_list(engine, listed, claims, capture).await
}

/// `claims`, with swarm's believed when the engine is in a swarm now. Asked only when one of
/// `labels` claims a container for swarm: on most hosts, never.
pub async fn believed<'a>(
    engine: &Engine,
    claims: Claims,
    mut labels: impl Iterator<Item = &'a HashMap<String, String>>,
) -> Result<Claims> {
    let swarm = labels.any(|l| Claims::claims_swarm(l.keys().map(String::as_str)));
    Ok(Claims {
        swarm: swarm && engine.swarm_active().await?,
        ..claims
    })
}

/// The host again after a pass acted on it, as `allowed` would see it, for less: one list
/// call, and inspects only of the allowed containers `acted` names (created, started,
/// replaced) and of those the list shows changed since `before` (another id, another state).
/// The others' configuration is taken from `before`: a `docker update` of an allowed container
/// during the pass, which the list does not show, is found by the next pass.
pub async fn again(
    engine: &Engine,
    state: &crate::record::state::State,
    before: &[Observed],
    acted: &BTreeSet<String>,
) -> Result<Vec<Observed>> {
    let listed = engine.list(&state.scope).await?;
    let known: HashMap<&str, &Observed> = before
        .iter()
        .filter(|o| o.spec.is_some())
        .map(|o| (o.id.as_str(), o))
        .collect();
    let unchanged = |c: &Listed| {
        !acted.contains(&c.name)
            && known
                .get(c.id.as_str())
                .is_some_and(|o| o.name == c.name && o.status == c.status)
    };
    let inspect: BTreeSet<String> = listed
        .iter()
        .filter(|c| crate::plan::compared(state, &c.name) && !unchanged(c))
        .map(|c| c.name.clone())
        .collect();
    let mut observed = from_list(engine, listed, state.claims(), Capture::Named(&inspect)).await?;
    for o in observed.iter_mut().filter(|o| o.spec.is_none()) {
        if let Some(earlier) = known.get(o.id.as_str()).filter(|e| e.name == o.name) {
            o.spec = earlier.spec.clone();
            o.last_run = earlier.last_run;
            o.origin = earlier.origin.clone();
        }
    }
    Ok(observed)
}

/// `host` from a list the engine gave.
async fn from_list(
    engine: &Engine,
    listed: Vec<Listed>,
    claims: Claims,
    capture: Capture<'_>,
) -> Result<Vec<Observed>> {
    let claims = believed(engine, claims, listed.iter().map(|c| &c.labels)).await?;
    let wants = |c: &Listed| match &capture {
        Capture::All => true,
        Capture::Named(names) => names.contains(&c.name),
    };
    let wanted: Vec<&Listed> = listed.iter().filter(|c| wants(c)).collect();
    let names_by_id: HashMap<String, String> = listed
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    // The list names each container's image: one inspect per distinct image, before any
    // container is captured against it.
    let images = image_configs(engine, wanted.iter().map(|c| c.image_id.clone())).await?;

    let mut inspected: HashMap<String, Inspected> = stream::iter(wanted)
        .map(|c| async {
            let found = inspect_and_capture(engine, &c.id, &c.name, &images, &names_by_id).await;
            Ok::<_, anyhow::Error>(found?.map(|i| (c.id.clone(), i)))
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await?;

    let mut observed = Vec::with_capacity(listed.len());
    for c in listed {
        let inspection = inspected.remove(&c.id);
        if wants(&c) && inspection.is_none() {
            // Removed between the list and the inspect: it is gone, and must plan as missing
            // rather than as an allowed container with nothing to compare.
            continue;
        }
        // Use the inspected state when there is one: it is newer than the list's.
        let (spec, status, last_run, origin) = match inspection {
            Some(i) => (Some(i.spec), i.status, i.last_run, Some(i.origin)),
            None => (None, c.status, LastRun::default(), None),
        };
        observed.push(Observed {
            runs_guestlist: own_container_ids().contains(&c.id),
            managed: claims.owner(c.labels.keys().map(String::as_str)),
            running: status.is_running(),
            id: c.id,
            name: c.name,
            image: c.image,
            status,
            labels: c.labels,
            last_run,
            spec,
            origin,
        });
    }
    Ok(observed)
}

/// Inspect one container and capture its run configuration; `None` if it no longer exists.
async fn inspect_and_capture(
    engine: &Engine,
    id: &str,
    name: &str,
    images: &HashMap<String, Option<Arc<Value>>>,
    names_by_id: &HashMap<String, String>,
) -> Result<Option<Inspected>> {
    let Some(json) = engine.inspect(id).await? else {
        return Ok(None);
    };
    let image_id = json["Image"].as_str().unwrap_or_default();
    // Normally prefetched from the list; an engine whose list spells the id otherwise is asked.
    let image_config = match images.get(image_id) {
        Some(config) => config.clone(),
        None => engine
            .image(image_id)
            .await?
            .map(|image| Arc::new(image.config)),
    };
    // References to containers outside the list (out of scope) are rare: resolve them here.
    let mut outside = HashMap::new();
    resolve_referenced_names(engine, &json, names_by_id, &mut outside).await?;
    let names = if outside.is_empty() {
        names_by_id
    } else {
        outside.extend(names_by_id.iter().map(|(k, v)| (k.clone(), v.clone())));
        &outside
    };
    let ctx = CaptureContext {
        image_config: image_config.as_deref(),
        defaults: &engine.defaults,
        names_by_id: names,
    };
    let spec =
        capture(&json, &ctx).with_context(|| format!("cannot read the configuration of {name}"))?;
    Ok(Some(Inspected {
        spec,
        status: Status::from_word(json["State"]["Status"].as_str().unwrap_or_default()),
        last_run: last_run(&json),
        origin: Arc::new(spec::Origin {
            image: image_config,
            defaults: engine.defaults.clone(),
        }),
    }))
}

/// The ids of the container this process runs in, if it runs in one; empty on the host.
/// Read once: a process does not change containers.
fn own_container_ids() -> &'static BTreeSet<String> {
    static IDS: OnceLock<BTreeSet<String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        container_ids(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"))
    })
}

/// Container ids in the process's mount table and cgroup. The engine bind-mounts /etc/hostname,
/// /etc/hosts and /etc/resolv.conf from `.../containers/<id>/` (Podman from
/// `.../overlay-containers/<id>/userdata/`), which works under cgroup v2's private namespaces
/// too; cgroup v1 paths end in the id (`/docker/<id>`, `docker-<id>.scope`). A candidate that
/// is no container on this engine matches nothing, so extra candidates are harmless.
fn container_ids(mountinfo: &str, cgroup: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for line in mountinfo.lines() {
        // Fields: id, parent, major:minor, root (within its filesystem), mount point, ...
        // Only what is mounted *at* these files counts: on the host, the engine's own mounts
        // (`.../containers/<id>/mounts/shm`) name every running container.
        let mut fields = line.split(' ');
        let (Some(root), Some(point)) = (fields.nth(3), fields.next()) else {
            continue;
        };
        if !matches!(point, "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf") {
            continue;
        }
        for (at, _) in root.match_indices("containers/") {
            ids.extend(hex_id(&root[at + "containers/".len()..]));
        }
    }
    for line in cgroup.lines() {
        let path = line.rsplit(':').next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        let last = last.trim_end_matches(".scope");
        let last = last.rsplit('-').next().unwrap_or_default();
        ids.extend(hex_id(last));
    }
    ids
}

/// A 64-hex-digit container id at the start of `text`, ended by its end or a non-hex char.
fn hex_id(text: &str) -> Option<String> {
    let id = text.get(..64)?;
    let ends = text[64..]
        .chars()
        .next()
        .is_none_or(|c| !c.is_ascii_hexdigit());
    (id.bytes().all(|b| b.is_ascii_hexdigit()) && ends).then(|| id.to_string())
}

/// When the container's last run started and ended. The engine writes the zero time
/// (year 1) for "never", which parses as nothing.
fn last_run(inspect: &Value) -> LastRun {
    let time = |key: &str| {
        inspect["State"][key]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
    };
    let running = inspect["State"]["Running"].as_bool().unwrap_or(false);
    LastRun {
        started: time("StartedAt"),
        finished: if running { None } else { time("FinishedAt") },
    }
}

/// The `Config` of each distinct image in `ids`; `None` for an image that is gone, in which case
/// nothing of a container's configuration can be attributed to it.
async fn image_configs(
    engine: &Engine,
    ids: impl Iterator<Item = String>,
) -> Result<HashMap<String, Option<Arc<Value>>>> {
    let ids: BTreeSet<String> = ids.filter(|id| !id.is_empty()).collect();
    stream::iter(ids)
        .map(|id| async move {
            let config = engine.image(&id).await?.map(|image| Arc::new(image.config));
            Ok::<_, anyhow::Error>((id, config))
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .try_collect()
        .await
}

/// Names for the `container:<id>` references of one inspected container to containers that
/// `known` does not name (out of scope), added to `found`.
async fn resolve_referenced_names(
    engine: &Engine,
    json: &Value,
    known: &HashMap<String, String>,
    found: &mut HashMap<String, String>,
) -> Result<()> {
    let unknown: BTreeSet<&str> = ["NetworkMode", "IpcMode", "PidMode"]
        .iter()
        .filter_map(|key| json["HostConfig"][key].as_str()?.strip_prefix("container:"))
        .filter(|id| !known.contains_key(*id))
        .collect();
    for id in unknown {
        // A reference to a container that no longer exists stays an id: it is dead, and the
        // comparison with the recorded name shows the container as changed.
        if let Some(json) = engine.inspect(id).await? {
            if let Some(name) = json["Name"].as_str() {
                found.insert(id.to_string(), name.trim_start_matches('/').to_string());
            }
        }
    }
    Ok(())
}

/// The run configuration in one `docker inspect` taken earlier (an audit record): the image
/// and any `container:<id>` references are resolved against the host as it is now.
pub async fn capture_recorded(engine: &Engine, inspect: &Value) -> Result<spec::ContainerSpec> {
    let image_id = inspect["Image"].as_str().unwrap_or_default();
    let images = image_configs(engine, std::iter::once(image_id.to_string())).await?;
    let mut names_by_id = HashMap::new();
    resolve_referenced_names(engine, inspect, &HashMap::new(), &mut names_by_id).await?;
    let ctx = CaptureContext {
        image_config: images.get(image_id).and_then(Option::as_deref),
        defaults: &engine.defaults,
        names_by_id: &names_by_id,
    };
    capture(inspect, &ctx)
}

/// What the user set on a container, as far as a create request can carry it back.
fn capture(inspect: &Value, ctx: &CaptureContext<'_>) -> Result<spec::ContainerSpec> {
    let mut spec = spec::capture(inspect, ctx)?;
    crate::engine::keep_sendable(&mut spec.config, &mut spec.host_config);
    Ok(spec)
}

/// The host as the planner needs it for `state`: everything in its scope, with the allowed
/// containers captured for comparison (and any an interrupted replacement set aside).
pub async fn allowed(
    engine: &Engine,
    state: &crate::record::state::State,
) -> Result<Vec<Observed>> {
    let names: BTreeSet<String> = state
        .containers
        .iter()
        .flat_map(|e| [e.name.clone(), crate::plan::set_aside_name(&e.name)])
        .collect();
    host(engine, &state.scope, state.claims(), Capture::Named(&names)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1d001c964494df81a748d476347d3909f243b7af13bdde9befad5c998b3e8c7f";

    #[test]
    fn the_own_container_is_found_in_the_mount_table_and_cgroup_paths() {
        let docker = format!(
            "520 498 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 \
             /dev/vda1 rw\n498 400 0:52 / / rw - overlay overlay rw,upperdir=/var/lib/docker/\
             overlay2/{}/diff",
            "a".repeat(64)
        );
        assert_eq!(
            container_ids(&docker, "0::/"),
            BTreeSet::from([ID.to_string()])
        );
        let podman = format!(
            "1 2 0:3 /containers/storage/overlay-containers/{ID}/userdata/hosts /etc/hosts rw"
        );
        assert_eq!(container_ids(&podman, ""), BTreeSet::from([ID.to_string()]));
        for cgroup in [
            format!("12:memory:/docker/{ID}"),
            format!("0::/system.slice/docker-{ID}.scope"),
        ] {
            assert_eq!(container_ids("", &cgroup), BTreeSet::from([ID.to_string()]));
        }
    }

    #[test]
    fn on_the_host_there_is_no_own_container() {
        let mountinfo = format!(
            "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n\
             30 22 0:26 / /var/lib/docker/containers rw - ext4 /dev/vda1 rw\n\
             41 22 0:52 / /var/lib/docker/containers/{ID}/mounts/shm rw - tmpfs shm rw"
        );
        let mountinfo = mountinfo.as_str();
        assert!(container_ids(mountinfo, "0::/user.slice/session-1.scope").is_empty());
        assert_eq!(
            hex_id(&format!("{ID}0")),
            None,
            "65 hex digits are not an id"
        );
    }
}
