//! The only module that talks to the Docker Engine (through bollard). Every error names the
//! endpoint or the container it concerns; a failed read is an error, never an empty answer.
//!
//! bollard 0.21 sends no API version, so the engine answers at its own maximum version: request
//! shapes that depend on the version (one network per create below 1.44) follow the server's
//! `ApiVersion`, kept in `Engine::info`.

mod failure;
mod lookup;
mod raw;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, EndpointSettings, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptions,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use raw::Answer;

use crate::plan::Status;
use crate::record::rules::Scope;
use crate::record::spec::{EngineDefaults, EngineKind};
use crate::record::state::EngineInfo;

/// How long a request may take up to its answer's headers. A stop takes its grace period more
/// (see `Engine::stop`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The grace period the engine gives a container that set none (`docker stop` without `-t`):
/// Docker's and Podman's default.
pub const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the engine listens when neither `--host` nor `DOCKER_HOST` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// The endpoint to use when neither `--host` nor `DOCKER_HOST` names one: Docker's socket if it
/// exists, else Podman's (the user's own, then the system's), else Docker's, which the error
/// then names. `exists` says whether a path exists.
pub fn default_endpoint(xdg_runtime_dir: Option<&str>, exists: impl Fn(&str) -> bool) -> String {
    let docker = DEFAULT_ENDPOINT.trim_start_matches("unix://");
    let user_podman = xdg_runtime_dir.map(|dir| format!("{dir}/podman/podman.sock"));
    let candidates = [
        Some(docker.to_string()),
        user_podman,
        Some("/run/podman/podman.sock".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| exists(path))
        .map_or_else(
            || DEFAULT_ENDPOINT.to_string(),
            |path| format!("unix://{path}"),
        )
}

/// A connected, answering engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    pub info: EngineInfo,
    pub defaults: EngineDefaults,
    /// The engine's own clock when we connected: event subscriptions start from it, so no
    /// event falls between connecting and subscribing, whatever our clock says.
    pub connected_at: Option<SystemTime>,
}

/// Something happened to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The engine's word for it: create, start, die, destroy, rename, ...
    pub action: String,
    pub name: String,
}

/// Container events that can change what a pass would do. Everything else (exec, attach,
/// health status, ...) is noise that would only cost passes. Podman says `remove` where Docker
/// says `destroy`.
const RELEVANT_EVENTS: [&str; 10] = [
    "create", "start", "die", "stop", "destroy", "remove", "rename", "update", "pause", "unpause",
];

/// The words to filter events by. Podman (4.3) reports a death as `die` but filters on its own
/// word, `died`: filtering on `die` alone, a watch would never hear of a container that
/// stopped and would leave it stopped until the next resync.
fn event_filter(kind: EngineKind) -> Vec<String> {
    let mut words: Vec<String> = RELEVANT_EVENTS.map(String::from).to_vec();
    if kind == EngineKind::Podman {
        words.push("died".into());
    }
    words
}

/// A container as the list call shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The id of the image it was created from.
    pub image_id: String,
    pub status: Status,
    pub labels: HashMap<String, String>,
}

/// A container as the list call sends it; everything else it sends is left unread.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(rename = "ImageID", default)]
    image_id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
}

impl From<Summary> for Listed {
    fn from(c: Summary) -> Listed {
        Listed {
            // A container's own name is the one entry without a second slash; the others are
            // legacy link aliases (`/app/db`).
            name: c
                .names
                .iter()
                .find(|n| n.matches('/').count() == 1)
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            id: c.id,
            image: c.image,
            image_id: c.image_id,
            status: Status::from_word(&c.state),
            labels: c.labels.unwrap_or_default(),
        }
    }
}

/// Keep of a captured `Config` and `HostConfig` what a create request can carry. The engine
/// reports fields that bollard's create model has no place for (Docker 20.10's
/// `Config.MacAddress`, `HostConfig.KernelMemory`): recorded but never sent, such a field would
/// make every later pass find the container changed and replace it again. Fields the model
/// cannot read at all are left for the create to refuse, with its reason.
pub fn keep_sendable(config: &mut Map<String, Value>, host: &mut Map<String, Value>) {
    keep_known::<bollard::models::ContainerConfig>(config);
    keep_known::<bollard::models::HostConfig>(host);
}

fn keep_known<T: serde::de::DeserializeOwned + serde::Serialize>(fields: &mut Map<String, Value>) {
    let Ok(typed) = serde_json::from_value::<T>(Value::Object(fields.clone())) else {
        return;
    };
    if let Ok(Value::Object(known)) = serde_json::to_value(typed) {
        fields.retain(|key, _| known.contains_key(key));
    }
}

