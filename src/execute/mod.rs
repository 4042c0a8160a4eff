//! Act: run a plan against the engine, wave by wave, with a bounded number of actions at once.
//! Thin by design: the decisions were made by the planner. One failed action never stops the
//! others; each action ends with its own result.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::future::{join, join_all};
use tokio::sync::{watch, OnceCell, Semaphore, SemaphorePermit};

use crate::engine::{self, Engine};
use crate::ops::audit::Audit;
use crate::plan::{Action, ActionResult, Plan};
use crate::record::spec::{self, short_id, ContainerSpec};

mod replace;

/// Engine work in flight at once (inspecting, creating, connecting, starting, removing). The
/// engine queues what it cannot do at once anyway; in flight, requests hide each other's
/// latency. Measured on 2 cores, Docker 20.10, recreating 30 deleted containers (medians of 5):
/// 4 at once took 5.4 s, 8 took 5.0 s, 16 took 4.85 s, 32 took 5.4 s. The bound keeps a pass
/// over hundreds of containers from opening hundreds of requests. Waiting out a stop's grace
/// period is not work and is not bounded: ten containers slow to stop take one grace period,
/// not ten (and `--max-removals` bounds how many stop at once).
pub const WORK_IN_FLIGHT: usize = 16;

pub struct ExecuteOptions {
    /// `--stop-timeout`: the grace period for stopping extra and replaced containers before
    /// SIGKILL; `None`: each container's own, as `docker stop` without `-t`.
    pub stop_timeout: Option<Duration>,
    /// Where each container is kept before it is removed, and each result recorded.
    pub audit: Audit,
    /// What `--max-removals` leaves of its budget once the plan's removals are counted: for a
    /// never-started container that must be created again (`start_failed`). Shared by the
    /// pass's retries, which run with the same options.
    pub spare_removals: AtomicUsize,
}

/// Run every action of `plan`. Removals and the creation waves run side by side, so the grace
/// periods of one pass overlap: an extra and a replaced container slow to stop take one grace
/// period, not two. What removals protect (an extra may hold a port, an address or a
/// replacement's temporary name that an allowed container needs) holds all the same: nothing
/// is started, and no replacement is created under a name an extra holds, until every removal
/// has ended. A creation wave starts when the previous one has finished.
pub async fn run(engine: &Engine, plan: &Plan, options: &ExecuteOptions) -> Vec<ActionResult> {
    let (cleared, _) = watch::channel(false);
    let removals: Vec<&Action> = plan
        .actions()
        .filter(|a| matches!(a, Action::Remove { .. }))
        .collect();
    let run = Execution {
        engine,
        options,
        work: Semaphore::new(WORK_IN_FLIGHT),
        images: Images::default(),
        removed_names: removals.iter().map(|a| a.name().to_string()).collect(),
        cleared,
    };
    let removing = async {
        let none = BTreeSet::new();
        let done = join_all(removals.iter().map(|action| run.perform(action, &none))).await;
        run.cleared.send_replace(true);
        done
    };
    let creating = async {
        let mut results = Vec::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for wave in &plan.waves {
            let wave = wave.iter().filter(|a| !matches!(a, Action::Remove { .. }));
            let done = join_all(wave.map(|action| run.perform(action, &failed))).await;
            failed.extend(
                done.iter()
                    .filter(|r| r.outcome.is_err())
                    .map(|r| r.action.name().to_string()),
            );
            results.extend(done);
        }
        results
    };
    let (mut results, created) = join(removing, creating).await;
    results.extend(created);
    results
}

/// What the actions of one run share.
struct Execution<'a> {
    engine: &'a Engine,
    options: &'a ExecuteOptions,
    /// Turns at engine work (`WORK_IN_FLIGHT`).
    work: Semaphore,
    images: Images,
    /// The names of the extras this run removes.
    removed_names: BTreeSet<String>,
    /// Set once every removal of this run has ended (done or failed).
    cleared: watch::Sender<bool>,
}

