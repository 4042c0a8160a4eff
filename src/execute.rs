//! Act: run a plan against the engine, wave by wave, with a bounded number of actions at once.
//! Thin by design: the decisions were made by the planner. One failed action never stops the
//! others; each action ends with its own result.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{stream, StreamExt};

use crate::audit::Audit;
use crate::engine::{self, Engine};
use crate::plan::{Action, Plan};
use crate::spec::{self, ContainerSpec};

/// Actions in flight at once within a wave. Creating and starting containers is work for the
/// engine (and the kernel); four keeps a 2-core host responsive while hiding request latency.
pub const ACTIONS_IN_FLIGHT: usize = 4;

/// Suffix of the name a replacement is created under before the old container is removed.
/// A pass killed midway leaves at most this container behind, which the next pass removes as
/// an extra while it recreates the real name.
pub const REPLACEMENT_SUFFIX: &str = "-guestlist-new";

pub struct Options {
    /// Grace period for stopping extra and replaced containers before SIGKILL.
    pub stop_timeout: Duration,
    /// Where each container is kept before it is removed, and each result recorded.
    pub audit: Audit,
}

/// What happened to one action.
#[derive(Debug)]
pub struct ActionResult {
    pub action: Action,
    /// `Ok(notes)`: done, with things the operator should know; `Err(cause)`: failed.
    pub outcome: Result<Vec<String>, String>,
    /// The engine's answer shows that the action was planned from a view that changed since
    /// (the container vanished, its name is still held by a container being removed): plan it
    /// again rather than report it.
    pub outdated: bool,
}

/// Run every action of `plan`; a wave starts when the previous one has finished.
pub async fn run(engine: &Engine, plan: &Plan, options: &Options) -> Vec<ActionResult> {
    let mut results = Vec::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for wave in &plan.waves {
        let done: Vec<ActionResult> = stream::iter(wave.iter().cloned())
            .map(|action| perform(engine, action, options, &failed))
            .buffer_unordered(ACTIONS_IN_FLIGHT)
            .collect()
            .await;
        failed.extend(
            done.iter()
                .filter(|r| r.outcome.is_err())
                .map(|r| r.action.name().to_string()),
        );
        results.extend(done);
    }
    results
}

async fn perform(
    engine: &Engine,
    action: Action,
    options: &Options,
    failed: &BTreeSet<String>,
) -> ActionResult {
    let blocked = match &action {
        Action::Create { spec, .. } | Action::Replace { spec, .. } => spec::dependencies(spec)
            .into_iter()
            .find(|(dep, _)| failed.contains(dep)),
        _ => None,
    };
    let outcome = match blocked {
        Some((dep, _)) => Err(anyhow!("not attempted: {dep}, which it needs, failed")),
        None => act(engine, &action, options).await,
    };
    let outdated = match (&action, &outcome) {
        (Action::Start { .. }, Err(e)) => engine::is_not_found(e) || engine::is_conflict(e),
        (Action::Create { .. }, Err(e)) => engine::is_conflict(e),
        _ => false,
    };
    let mut outcome = outcome.map_err(|e| format!("{e:#}"));
    if let Err(e) = options.audit.result(&action, &outcome, outdated) {
        let unlogged = format!("this result is not in the audit log: {e:#}");
        match &mut outcome {
            Ok(notes) => notes.push(unlogged),
            Err(cause) => *cause = format!("{cause} ({unlogged})"),
        }
    }
    ActionResult {
        outcome,
        action,
        outdated,
    }
}

async fn act(engine: &Engine, action: &Action, options: &Options) -> Result<Vec<String>> {
    match action {
        Action::Remove { id, .. } => {
            let Some(inspect) = engine.inspect_exact(id).await? else {
                return Ok(vec!["it was already gone".into()]);
            };
            options
                .audit
                .removing(action, id, inspect)
                .context("nothing was removed")?;
            remove(engine, id, options.stop_timeout).await
        }
        Action::Start { id, .. } => engine.start(id).await.map(|()| Vec::new()),
        Action::Create { name, spec, start } => {
            let (image, mut notes) = resolve_image(engine, name, spec).await?;
            notes.extend(check_anonymous_volumes(engine, spec).await?);
            let id = create(engine, name, spec, &image).await?;
            if *start {
                engine.start(&id).await?;
            }
            Ok(notes)
        }
        Action::Replace {
            name,
            id,
            spec,
            start,
            ..
        } => {
            let (image, notes) = resolve_image(engine, name, spec).await?;
            let new = Replacement {
                name,
                spec,
                image: &image,
                start: *start,
            };
            replace(engine, action, id, new, options).await?;
            Ok(notes)
        }
    }
}

