//! What a request reaches, through the engine: the container its path or body names (and, for
//! an authorization plugin, every other one the same reference could name by the time the
//! engine acts), the users of an image, volume or network it removes, a pod's containers, and
//! on Podman what it does along with a container (a pod's infra, a start's dependencies).

use anyhow::{Context, Result};
use serde_json::Value;

use super::request::{self, Request};
use super::route::{self, Resource};
use super::Guard;
use crate::engine::{Engine, Listed};
use crate::plan::{LastRun, Observed, Status};
use crate::record::spec::EngineKind;
use crate::record::state::State;

/// What a request reaches, through the engine.
#[derive(Default)]
pub(super) struct Reached {
    pub(super) affected: Vec<Observed>,
    /// The id (or full name) the reference the request names resolved to.
    pub(super) resolved: Option<String>,
    /// The container the request names, which does not exist.
    pub(super) missing: Option<String>,
}

impl Guard {
    /// The containers `request` reaches, as the engine resolves them, and what the proxy is
    /// to send in place of the reference it names. A create gets its image's labels added, as
    /// the engine adds them.
    pub(super) async fn reach(
        &self,
        engine: &Engine,
        state: &State,
        request: &mut Request,
    ) -> Result<Reached> {
        let mut reached = Reached::default();
        match request {
            Request::Change { container, .. } | Request::Run { container, .. } => {
                let reference = container.clone();
                let Some(json) = engine
                    .inspect(&reference)
                    .await
                    .with_context(|| format!("cannot inspect container {reference}"))?
                else {
                    reached.missing = Some(reference);
                    return Ok(reached);
                };
                let target = target_of(&json);
                reached.resolved = Some(target.id.clone());
                // A plugin cannot send the resolved id on: the engine resolves the reference
                // again, and an id prefix can name another container by then (a decoy named
                // like a prefix of a listed container's id, removed meanwhile). Each container
                // the reference could name is judged.
                let mut others = Vec::new();
                if self.options.plugin.is_some() && could_be_id_prefix(&reference) {
                    let listed = engine.list(&state.scope).await?;
                    others.extend(
                        listed
                            .into_iter()
                            .filter(|c| c.id.starts_with(&reference) && c.id != target.id)
                            .map(listed_as_observed),
                    );
                }
                if engine.defaults.kind == EngineKind::Podman {
                    others.extend(
                        self.podman_reach(engine, state, request, &target.id)
                            .await?,
                    );
                }
                reached.affected.push(target);
                reached.affected.extend(others);
            }
            Request::RemoveWithUsers { resource, name, .. } => {
                // Judged by the name it resolves to, sent on by its full name or id.
                let (filter, canonical) = match resource {
                    Resource::Volume => {
                        let found = engine.volume_name(name).await?;
                        ("volume", found.map(|n| (n.clone(), n)))
                    }
                    Resource::Network => ("network", engine.network(name).await?),
                    Resource::Image => {
                        let users = self
                            .image_users(engine, state, std::slice::from_ref(name))
                            .await?;
                        reached.affected = users.into_iter().map(listed_as_observed).collect();
                        return Ok(reached);
                    }
                };
                if let Some((id, full_name)) = canonical {
                    let users = engine.list_where(&state.scope, Some((filter, &id))).await?;
                    reached.affected = users.into_iter().map(listed_as_observed).collect();
                    reached.resolved = Some(id);
                    *name = full_name;
                }
            }
            Request::PodCreate {
                infra: Some(create),
            } if !create.image.is_empty() => {
                // The infra container gets its image's labels too.
                if let Some(image) = engine.image(&create.image).await.ok().flatten() {
                    for (key, value) in request::string_map(&image.config["Labels"]) {
                        create.labels.entry(key).or_insert(value);
                    }
                }
            }
            Request::Create(Some(create)) => {
                // The engine gives a container its image's labels too.
                if let Some(image) = engine.image(&create.image).await.ok().flatten() {
                    for (key, value) in request::string_map(&image.config["Labels"]) {
                        create.labels.entry(key).or_insert(value);
                    }
                }
                if let Some(shared) = &create.shares_processes_of {
                    if let Some(json) = engine.inspect(shared).await? {
                        reached.affected.push(target_of(&json));
                    }
                }
            }
            _ => {
                let users = self.users(engine, state, request).await?;
                reached.affected = users;
            }
        }
        Ok(reached)
    }