impl Execution<'_> {
    /// Wait for a turn at engine work; held until dropped. The semaphore is never closed, and
    /// if it were, the work would go ahead unbounded rather than not at all.
    async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.work.acquire().await.ok()
    }

    /// Wait until every removal of this run has ended: what an extra held (a port, an address,
    /// a name) is free then. Never wait holding a turn at engine work: the removals need them.
    async fn removals_ended(&self) {
        let mut cleared = self.cleared.subscribe();
        // The sender lives as long as the run; if it were gone there would be nothing to wait for.
        let _ = cleared.wait_for(|done| *done).await;
    }

    async fn perform(&self, action: &Action, failed: &BTreeSet<String>) -> ActionResult {
        let blocked = match action {
            Action::Create { spec, .. } | Action::Replace { spec, .. } => spec::dependencies(spec)
                .into_iter()
                .find(|(dep, _)| failed.contains(dep)),
            _ => None,
        };
        let outcome = match blocked {
            Some((dep, _)) => Err(anyhow!("not attempted: {dep}, which it needs, failed")),
            None => self.act(action).await,
        };
        let outdated = match (action, &outcome) {
            (Action::Start { .. }, Err(e)) => engine::is_not_found(e) || engine::is_conflict(e),
            (Action::Create { .. }, Err(e)) => engine::is_conflict(e),
            _ => false,
        };
        let mut outcome = outcome;
        if let Err(e) = self.options.audit.result(action, &outcome, outdated).await {
            let unlogged = format!("this result is not in the audit log: {e:#}");
            outcome = match outcome {
                Ok(mut notes) => {
                    notes.push(unlogged);
                    Ok(notes)
                }
                Err(cause) => Err(cause.context(unlogged)),
            };
        }
        ActionResult {
            outcome,
            action: action.clone(),
            outdated,
        }
    }

    async fn act(&self, action: &Action) -> Result<Vec<String>> {
        let engine = self.engine;
        match action {
            Action::Remove { id, .. } => {
                let permit = self.permit().await;
                let Some(inspect) = engine.inspect(id).await? else {
                    return Ok(vec!["it was already gone".into()]);
                };
                let own = own_stop_timeout(&inspect);
                self.options
                    .audit
                    .removing(action, id, inspect)
                    .await
                    .context("nothing was removed")?;
                drop(permit);
                self.remove(id, own).await
            }
            Action::Start { name, id, spec } => {
                self.removals_ended().await;
                let permit = self.permit().await;
                let Err(error) = engine.start(id).await else {
                    return Ok(Vec::new());
                };
                drop(permit);
                self.start_failed(action, name, id, spec, error).await
            }
            Action::Create { name, spec, start } => {
                let permit = self.permit().await;
                let (image, mut notes) = resolve_image(engine, &self.images, name, spec).await?;
                notes.extend(check_anonymous_volumes(engine, spec).await?);
                let id = create(engine, name, spec, &image).await?;
                drop(permit);
                if *start {
                    self.removals_ended().await;
                    let _permit = self.permit().await;
                    engine.start(&id).await?;
                }
                Ok(notes)
            }
            Action::Finish {
                name,
                id,
                aside,
                start,
                spec,
            } => self.finish(name, id, aside, *start, spec).await,
            Action::PutBack {
                name,
                id,
                clear,
                start,
            } => {
                self.put_back_set_aside(name, id, clear.as_deref(), *start)
                    .await
            }
            Action::Replace {
                name,
                id,
                spec,
                start,
                ..
            } => {
                let permit = self.permit().await;
                let (image, mut notes) = resolve_image(engine, &self.images, name, spec).await?;
                drop(permit);
                let new = Replacement {
                    name,
                    spec,
                    image: &image,
                    start: *start,
                };
                notes.extend(self.replace(action, id, new).await?);
                Ok(notes)
            }
        }
    }

    /// A container the engine created but never started holds nothing of its own: its writable
    /// layer is empty. After a dockerd crash in the middle of starts, Docker 20.10 answers every
    /// start of such a container with `task ... already exists`, or, when the restarted dockerd
    /// could not delete the task containerd kept for it ("Container not cleaned up from
    /// containerd from previous run", "cannot delete running task"), with `id already in use`,
    /// forever: replace it from the record (a new id), counted against `--max-removals`. Only for that answer: a start refused for the
    /// record's own reasons (the runtime finds no executable) would fail again the same way, and
    /// the container would be replaced on every pass.
    async fn start_failed(
        &self,
        action: &Action,
        name: &str,
        id: &str,
        spec: &ContainerSpec,
        error: anyhow::Error,
    ) -> Result<Vec<String>> {
        if !stale_task(&error) {
            return Err(error);
        }
        let Some(inspect) = self.engine.inspect(id).await? else {
            return Err(error);
        };
        if !never_ran(&inspect) {
            return Err(error);
        }
        if !self.spare_removal() {
            return Err(error.context(
                "it never ran and could be created again from the record, but that is one removal \
                 more than --max-removals allows",
            ));
        }
        let permit = self.permit().await;
        let (image, mut notes) = resolve_image(self.engine, &self.images, name, spec).await?;
        drop(permit);
        let new = Replacement {
            name,
            spec,
            image: &image,
            start: true,
        };
        notes.extend(self.replace(action, id, new).await?);
        notes.insert(
            0,
            format!(
                "its start failed ({error:#}); it had never run, so it was created again from \
                 the record"
            ),
        );
        Ok(notes)
    }

    /// Take one removal from what `--max-removals` leaves over; false when none is left.
    fn spare_removal(&self) -> bool {
        self.options
            .spare_removals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Stop (with the grace period, outside the work bound) and remove; a container that is
    /// already gone is not a failure. `own` is the container's own stop timeout.
    async fn remove(&self, id: &str, own: Option<Duration>) -> Result<Vec<String>> {
        let engine = self.engine;
        // Without a grace period the forced removal alone kills and removes, in one request,
        // as `docker rm -f` does; a stop first would only send SIGTERM to be overtaken.
        if self.options.stop_timeout != Some(Duration::ZERO) {
            match engine.stop(id, self.options.stop_timeout, own).await {
                Err(e) if engine::is_not_found(&e) => {
                    return Ok(vec!["it was already gone".into()])
                }
                // A stop that fails (already stopped is not an error) must not keep the
                // removal from happening: remove forces it.
                _ => {}
            }
        }
        let _permit = self.permit().await;
        match engine.remove(id).await {
            Err(e) if engine::is_not_found(&e) => Ok(vec!["it was already gone".into()]),
            Err(e) if engine::is_conflict(&e) => Ok(vec!["it was already being removed".into()]),
            other => other.map(|()| Vec::new()),
        }
    }
}