/// Stop (with the grace period) and remove; a container that is already gone is not a failure.
async fn remove(engine: &Engine, id: &str, grace: Duration) -> Result<Vec<String>> {
    match engine.stop(id, grace).await {
        Err(e) if engine::is_not_found(&e) => return Ok(vec!["it was already gone".into()]),
        // A stop that fails (already stopped is not an error) must not keep the removal from
        // happening: remove forces it.
        _ => {}
    }
    match engine.remove(id).await {
        Err(e) if engine::is_not_found(&e) || engine::is_conflict(&e) => {
            Ok(vec!["it was already being removed".into()])
        }
        other => other.map(|()| Vec::new()),
    }
}

/// What a replacement is created as.
struct Replacement<'a> {
    name: &'a str,
    spec: &'a ContainerSpec,
    image: &'a str,
    start: bool,
}

/// Create the replacement under a temporary name first: if the record cannot be created (image
/// gone, invalid option) the old container is left untouched. Only then keep the old one in the
/// audit log, stop and remove it, and give the new one the name. Addresses and ports are taken
/// at start, so the two never collide.
async fn replace(
    engine: &Engine,
    action: &Action,
    old_id: &str,
    new: Replacement<'_>,
    options: &Options,
) -> Result<()> {
    let temporary = format!("{}{REPLACEMENT_SUFFIX}", new.name);
    let new_id = create(engine, &temporary, new.spec, new.image).await?;
    let removed = async {
        if let Some(inspect) = engine.inspect_exact(old_id).await? {
            options
                .audit
                .removing(action, old_id, inspect)
                .context("the old container was left in place")?;
        }
        remove(engine, old_id, options.stop_timeout)
            .await
            .context("cannot remove the container being replaced")
    };
    if let Err(e) = removed.await {
        engine.remove(&new_id).await.ok();
        return Err(e);
    }
    rename_when_free(engine, &new_id, new.name).await?;
    if new.start {
        engine.start(&new_id).await?;
    }
    Ok(())
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

/// Decide which image to create from, following the record: the reference if it still names
/// the recorded image, else the recorded image id, else a pull that must yield the recorded id.
/// Never anything else: a guessed image is a silently different container.
async fn resolve_image(
    engine: &Engine,
    name: &str,
    spec: &ContainerSpec,
) -> Result<(String, Vec<String>)> {
    let short = short_id(&spec.image_id);
    let by_reference = engine.image(&spec.image).await?;
    if by_reference.as_ref().is_some_and(|i| i.id == spec.image_id) {
        return Ok((spec.image.clone(), Vec::new()));
    }
    if engine.image(&spec.image_id).await?.is_some() {
        let notes = match by_reference {
            Some(moved) => vec![format!(
                "{} now names image {}, not the recorded {short}: created from {short}; \
                 to accept the new image, recreate {name} from it and run `guestlist snapshot {name}`",
                spec.image,
                short_id(&moved.id)
            )],
            None => Vec::new(),
        };
        return Ok((spec.image_id.clone(), notes));
    }
    if let Err(e) = engine.pull(&spec.image).await {
        bail!(
            "image {} ({short}) is not present and cannot be pulled ({e:#}); load it (docker \
             load) or make its registry reachable, then run the pass again",
            spec.image
        );
    }
    match engine.image(&spec.image).await? {
        Some(pulled) if pulled.id == spec.image_id => Ok((spec.image.clone(), Vec::new())),
        Some(pulled) => bail!(
            "image {} ({short}) is not present; pulling {} gave {}, not the recorded image, so \
             nothing was created; load the recorded image, or accept the new one with \
             `guestlist snapshot {name}` after running {name} from it",
            spec.image,
            spec.image,
            short_id(&pulled.id)
        ),
        None => bail!("image {} is still absent after pulling it", spec.image),
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

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}
