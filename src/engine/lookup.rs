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

    /// The id of the network `reference` names (by name, id or id prefix); `None` if none.
    pub async fn network_id(&self, reference: &str) -> Result<Option<String>> {
        let escaped = percent_encoding::utf8_percent_encode(reference, REFERENCE);
        let (path, field) = match self.defaults.kind {
            EngineKind::Docker => (format!("/networks/{escaped}"), "Id"),
            EngineKind::Podman => (format!("/v4.0.0/libpod/networks/{escaped}/json"), "id"),
        };
        self.field_of(&path, field, "network", reference).await
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
}
