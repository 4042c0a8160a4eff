//! Replacing a container without ever leaving less running than before, and clearing or
//! finishing what an interrupted replacement left (see `plan::Leftover`, `Action::PutBack`,
//! `Action::Finish`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::sync::SemaphorePermit;

use super::{
    create, never_ran, own_stop_timeout, rename_when_free, resolve_image, stale_task, Execution,
    Replacement,
};
use crate::engine;
use crate::plan::{set_aside_name, Action, Leftover, REPLACEMENT_SUFFIX};
use crate::record::spec::ContainerSpec;

impl Execution<'_> {
    /// The replacement's temporary name is taken. A pass killed between creating a replacement
    /// and renaming it leaves it there, and the engine can finish that create after this pass
    /// observed (so the plan has no removal for it). A container there that ever ran is someone
    /// else's: the conflict stands.
    async fn clear_leftover(&self, temporary: &str, conflict: anyhow::Error) -> Result<String> {
        // The engine takes the name before the container it is creating can be inspected:
        // give that create a moment to finish. Not there after that: gone, the name is free.
        for _ in 0..10 {
            if self.engine.inspect(temporary).await?.is_some() {
                return self
                    .clear_unstarted(temporary, temporary)
                    .await
                    .map_err(|e| conflict.context(format!("{e:#}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(format!("{temporary} was held by a container gone since"))
    }

    /// Remove `target`, under `name`, a replacement an interrupted pass created and never
    /// started. It holds nothing (its writable layer is empty), so it is not counted against
    /// `--max-removals`; it is still kept in the audit log first. One that has run is refused.
    async fn clear_unstarted(&self, name: &str, target: &str) -> Result<String> {
        let engine = self.engine;
        let Some(inspect) = engine.inspect(target).await? else {
            return Ok(format!("{name} was held by a container gone since"));
        };
        let id = inspect["Id"].as_str().unwrap_or(target).to_string();
        if !never_ran(&inspect) {
            bail!(
                "{name} is held by a container that has run, which guestlist never leaves \
                 there: remove or rename it"
            );
        }
        let leftover = Action::Remove {
            name: name.to_string(),
            id: id.clone(),
            image: inspect["Config"]["Image"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            leftover: Some(Leftover::Unstarted),
        };
        self.options
            .audit
            .removing(&leftover, &id, inspect)
            .await
            .with_context(|| format!("the container under {name} was left in place"))?;
        let removed = match engine.remove(&id).await {
            Err(e) if engine::is_not_found(&e) => Ok(()),
            other => other,
        };
        let outcome = removed.map(|()| Vec::new());
        let logged = self.options.audit.result(&leftover, &outcome, false).await;
        outcome.with_context(|| format!("cannot remove the leftover under {name}"))?;
        let mut note = format!(
            "{name} held a replacement an interrupted pass had created and never started; it \
             was removed first (not counted against --max-removals)"
        );
        if let Err(e) = logged {
            note.push_str(&format!(" (its removal is not in the audit log: {e:#})"));
        }
        Ok(note)
    }

    /// Replace without ever leaving less running than before. The replacement is created under
    /// a temporary name first: if the record cannot be created (image gone, invalid option) the
    /// old container is left untouched. Then the old one is kept in the audit log, stopped and
    /// set aside (renamed `NAME-guestlist-old`), the new one takes the name and starts. Only
    /// once it runs is the old one removed. Whatever fails after the old one stopped (the
    /// renames, the start: Docker 20.10 finds a missing network only at start), the new one is
    /// removed and the old one put back as it was. Addresses and ports are taken at start, so
    /// the two never collide. The old container's stop runs while the pass's extras stop; the
    /// new one starts once they are gone.
    pub(super) async fn replace(
        &self,
        action: &Action,
        old_id: &str,
        new: Replacement<'_>,
    ) -> Result<Vec<String>> {
        let engine = self.engine;
        let mut notes = Vec::new();
        let temporary = format!("{}{REPLACEMENT_SUFFIX}", new.name);
        let aside = set_aside_name(new.name);
        // A pass killed mid-replacement left an extra under a name this one needs.
        if self.removed_names.contains(&temporary) || self.removed_names.contains(&aside) {
            self.removals_ended().await;
        }
        let permit = self.permit().await;
        let new_id = match create(engine, &temporary, new.spec, new.image).await {
            Err(conflict) if engine::is_conflict(&conflict) => {
                notes.push(self.clear_leftover(&temporary, conflict).await?);
                create(engine, &temporary, new.spec, new.image).await?
            }
            created => created?,
        };
        let old = match self.stop_old(action, old_id, new.name, permit).await {
            Ok(old) => old,
            Err(e) => return Err(self.put_back(&new_id, None, e).await),
        };
        let old = match old {
            Some(mut old) if !old.renamed => {
                let _permit = self.permit().await;
                match rename_when_free(engine, old_id, &aside).await {
                    Ok(()) => {
                        old.renamed = true;
                        Some(old)
                    }
                    // `--rm`: the engine removed it once it stopped; it cannot be kept.
                    Err(e) if engine::is_not_found(&e) => None,
                    Err(e) => {
                        let e = e.context("cannot set the container being replaced aside");
                        return Err(self.put_back(&new_id, Some(&old), e).await);
                    }
                }
            }
            other => other,
        };
        let permit = self.permit().await;
        if let Err(e) = rename_when_free(engine, &new_id, new.name).await {
            return Err(self.put_back(&new_id, old.as_ref(), e).await);
        }
        drop(permit);
        if new.start {
            self.removals_ended().await;
            let _permit = self.permit().await;
            if let Err(e) = engine.start(&new_id).await {
                let e = e.context("cannot start the replacement");
                return Err(self.put_back(&new_id, old.as_ref(), e).await);
            }
        }
        let Some(old) = old else {
            return Ok(notes);
        };
        let _permit = self.permit().await;
        match engine.remove(&old.id).await {
            Err(e) if !engine::is_not_found(&e) && !engine::is_conflict(&e) => notes.push(format!(
                "the old container stays stopped as {aside}, as its removal failed ({e:#}); \
                 the next pass removes it"
            )),
            _ => {}
        }
        Ok(notes)
    }

    /// Keep the old container in the audit log and stop it. `None`: it is gone (removed
    /// meanwhile). An error leaves it running as it was. `renamed` says whether it is already
    /// set aside (an interrupted pass did that, and it is replaced from there).
    async fn stop_old(
        &self,
        action: &Action,
        old_id: &str,
        name: &str,
        permit: Option<SemaphorePermit<'_>>,
    ) -> Result<Option<SetAside>> {
        let engine = self.engine;
        let Some(inspect) = engine.inspect(old_id).await? else {
            return Ok(None);
        };
        let was_running = inspect["State"]["Running"].as_bool().unwrap_or(false);
        let named = inspect["Name"].as_str().unwrap_or_default();
        let renamed = named.trim_start_matches('/') == set_aside_name(name);
        let own = own_stop_timeout(&inspect);
        self.options
            .audit
            .removing(action, old_id, inspect)
            .await
            .context("the old container was left in place")?;
        drop(permit);
        if was_running {
            match engine.stop(old_id, self.options.stop_timeout, own).await {
                Err(e) if engine::is_not_found(&e) => return Ok(None),
                Err(e) => {
                    // Already stopped is no error; still running is.
                    let running = engine
                        .inspect(old_id)
                        .await?
                        .map(|i| i["State"]["Running"].as_bool().unwrap_or(false));
                    match running {
                        None => return Ok(None),
                        Some(true) => {
                            return Err(e.context("cannot stop the container being replaced"))
                        }
                        Some(false) => {}
                    }
                }
                Ok(()) => {}
            }
        }
        Ok(Some(SetAside {
            id: old_id.to_string(),
            name: name.to_string(),
            was_running,
            renamed,
        }))
    }

    /// A replacement failed at `cause`: remove the new container and give the old one its
    /// name back, running if it ran. The error says what failed and whether the old one is back.
    async fn put_back(
        &self,
        new_id: &str,
        old: Option<&SetAside>,
        cause: anyhow::Error,
    ) -> anyhow::Error {
        let engine = self.engine;
        let _permit = self.permit().await;
        let removed = match engine.remove(new_id).await {
            Err(e) if !engine::is_not_found(&e) => Err(e),
            _ => Ok(()),
        };
        let Some(old) = old else {
            return match removed {
                Ok(()) => cause.context("the old container was left as it was"),
                Err(e) => cause.context(format!(
                    "the old container was left as it was, but the replacement could not be \
                     removed ({e:#})"
                )),
            };
        };
        let back = async {
            removed.context("cannot remove the failed replacement")?;
            if old.renamed {
                rename_when_free(engine, &old.id, &old.name).await?;
            }
            if old.was_running {
                engine.start(&old.id).await?;
            }
            anyhow::Ok(())
        };
        match back.await {
            Ok(()) if old.was_running => {
                cause.context("the old container was put back and runs again")
            }
            Ok(()) => cause.context("the old container was put back"),
            Err(e) => cause.context(format!(
                "putting the old container back failed too ({e:#}); it is {}",
                match old.renamed {
                    true => format!("stopped, named {}", set_aside_name(&old.name)),
                    false => "stopped".to_string(),
                }
            )),
        }
    }

    /// Start `id`, the replacement an interrupted pass gave the name and never started, then
    /// remove the old container it set aside; put that one back if the start fails. It is
    /// put back running when the record says it runs (whether it ran before is not known).
    pub(super) async fn finish(
        &self,
        name: &str,
        id: &str,
        aside: &str,
        start: bool,
        spec: &ContainerSpec,
    ) -> Result<Vec<String>> {
        let engine = self.engine;
        let old = SetAside {
            id: aside.to_string(),
            name: name.to_string(),
            was_running: start,
            renamed: true,
        };
        let mut notes = Vec::new();
        if start {
            self.removals_ended().await;
            let permit = self.permit().await;
            if let Err(error) = engine.start(id).await {
                drop(permit);
                if !stale_task(&error) {
                    let e = error.context("cannot start the replacement");
                    return Err(self.put_back(id, Some(&old), e).await);
                }
                // The crash that interrupted the pass left containerd a task for it (see
                // `start_failed`); it never ran, so a new one from the record takes its place.
                let fresh = async {
                    match engine.remove(id).await {
                        Err(e) if !engine::is_not_found(&e) => return Err((None, e)),
                        _ => {}
                    }
                    let (image, _) = resolve_image(engine, &self.images, name, spec)
                        .await
                        .map_err(|e| (None, e))?;
                    let new_id = create(engine, name, spec, &image)
                        .await
                        .map_err(|e| (None, e))?;
                    match engine.start(&new_id).await {
                        Ok(()) => Ok(()),
                        Err(e) => Err((Some(new_id), e.context("cannot start the replacement"))),
                    }
                };
                if let Err((new_id, e)) = fresh.await {
                    let failed = new_id.as_deref().unwrap_or(id);
                    return Err(self.put_back(failed, Some(&old), e).await);
                }
                notes.push(format!(
                    "its start failed ({error:#}); it had never run, so it was created again \
                     from the record"
                ));
            }
        }
        let _permit = self.permit().await;
        match engine.remove(aside).await {
            Err(e) if !engine::is_not_found(&e) && !engine::is_conflict(&e) => notes.push(format!(
                "the old container stays stopped as {}, as its removal failed ({e:#}); the \
                     next pass removes it",
                set_aside_name(name)
            )),
            _ => {}
        }
        Ok(notes)
    }

    /// Give a container an interrupted replacement set aside its name back, clearing first
    /// `clear`, the replacement under the name that never ran; start it if the record says so.
    pub(super) async fn put_back_set_aside(
        &self,
        name: &str,
        id: &str,
        clear: Option<&str>,
        start: bool,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if let Some(unstarted) = clear {
            notes.push(self.clear_unstarted(name, unstarted).await?);
        }
        self.removals_ended().await;
        let _permit = self.permit().await;
        rename_when_free(self.engine, id, name).await?;
        if start {
            self.engine.start(id).await?;
        }
        Ok(notes)
    }
}

/// The old container of a replacement while its replacement is not running yet.
struct SetAside {
    id: String,
    /// The name it is put back under.
    name: String,
    was_running: bool,
    /// Whether it was renamed aside (else it still holds its name).
    renamed: bool,
}