    /// What Podman does to other containers along with `id`: removing a pod's infra container
    /// removes the pod; starting a container starts what it depends on first.
    async fn podman_reach(
        &self,
        engine: &Engine,
        state: &State,
        request: &Request,
        id: &str,
    ) -> Result<Vec<Observed>> {
        let mut reached = Vec::new();
        match request {
            Request::Change {
                operation: route::Operation::Remove,
                ..
            } => {
                let inspect = engine.podman_inspect(id).await?.unwrap_or_default();
                let pod = inspect["Pod"].as_str().filter(|p| !p.is_empty());
                if let (Some(true), Some(pod)) = (inspect["IsInfra"].as_bool(), pod) {
                    let pod = Request::Pod {
                        operation: route::PodOperation::Change(route::Operation::Remove),
                        pod: pod.to_string(),
                    };
                    reached.extend(self.users(engine, state, &pod).await?);
                }
            }
            Request::Run { .. } => {
                let mut seen = std::collections::BTreeSet::from([id.to_string()]);
                let mut next = vec![id.to_string()];
                while let Some(one) = next.pop() {
                    let inspect = engine.podman_inspect(&one).await?.unwrap_or_default();
                    let needs = inspect["Dependencies"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for dependency in needs.iter().filter_map(|d| d.as_str()) {
                        if !seen.insert(dependency.to_string()) {
                            continue;
                        }
                        if let Some(json) = engine.inspect(dependency).await? {
                            let found = target_of(&json);
                            next.push(found.id.clone());
                            reached.push(found);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(reached)
    }

    /// The containers a request reaches without naming them: the users of an image, volume or
    /// network it removes (Podman removes them with it), a pod's containers.
    pub(super) async fn users(
        &self,
        engine: &Engine,
        state: &State,
        request: &Request,
    ) -> Result<Vec<Observed>> {
        let scope = &state.scope;
        let listed = match request {
            Request::RemoveImages { all: true, .. } => engine.list(scope).await?,
            Request::RemoveImages { images, .. } => self.image_users(engine, state, images).await?,
            Request::Pod { pod, .. } => {
                let members = engine.pod_members(pod).await?.unwrap_or_default();
                engine
                    .list(scope)
                    .await?
                    .into_iter()
                    .filter(|c| members.contains(&c.id))
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(listed.into_iter().map(listed_as_observed).collect())
    }

    /// The containers in scope created from any of `images`.
    async fn image_users(
        &self,
        engine: &Engine,
        state: &State,
        images: &[String],
    ) -> Result<Vec<Listed>> {
        let bare = |id: &str| id.trim_start_matches("sha256:").to_string();
        let mut ids = Vec::new();
        for image in images {
            if let Some(found) = engine.image(image).await? {
                ids.push(bare(&found.id));
            }
        }
        Ok(engine
            .list(&state.scope)
            .await?
            .into_iter()
            .filter(|c| ids.contains(&bare(&c.image_id)))
            .collect())
    }
}

/// Whether dockerd could read `reference` as an id prefix: lower-case hex, shorter than an id.
fn could_be_id_prefix(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() < 64
        && reference
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The container an inspect describes, enough for the policy to place it.
pub(super) fn target_of(json: &Value) -> Observed {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let labels = request::string_map(&json["Config"]["Labels"]);
    let status = Status::from_word(json["State"]["Status"].as_str().unwrap_or_default());
    Observed {
        id: text(&json["Id"]),
        name: text(&json["Name"]).trim_start_matches('/').to_string(),
        image: text(&json["Config"]["Image"]),
        running: status.is_running(),
        status,
        // Placed by `Guard::consult`, once it knows whose claims are believed.
        managed: None,
        labels,
        spec: None,
        last_run: LastRun::default(),
        runs_guestlist: false,
        origin: None,
    }
}

/// A listed container, as far as the list shows it.
fn listed_as_observed(c: Listed) -> Observed {
    Observed {
        running: c.status.is_running(),
        managed: None,
        id: c.id,
        name: c.name,
        image: c.image,
        status: c.status,
        labels: c.labels,
        spec: None,
        last_run: LastRun::default(),
        runs_guestlist: false,
        origin: None,
    }
}