/// An image's id and its `Config` as JSON.
pub struct Image {
    pub id: String,
    pub config: Value,
}

/// Connect to `endpoint` and check that an engine answers there. `timeout` bounds each request
/// up to its response headers; it must exceed the longest stop grace period.
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Engine> {
    let unreachable = |e: BollardError| failure::connecting(endpoint, &e);
    let docker = Docker::connect_with_host(endpoint)
        .map_err(unreachable)?
        .with_timeout(timeout);
    // The engine gathers its components' versions for both answers (about 10 ms each on Docker
    // 20.10 here, measured): asked at once they cost one wait, which is most of a small pass.
    let (version, system) = tokio::join!(docker.version(), docker.info());
    let (version, system) = (version.map_err(unreachable)?, system.map_err(unreachable)?);
    let cgroup_v2 = system
        .cgroup_version
        .as_ref()
        .is_some_and(|v| serde_json::to_value(v).ok() == Some(Value::from("2")));
    // Podman names itself among the components ("Podman Engine"); Docker says "Engine".
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.contains("Podman"));
    let kind = if podman {
        EngineKind::Podman
    } else {
        EngineKind::Docker
    };
    Ok(Engine {
        docker,
        info: EngineInfo {
            endpoint: endpoint.to_string(),
            id: system.id.unwrap_or_default(),
            kind: Some(kind),
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.clone().unwrap_or_default(),
            hostname: system.name.unwrap_or_default(),
        },
        defaults: EngineDefaults {
            kind,
            runtime: system.default_runtime.unwrap_or_else(|| "runc".into()),
            log_driver: system.logging_driver.unwrap_or_else(|| "json-file".into()),
            cgroupns_mode: if cgroup_v2 { "private" } else { "host" }.into(),
            endpoint_mac: at_least(version.api_version.as_deref(), (1, 44)),
        },
        connected_at: system
            .system_time
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok()),
    })
}

/// Whether the API version `version` ("1.45") is `minimum` or later; an unreadable one is not.
fn at_least(version: Option<&str>, minimum: (u32, u32)) -> bool {
    let parsed = version.and_then(|v| {
        let (major, minor) = v.split_once('.')?;
        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
    });
    parsed.is_some_and(|v| v >= minimum)
}

/// Whether `err` (anywhere in its chain) is the engine saying "no such container/image/volume".
pub fn is_not_found(err: &anyhow::Error) -> bool {
    status(err) == Some(404)
}

/// Whether `err` is the engine refusing because of a conflict (a name in use, a removal already
/// in progress). Podman 4.3 answers a name in use with 500 and says so.
pub fn is_conflict(err: &anyhow::Error) -> bool {
    status(err) == Some(409)
        || err
            .chain()
            .any(|cause| match cause.downcast_ref::<BollardError>() {
                Some(BollardError::DockerResponseServerError { message, .. }) => {
                    message.contains("that name is already in use")
                }
                _ => false,
            })
}

pub fn status(err: &anyhow::Error) -> Option<u16> {
    err.chain()
        .find_map(|cause| match cause.downcast_ref::<BollardError>() {
            Some(BollardError::DockerResponseServerError { status_code, .. }) => Some(*status_code),
            _ => None,
        })
}

/// What is escaped in a container reference put into a path: all but the unreserved.
const REFERENCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The engine-side filter for `scope`: every label selector must match.
fn scope_filter(scope: &Scope) -> HashMap<&'static str, Vec<String>> {
    let labels: Vec<String> = scope.selectors().map(|s| s.filter_value()).collect();
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert("label", labels);
    }
    filters
}