/// What the engine says when containerd still holds a task or container for a never-started
/// container's id after a crash (see `start_failed`).
const STALE_TASK: [&str; 2] = ["already exists", "id already in use"];

/// Whether a start failed because containerd still holds a task for the container's id.
fn stale_task(error: &anyhow::Error) -> bool {
    let said = format!("{error:#}");
    engine::status(error) == Some(500) && STALE_TASK.iter().any(|words| said.contains(words))
}

/// Created and never started: its writable layer is empty, so removing it loses nothing.
fn never_ran(inspect: &serde_json::Value) -> bool {
    let state = &inspect["State"];
    let never_started = state["StartedAt"]
        .as_str()
        .is_none_or(|t| t.is_empty() || t.starts_with("0001-01-01"));
    never_started && state["Status"].as_str() == Some("created")
}

/// The stop timeout a container set for itself (`docker run --stop-timeout`), from its inspect.
fn own_stop_timeout(inspect: &serde_json::Value) -> Option<Duration> {
    inspect["Config"]["StopTimeout"]
        .as_u64()
        .map(Duration::from_secs)
}

/// What a replacement is created as.
struct Replacement<'a> {
    name: &'a str,
    spec: &'a ContainerSpec,
    image: &'a str,
    start: bool,
}

/// Give the replacement its name. The old container's removal can still be finishing (an
/// `--rm` container removes itself when stopped), which the engine answers with a conflict.
async fn rename_when_free(engine: &Engine, id: &str, name: &str) -> Result<()> {
    for _ in 0..50 {
        match engine.rename(id, name).await {
            Err(e) if engine::is_conflict(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            done => return done,
        }
    }
    engine.rename(id, name).await
}

/// Create `name` from `spec` and attach its other networks; a container that cannot be fully
/// set up is removed again so it does not block the name.
async fn create(engine: &Engine, name: &str, spec: &ContainerSpec, image: &str) -> Result<String> {
    let body = spec::create_body(spec, image)?;
    let id = engine.create(name, body).await?;
    let (_, others) = spec::network_attachments(spec);
    for network in others {
        let endpoint = spec.networks.get(&network).cloned().unwrap_or_default();
        if let Err(e) = engine.connect_network(&id, &network, endpoint.into()).await {
            engine.remove(&id).await.ok();
            return Err(e);
        }
    }
    Ok(id)
}

/// How one recorded image (reference and id) resolves on this host: decided once per pass and
/// shared by every container of that image, so ten containers cost one inspect and a missing
/// image is pulled once, not ten times at once.
#[derive(Default)]
struct Images(Mutex<HashMap<RecordedImage, Arc<OnceCell<Resolution>>>>);

/// A recorded image: its reference as given, and its id.
type RecordedImage = (String, String);

#[derive(Clone)]
enum Resolution {
    /// The reference still names the recorded image.
    Reference,
    /// Only the recorded id is present: the reference names another image (`Some(its id)`)
    /// or none.
    RecordedId { moved_to: Option<String> },
    /// Absent, and pulling the reference failed with this.
    Unpullable(String),
    /// Absent; pulling the reference gave this other image.
    PulledOther(String),
    /// Absent even after a pull that said it worked.
    StillAbsent,
    /// The engine could not be asked.
    Failed(String),
}

impl Images {
    async fn resolve(&self, engine: &Engine, spec: &ContainerSpec) -> Resolution {
        let cell = {
            let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (spec.image.clone(), spec.image_id.clone());
            Arc::clone(known.entry(key).or_default())
        };
        cell.get_or_init(|| async {
            decide(engine, &spec.image, &spec.image_id)
                .await
                .unwrap_or_else(|e| Resolution::Failed(format!("{e:#}")))
        })
        .await
        .clone()
    }
}

/// The record's image rule: the reference if it still names the recorded image, else the
/// recorded image id, else a pull that must yield the recorded id. Never anything else: a
/// guessed image is a silently different container.
async fn decide(engine: &Engine, reference: &str, recorded: &str) -> Result<Resolution> {
    let by_reference = engine.image(reference).await?;
    if by_reference.as_ref().is_some_and(|i| i.id == recorded) {
        return Ok(Resolution::Reference);
    }
    if engine.image(recorded).await?.is_some() {
        let moved_to = by_reference.map(|i| i.id);
        return Ok(Resolution::RecordedId { moved_to });
    }
    if let Err(e) = engine.pull(reference).await {
        return Ok(Resolution::Unpullable(format!("{e:#}")));
    }
    Ok(match engine.image(reference).await? {
        Some(pulled) if pulled.id == recorded => Resolution::Reference,
        Some(pulled) => Resolution::PulledOther(pulled.id),
        None => Resolution::StillAbsent,
    })
}

/// The image to create `name` from, with what the operator should know about it.
async fn resolve_image(
    engine: &Engine,
    images: &Images,
    name: &str,
    spec: &ContainerSpec,
) -> Result<(String, Vec<String>)> {
    let short = short_id(&spec.image_id);
    match images.resolve(engine, spec).await {
        Resolution::Reference => Ok((spec.image.clone(), Vec::new())),
        Resolution::RecordedId { moved_to } => {
            let notes = moved_to.map(|moved| {
                format!(
                    "{} now names image {}, not the recorded {short}: created from {short}; \
                     to accept the new image, recreate {name} from it and run `guestlist \
                     snapshot {name}`",
                    spec.image,
                    short_id(&moved)
                )
            });
            Ok((spec.image_id.clone(), notes.into_iter().collect()))
        }
        Resolution::Unpullable(e) => bail!(
            "image {} ({short}) is not present and cannot be pulled ({e}); load it (docker \
             load) or make its registry reachable, then run the pass again",
            spec.image
        ),
        Resolution::PulledOther(pulled) => bail!(
            "image {} ({short}) is not present; pulling {} gave {}, not the recorded image, so \
             nothing was created; load the recorded image, or accept the new one with \
             `guestlist snapshot {name}` after running {name} from it",
            spec.image,
            spec.image,
            short_id(&pulled)
        ),
        Resolution::StillAbsent => bail!("image {} is still absent after pulling it", spec.image),
        Resolution::Failed(e) => bail!("cannot resolve image {}: {e}", spec.image),
    }
}

/// Warn when an anonymous volume that held the container's data no longer exists (pruned): the
/// engine will create an empty one under the same name.
async fn check_anonymous_volumes(engine: &Engine, spec: &ContainerSpec) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for volume in &spec.anonymous_volumes {
        if !engine.volume_exists(&volume.name).await? {
            notes.push(format!(
                "volume {} for {} no longer existed: it starts empty",
                short_id(&volume.name),
                volume.destination
            ));
        }
    }
    Ok(notes)
}
