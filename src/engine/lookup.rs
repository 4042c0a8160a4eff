//! Reads the guard needs to tell what a request reaches: a Podman pod's containers, Podman's
//! own view of a container, a volume or network as its removal resolves it, and whether the
//! engine is in a swarm now. Over our own plain connection, as the engine wrote them.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::raw::{self, Answer};
use super::{Engine, REFERENCE};
use crate::record::spec::EngineKind;

impl Engine {
    /// The ids of the containers of a Podman pod; `None` if there is no such pod.
    pub async fn pod_members(&self, pod: &str) -> Result<Option<Vec<String>>> {
        let context = || format!("cannot inspect pod {pod}");
        let escaped = percent_encoding::utf8_percent_encode(pod, REFERENCE);
        let path = format!("/v4.0.0/libpod/pods/{escaped}/json");
        match raw::get_json(self.endpoint(), &path)
            .await
            .with_context(context)?
        {
            Answer::Found(json) => Ok(Some(
                json["Containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["Id"].as_str().map(String::from))
                    .collect(),
            )),
            Answer::Absent => Ok(None),
            Answer::Unspoken => bail!("{}: only over unix:// and tcp://", context()),
        }
    }

    /// Whether this engine is part of a swarm now (asked again each time: a swarm can be
    /// joined or left while guestlist runs). Podman has none.
    pub async fn swarm_active(&self) -> Result<bool> {
        let context = || format!("cannot ask {} whether it is in a swarm", self.endpoint());
        let info = match raw::get_json(self.endpoint(), "/info")
            .await
            .with_context(context)?
        {
            Answer::Found(json) => json,
            Answer::Absent => return Ok(false),
            Answer::Unspoken => {
                serde_json::to_value(self.docker.info().await.with_context(context)?)?
            }
        };
        let state = info["Swarm"]["LocalNodeState"].as_str().unwrap_or_default();
        // "pending" (joining), "active", "locked" and "error" all have tasks of their own.
        Ok(!matches!(state, "" | "inactive"))
    }

    /// Podman's own inspect of a container (`Dependencies`, `Pod`, `IsInfra`), which its
    /// compatible one leaves out; `None` if there is no such container.
    pub async fn podman_inspect(&self, id: &str) -> Result<Option<Value>> {
        let escaped = percent_encoding::utf8_percent_encode(id, REFERENCE);
        let path = format!("/v4.0.0/libpod/containers/{escaped}/json");
        match raw::get_json(self.endpoint(), &path)
            .await
            .with_context(|| format!("cannot inspect container {id}"))?
        {
            Answer::Found(json) => Ok(Some(json)),
            Answer::Absent => Ok(None),
            Answer::Unspoken => {
                bail!("cannot inspect container {id}: only over unix:// and tcp://")
            }
        }
    }

    /// The full name of the volume `reference` names (Podman also takes a unique prefix of
    /// one); `None` if it names none.
    pub async fn volume_name(&self, reference: &str) -> Result<Option<String>> {
        let escaped = percent_encoding::utf8_percent_encode(reference, REFERENCE);
        let path = format!("/volumes/{escaped}");
        if self.defaults.kind == EngineKind::Docker {
            return self.field_of(&path, "Name", "volume", reference).await;
        }
        // Podman's removal takes the volume of that name, else the one whose name it begins
        // (its inspect does not): looked up here as the removal looks it up.
        let context = || format!("cannot list volumes at {}", self.endpoint());
        let listed = match raw::get_json(self.endpoint(), "/volumes")
            .await
            .with_context(context)?
        {
            Answer::Found(json) => json,
            _ => bail!("{}: no list", context()),
        };
        let names: Vec<&str> = listed["Volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["Name"].as_str())
            .collect();
        if names.contains(&reference) {
            return Ok(Some(reference.to_string()));
        }
        let mut prefixed = names.into_iter().filter(|n| n.starts_with(reference));
        Ok(match (prefixed.next(), prefixed.next()) {
            (Some(one), None) => Some(one.to_string()),
            _ => None,
        })
    }

    /// The id and name of the network `reference` names (by name, id or id prefix); `None` if
    /// none.
    pub async fn network(&self, reference: &str) -> Result<Option<(String, String)>> {
        let escaped = percent_encoding::utf8_percent_encode(reference, REFERENCE);
        let (path, id, name) = match self.defaults.kind {
            EngineKind::Docker => (format!("/networks/{escaped}"), "Id", "Name"),
            EngineKind::Podman => (
                format!("/v4.0.0/libpod/networks/{escaped}/json"),
                "id",
                "name",
            ),
        };
        let context = || format!("cannot inspect network {reference}");
        match raw::get_json(self.endpoint(), &path)
            .await
            .with_context(context)?
        {
            Answer::Found(json) => Ok(json[id]
                .as_str()
                .zip(json[name].as_str())
                .map(|(i, n)| (i.to_string(), n.to_string()))),
            Answer::Absent => Ok(None),
            Answer::Unspoken => bail!("{}: only over unix:// and tcp://", context()),
        }
    }

    async fn field_of(
        &self,
        path: &str,
        field: &str,
        what: &str,
        reference: &str,
    ) -> Result<Option<String>> {
        let context = || format!("cannot inspect {what} {reference}");
        match raw::get_json(self.endpoint(), path)
            .await
            .with_context(context)?
        {
            Answer::Found(json) => Ok(json[field].as_str().map(String::from)),
            Answer::Absent => Ok(None),
            Answer::Unspoken => bail!("{}: only over unix:// and tcp://", context()),
        }
    }

    /// Remove a container the guard refused to let be created, with whatever was created to
    /// depend on it meanwhile (Podman refuses to remove a container others depend on, and a
    /// client could make some to keep it). dockerd has no such dependents: a forced removal.
    pub async fn remove_refused(&self, id: &str) -> Result<()> {
        if self.defaults.kind == EngineKind::Docker {
            return self.remove(id).await;
        }
        let escaped = percent_encoding::utf8_percent_encode(id, REFERENCE);
        let path = format!("/v4.0.0/libpod/containers/{escaped}?force=true&depend=true");
        match raw::delete(self.endpoint(), &path).await? {
            Some((200..=299 | 404, _)) => Ok(()),
            Some((status, body)) => bail!(
                "cannot remove: the engine answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
            None => self.remove(id).await,
        }
    }

    /// The infra container of the Podman pod `pod`; `None` if there is no such pod or it has
    /// none.
    pub async fn pod_infra(&self, pod: &str) -> Result<Option<String>> {
        let escaped = percent_encoding::utf8_percent_encode(pod, REFERENCE);
        let path = format!("/v4.0.0/libpod/pods/{escaped}/json");
        self.field_of(&path, "InfraContainerID", "pod", pod)
            .await
            .map(|found| found.filter(|id| !id.is_empty()))
    }

    /// Remove the Podman pod `pod` and its containers.
    pub async fn remove_pod(&self, pod: &str) -> Result<()> {
        let escaped = percent_encoding::utf8_percent_encode(pod, REFERENCE);
        let path = format!("/v4.0.0/libpod/pods/{escaped}?force=true");
        match raw::delete(self.endpoint(), &path).await? {
            Some((200..=299 | 404, _)) => Ok(()),
            Some((status, body)) => bail!(
                "cannot remove pod {pod}: the engine answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
            None => bail!("cannot remove pod {pod}: only over unix:// and tcp://"),
        }
    }
}