/// The engine's 404 as `None`: "does not exist" is an answer, not a failed read.
fn absent_as_none<T>(result: Result<T, BollardError>) -> Result<Option<T>, BollardError> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Engine {
    fn endpoint(&self) -> &str {
        &self.info.endpoint
    }

    /// Whether the engine still answers: tells a failed pass from a lost engine.
    pub async fn answers(&self) -> bool {
        self.docker.ping().await.is_ok()
    }

    /// Every container in `scope` (label filters applied by the engine), running or not.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<Listed>> {
        self.list_where(scope, None).await
    }

    /// Every container in `scope` that also passes the engine's list filter `also` (`volume`,
    /// `network`: the containers that use one), running or not.
    pub async fn list_where(
        &self,
        scope: &Scope,
        also: Option<(&'static str, &str)>,
    ) -> Result<Vec<Listed>> {
        let context = || format!("cannot list containers at {}", self.endpoint());
        let mut filters = scope_filter(scope);
        if let Some((key, value)) = also {
            filters.entry(key).or_default().push(value.to_string());
        }
        let filters = serde_json::to_string(&filters)?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("all", "true")
            .append_pair("filters", &filters)
            .finish();
        let path = format!("/containers/json?{query}");
        let listed: Vec<Summary> = match raw::get_json(self.endpoint(), &path)
            .await
            .with_context(context)?
        {
            Answer::Found(json) => serde_json::from_value(json).with_context(context)?,
            Answer::Absent => bail!("{}: the engine answered 404", context()),
            Answer::Unspoken if also.is_none() => {
                return self.list_typed(scope).await.with_context(context)
            }
            Answer::Unspoken => bail!("{}: only over unix:// and tcp://", context()),
        };
        Ok(listed.into_iter().map(Listed::from).collect())
    }

    /// The list through bollard's typed model, for endpoints `get_json` cannot speak to.
    async fn list_typed(&self, scope: &Scope) -> Result<Vec<Listed>> {
        let filters = scope_filter(scope);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self.docker.list_containers(Some(options)).await?;
        Ok(listed
            .into_iter()
            .map(|c| {
                Listed::from(Summary {
                    id: c.id.unwrap_or_default(),
                    names: c.names.unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    image_id: c.image_id.unwrap_or_default(),
                    state: c
                        .state
                        .and_then(|s| serde_json::to_value(s).ok())
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    labels: c.labels,
                })
            })
            .collect())
    }

    /// The container events in `scope` from `since` on (engine clock; the engine replays what
    /// it still holds of the past, then streams). The stream ends or errs when the connection
    /// is lost, which may mean the engine restarted.
    pub fn events(
        &self,
        scope: &Scope,
        since: Option<SystemTime>,
    ) -> impl Stream<Item = Result<Event>> + Send + 'static {
        let mut filters = scope_filter(scope);
        // Without the type filter another engine's event types (Podman's pod, system) would
        // fail to decode and end the stream.
        filters.insert("type", vec!["container".into()]);
        filters.insert("event", event_filter(self.defaults.kind));
        let mut options = EventsOptionsBuilder::default().filters(&filters);
        if let Some(since) = since.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            // The engine takes only Unix seconds with a fraction here.
            options = options.since(&format!("{}.{:09}", since.as_secs(), since.subsec_nanos()));
        }
        let endpoint = self.endpoint().to_string();
        self.docker.events(Some(options.build())).map(move |item| {
            let message = item.with_context(|| format!("lost the event stream from {endpoint}"))?;
            let actor = message.actor.unwrap_or_default();
            Ok(Event {
                action: message.action.unwrap_or_default(),
                name: actor
                    .attributes
                    .and_then(|mut a| a.remove("name"))
                    .unwrap_or(actor.id.unwrap_or_default()),
            })
        })
    }

    /// `docker inspect` of one container exactly as the engine sent it, every field included:
    /// bollard's typed model would drop the fields its schema no longer has (the legacy
    /// top-level `NetworkSettings` addresses, `KernelMemory`, ...) and all nulls, and fail on a
    /// state word it does not know (Podman's `stopped`). The audit log keeps this, where "as it
    /// was" must mean all of it. `None` if it no longer exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<Value>> {
        let context = || format!("cannot inspect container {id}");
        // Escaped, a reference reaches the engine as given whatever it holds (`?`, `/`).
        let escaped = percent_encoding::utf8_percent_encode(id, REFERENCE);
        match raw::get_json(self.endpoint(), &format!("/containers/{escaped}/json"))
            .await
            .with_context(context)?
        {
            Answer::Found(json) => Ok(Some(json)),
            Answer::Absent => Ok(None),
            Answer::Unspoken => {
                let found = absent_as_none(self.docker.inspect_container(id, None).await)
                    .with_context(context)?;
                Ok(found.map(serde_json::to_value).transpose()?)
            }
        }
    }

    /// An image by reference or id; `None` if the engine does not have it.
    pub async fn image(&self, reference: &str) -> Result<Option<Image>> {
        let found = absent_as_none(self.docker.inspect_image(reference).await)
            .with_context(|| format!("cannot inspect image {reference}"))?;
        let Some(image) = found else { return Ok(None) };
        Ok(Some(Image {
            id: image.id.unwrap_or_default(),
            config: image
                .config
                .map(serde_json::to_value)
                .transpose()?
                .unwrap_or(Value::Null),
        }))
    }

    /// Pull `reference` from its registry.
    pub async fn pull(&self, reference: &str) -> Result<()> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        self.docker
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>()
            .await
            .with_context(|| format!("cannot pull {reference}"))?;
        Ok(())
    }

    /// Create a container named `name` from a create request body; returns its id.
    pub async fn create(&self, name: &str, body: Value) -> Result<String> {
        let body: ContainerCreateBody = serde_json::from_value(body)
            .with_context(|| format!("the record of {name} is not a valid create request"))?;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .with_context(|| format!("cannot create container {name}"))?;
        Ok(created.id)
    }

    /// Attach a created container to one more network before it starts.
    pub async fn connect_network(&self, id: &str, network: &str, endpoint: Value) -> Result<()> {
        let endpoint: EndpointSettings = serde_json::from_value(endpoint)
            .with_context(|| format!("invalid endpoint settings for network {network}"))?;
        let request = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(endpoint),
        };
        self.docker
            .connect_network(network, request)
            .await
            .with_context(|| format!("cannot connect to network {network}"))
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None)
            .await
            .context("cannot start")
    }

    /// Stop as `docker stop` does: with `grace` if given (then SIGKILL), else as the container
    /// asks (its own stop signal and stop timeout, else the engine's default). `own` is the
    /// container's own stop timeout, if it set one: the request waits for it.
    pub async fn stop(
        &self,
        id: &str,
        grace: Option<Duration>,
        own: Option<Duration>,
    ) -> Result<()> {
        let mut options = StopContainerOptionsBuilder::default();
        if let Some(grace) = grace {
            let seconds = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
                .unwrap_or(i32::MAX);
            options = options.t(seconds);
        }
        let waits = grace.or(own).unwrap_or(ENGINE_STOP_TIMEOUT);
        // The engine answers a stop only once the container is down: a client timeout shorter
        // than the grace period would give up on a stop that is still going on.
        let docker = self
            .docker
            .clone()
            .with_timeout(REQUEST_TIMEOUT.max(waits + Duration::from_secs(60)));
        docker
            .stop_container(id, Some(options.build()))
            .await
            .context("cannot stop")
    }

    /// Remove a container, never its volumes.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .context("cannot remove")
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let options = RenameContainerOptions {
            name: name.to_string(),
        };
        self.docker
            .rename_container(id, options)
            .await
            .with_context(|| format!("cannot rename to {name}"))
    }

    /// Whether a volume by this name exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool> {
        let found = absent_as_none(self.docker.inspect_volume(name).await)
            .with_context(|| format!("cannot inspect volume {name}"))?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_host_docker_comes_first_then_the_users_podman_then_the_systems() {
        let runtime = Some("/run/user/1000");
        let docker = "/var/run/docker.sock";
        let user = "/run/user/1000/podman/podman.sock";
        let system = "/run/podman/podman.sock";
        let with = |present: &[&str]| {
            let present: Vec<String> = present.iter().map(|p| p.to_string()).collect();
            move |p: &str| present.iter().any(|q| q == p)
        };
        let all = with(&[docker, user, system]);
        assert_eq!(default_endpoint(runtime, all), DEFAULT_ENDPOINT);
        let podmans = with(&[user, system]);
        assert_eq!(default_endpoint(runtime, podmans), format!("unix://{user}"));
        let system_only = with(&[system]);
        assert_eq!(
            default_endpoint(runtime, system_only),
            format!("unix://{system}")
        );
        assert_eq!(default_endpoint(None, with(&[user])), DEFAULT_ENDPOINT);
        assert_eq!(default_endpoint(runtime, with(&[])), DEFAULT_ENDPOINT);
    }

    #[test]
    fn only_what_a_create_request_carries_is_kept() {
        let mut config = serde_json::json!({"Env": ["A=1"], "MacAddress": "02:42:ac:11:00:99",
                                            "StopTimeout": 0})
        .as_object()
        .cloned()
        .unwrap_or_default();
        let mut host = serde_json::json!({"Memory": 1024, "KernelMemory": 4096,
                                          "RestartPolicy": {"Name": "always"}})
        .as_object()
        .cloned()
        .unwrap_or_default();
        keep_sendable(&mut config, &mut host);
        assert_eq!(
            Value::Object(config),
            serde_json::json!({"Env": ["A=1"], "StopTimeout": 0})
        );
        assert_eq!(
            Value::Object(host),
            serde_json::json!({"Memory": 1024, "RestartPolicy": {"Name": "always"}})
        );
    }
}
