//! `guestlist guard`: prevention at the engine's API. Two front ends, a socket proxy
//! (`proxy`) and a Docker authorization plugin (`plugin`), hand each request to one `Guard`.
//! It reads the request as the engine will (`request`, on `target`, `route` and `body`),
//! resolves the containers it reaches through the engine, asks the pure `policy` for a
//! verdict, and logs, audits and counts every refusal. A container a create made is measured
//! once more as the engine made it (`Guard::admit`), and removed again if it is not allowed.

pub mod body;
pub mod plugin;
pub mod policy;
pub mod proxy;
mod reach;
pub mod request;
pub mod route;
pub mod target;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Result;

use crate::engine::{self, Engine};
use crate::observe::{self, Capture};
use crate::ops::audit::{Audit, RequestSeen};
use crate::ops::metrics::Refusals;
use crate::record::spec::EngineKind;
use crate::record::state::{self, State};
use policy::{Refusal, Seen, Verdict};
use reach::target_of;
use request::{Incoming, Read, Request};
use target::Dialect;

/// The client of one connection, from the socket's peer credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
}

/// One request as a front end received it.
pub struct Received<'a> {
    pub method: &'a str,
    /// The request target as sent.
    pub uri: &'a str,
    /// Every `Content-Type` value sent.
    pub content_types: &'a [&'a str],
    /// Whether it carries a body.
    pub has_body: bool,
    /// `None`: the body was not seen (or is not needed, see `request::wants_body`).
    pub body: Option<&'a [u8]>,
    pub peer: Peer,
    /// The user the engine authenticated, as a plugin is told.
    pub user: Option<&'a str>,
}

/// The guard's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Send it on as it came: it changes nothing.
    AsIs,
    /// Send it on as the guard read it.
    Pass(Pass),
    Refuse(Refusal),
    /// The container the request names does not exist; the engine would say so.
    Missing(String),
}

/// A request to send on, as judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// The request target: origin form, the path as read, the resolved container's id in
    /// place of the reference the client gave.
    pub target: String,
    /// The body to send in place of the client's (a network connect naming the resolved id).
    pub body: Option<Vec<u8>>,
    /// A create: what it makes is to be measured with `Guard::admit` once the engine made it.
    pub admit: Option<Made>,
}

/// What a create made, as its answer's `Id` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    Container,
    /// A Podman pod: its infra container is measured, and the whole pod removed if refused.
    Pod,
}

/// What the guard needs to know, resolved by the command from flags and defaults.
pub struct Options {
    pub state_path: PathBuf,
    pub endpoint: String,
    pub audit: Audit,
    pub dry_run: bool,
    /// The plugin's name when it runs as one.
    pub plugin: Option<String>,
    /// Judge against an engine of another kind than the list was taken on.
    pub any_engine: bool,
}

/// The list in force, and the state file's stamp when it was last looked at (loaded or not).
struct Loaded {
    state: Arc<State>,
    seen: Option<Stamp>,
}

/// What tells a state file that changed from one that did not: `snapshot` replaces it by a
/// rename, so its inode changes with every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

pub struct Guard {
    options: Options,
    list: Mutex<Loaded>,
    /// Connected at the first request that needs it: a plugin must answer the engine before
    /// that engine can answer anyone.
    engine: tokio::sync::OnceCell<Engine>,
    pub refusals: Arc<Refusals>,
}

/// What a judgement found out, beyond the verdict.
enum Judgement {
    Verdict(Verdict),
    Missing(String),
}

impl Guard {
    /// A guard with the list at `options.state_path`, which must load.
    /// `load` reads the list, which must load (its errors carry the next step as their
    /// outermost context, see `error::Hint`); the file's stamp is
    /// taken first, so a change while it loads is read again at the first request.
    pub fn new(
        options: Options,
        refusals: Arc<Refusals>,
        load: impl FnOnce() -> Result<State>,
    ) -> Result<Guard> {
        let stamp = stamp(&options.state_path);
        let state = load()?;
        Ok(Guard {
            options,
            list: Mutex::new(Loaded {
                state: Arc::new(state),
                seen: stamp,
            }),
            engine: tokio::sync::OnceCell::new(),
            refusals,
        })
    }

    pub fn state(&self) -> Arc<State> {
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&list.state)
    }

    /// The list in force, read again when the file changed. A file that does not load (or is
    /// gone) keeps the last good list, with one warning per change of the file.
    fn current(&self) -> Arc<State> {
        let now = stamp(&self.options.state_path);
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if now == list.seen {
            return Arc::clone(&list.state);
        }
        list.seen = now;
        match state::load(&self.options.state_path) {
            Ok(fresh) => {
                tracing::info!(
                    "the list changed: {} allowed containers ({})",
                    fresh.containers.len(),
                    self.options.state_path.display()
                );
                list.state = Arc::new(fresh);
            }
            Err(e) => tracing::warn!(
                "the state file {} does not load, so the last good list stays in force: {:#}",
                self.options.state_path.display(),
                anyhow::Error::from(e)
            ),
        }
        Arc::clone(&list.state)
    }

    async fn engine(&self, state: &State) -> Result<&Engine> {
        let engine = self
            .engine
            .get_or_try_init(|| engine::connect(&self.options.endpoint, engine::REQUEST_TIMEOUT))
            .await?;
        let (recorded, here) = (state.engine.kind, engine.defaults.kind);
        if !self.options.any_engine && recorded.is_some_and(|kind| kind != here) {
            anyhow::bail!(
                "the list was taken on {}, and the engine at {} is {} (guard --any-engine \
                 judges against it anyway)",
                recorded.map_or("", |k| k.word()),
                self.options.endpoint,
                here.word()
            );
        }
        Ok(engine)
    }

    /// How the engine behind the guard routes paths: an authorization plugin is dockerd's;
    /// a proxy asks the engine what it is.
    pub async fn dialect(&self) -> Result<Dialect> {
        if self.options.plugin.is_some() {
            return Ok(Dialect::Docker);
        }
        let state = self.current();
        Ok(match self.engine(&state).await?.defaults.kind {
            EngineKind::Docker => Dialect::Docker,
            EngineKind::Podman => Dialect::Podman,
        })
    }

    /// The answer to one request, a refusal logged, audited and counted. Under --dry-run a
    /// refusal is all of that and then passed on.
    pub async fn judge(&self, received: Received<'_>) -> Answer {
        // Reads change nothing: the common case, decided before anything is parsed.
        if matches!(received.method, "GET" | "HEAD") {
            return Answer::AsIs;
        }
        let read = match self.dialect().await {
            Ok(dialect) => request::read(incoming(&received), dialect),
            Err(e) => Read {
                request: Request::Refused(format!("cannot tell how the engine reads it: {e:#}")),
                forward: None,
                route: None,
            },
        };
        let pass = |id: Option<&str>| match &read.forward {
            Some(forward) => Answer::Pass(Pass {
                target: forward.target_with(id),
                body: id.and_then(|id| forward.body_with(id)),
                admit: match read.request {
                    Request::Create(_) => Some(Made::Container),
                    Request::PodCreate { infra: Some(_) } => Some(Made::Pod),
                    _ => None,
                },
            }),
            None => Answer::AsIs,
        };
        if read.request == Request::Harmless {
            return pass(None);
        }
        let state = self.current();
        let (judgement, resolved) = match &read.request {
            Request::Refused(_) => (
                Judgement::Verdict(policy::decide(&state, &read.request, &no_one())),
                None,
            ),
            request => match self.consult(&state, request).await {
                Ok(found) => found,
                // Never treated as "nothing to protect": a guard that cannot see lets nothing by.
                Err(e) => (
                    Judgement::Verdict(Refusal::verdict(
                        None,
                        format!("cannot check this request against the list: {e:#}"),
                    )),
                    None,
                ),
            },
        };
        let refusal = match judgement {
            Judgement::Missing(reference) => return Answer::Missing(reference),
            Judgement::Verdict(Verdict::Allow) => return pass(resolved.as_deref()),
            Judgement::Verdict(Verdict::Refuse(refusal)) => refusal,
        };
        self.report(&read.request, &received, &refusal).await;
        match self.options.dry_run {
            true => pass(resolved.as_deref()),
            false => Answer::Refuse(refusal),
        }
    }

    /// Resolve what the request reaches through the engine and ask the policy. The second
    /// value is the id of the container the request names, when it names one.
    async fn consult(
        &self,
        state: &State,
        request: &Request,
    ) -> Result<(Judgement, Option<String>)> {
        let plugin = self.options.plugin.as_deref();
        let engine = match request {
            Request::Plugin { .. } | Request::Create(None) => None,
            _ => Some(self.engine(state).await?),
        };
        let mut request = request.clone();
        let mut affected = Vec::new();
        let mut resolved = None;
        if let Some(engine) = engine {
            let reached = self.reach(engine, state, &mut request).await?;
            if let Some(reference) = reached.missing {
                return Ok((Judgement::Missing(reference), None));
            }
            affected = reached.affected;
            resolved = reached.resolved;
        }
        let claims = match engine {
            Some(engine) => {
                let labels = affected.iter().map(|o| &o.labels);
                observe::believed(engine, state.claims(), labels).await?
            }
            None => state.claims(),
        };
        for one in affected.iter_mut() {
            one.managed = claims.owner(one.labels.keys().map(String::as_str));
        }
        let names = policy::names_to_observe(state, &request, &affected);
        let observed = match (names.is_empty(), engine) {
            (false, Some(engine)) => {
                observe::host(engine, &state.scope, state.claims(), Capture::Named(&names)).await?
            }
            _ => Vec::new(),
        };
        // The captured form of each affected container, where it was captured.
        for one in affected.iter_mut() {
            if let Some(captured) = observed.iter().find(|o| o.id == one.id) {
                *one = captured.clone();
            }
        }
        let seen = Seen {
            affected: &affected,
            observed: &observed,
            plugin,
            claims,
        };
        Ok((
            Judgement::Verdict(policy::decide(state, &request, &seen)),
            resolved,
        ))
    }

    /// Measure the container a create made (`id`) as the engine made it, and remove it again
    /// when the list does not allow it. Under --dry-run it stays, and the refusal is logged.
    pub async fn admit(&self, made: Made, made_id: &str, received: &Received<'_>) -> Verdict {
        let state = self.current();
        let mut id = made_id.to_string();
        let measured = async {
            let engine = self.engine(&state).await?;
            if made == Made::Pod {
                match engine.pod_infra(made_id).await? {
                    Some(infra) => id = infra,
                    None => return Ok::<_, anyhow::Error>((Verdict::Allow, None)),
                }
            }
            let Some(json) = engine.inspect(&id).await? else {
                // Gone already: nothing to admit.
                return Ok::<_, anyhow::Error>((Verdict::Allow, None));
            };
            let created = target_of(&json);
            let create = request::Create {
                name: Some(created.name.clone()),
                ..Default::default()
            };
            let mut names = policy::names_to_observe(&state, &Request::Create(Some(create)), &[]);
            let claims = state.claims();
            // Only a container under a listed name (or a replacement's) is compared with a
            // record, which needs it captured; any other is placed by its inspect alone.
            let observed = match names.is_empty() {
                true => Vec::new(),
                false => {
                    names.insert(created.name.clone());
                    observe::host(engine, &state.scope, claims, Capture::Named(&names)).await?
                }
            };
            let claims =
                observe::believed(engine, claims, std::iter::once(&created.labels)).await?;
            let created = observed
                .iter()
                .find(|o| o.id == created.id)
                .cloned()
                .unwrap_or(created);
            let mut verdict = policy::admit(&state, claims, &created, &observed);
            // In the process namespace of a protected container, whatever the request said.
            let pid_mode = json["HostConfig"]["PidMode"].as_str().unwrap_or_default();
            if let (Verdict::Allow, Some(shared)) = (&verdict, pid_mode.strip_prefix("container:"))
            {
                if let Some(json) = engine.inspect(shared).await? {
                    let mut shared = target_of(&json);
                    shared.managed = claims.owner(shared.labels.keys().map(String::as_str));
                    let mut names = names.clone();
                    names.insert(shared.name.clone());
                    let observed =
                        observe::host(engine, &state.scope, claims, Capture::Named(&names)).await?;
                    let plan = || crate::plan::plan(&state, &observed);
                    let name = Some(created.name.as_str());
                    verdict = policy::shares_processes(&state, name, &[shared], &plan);
                }
            }
            Ok((verdict, Some(engine)))
        };
        let (verdict, engine) = match measured.await {
            Ok(found) => found,
            Err(e) => (
                Refusal::verdict(
                    None,
                    format!("cannot check the container just created against the list: {e:#}"),
                ),
                None,
            ),
        };
        let Verdict::Refuse(mut refusal) = verdict else {
            return Verdict::Allow;
        };
        if !self.options.dry_run {
            let engine = match engine {
                Some(engine) => Ok(engine),
                None => self.engine(&state).await,
            };
            let removed = match (engine, made) {
                (Ok(engine), Made::Container) => engine.remove_refused(&id).await,
                (Ok(engine), Made::Pod) => engine.remove_pod(made_id).await,
                (Err(e), _) => Err(e),
            };
            refusal.message += &match removed {
                Ok(()) => "; it was removed again".to_string(),
                Err(e) => format!("; removing it failed ({e:#}): remove it by hand"),
            };
        }
        self.report(&Request::Create(None), received, &refusal)
            .await;
        match self.options.dry_run {
            true => Verdict::Allow,
            false => Verdict::Refuse(refusal),
        }
    }

    async fn report(&self, request: &Request, received: &Received<'_>, refusal: &Refusal) {
        let dry_run = self.options.dry_run;
        let peer = received.peer;
        let who = match (peer.uid, peer.pid) {
            (Some(uid), Some(pid)) => format!(" (uid {uid}, pid {pid})"),
            (Some(uid), None) => format!(" (uid {uid})"),
            _ => received
                .user
                .map(|u| format!(" (user {u})"))
                .unwrap_or_default(),
        };
        let said = match dry_run {
            true => "would refuse",
            false => "refused",
        };
        tracing::warn!(
            "{said} {} {}{who}: {}",
            received.method,
            received.uri.escape_debug(),
            refusal.message
        );
        self.refusals.count(request.operation(), dry_run);
        let seen = RequestSeen {
            method: received.method.to_string(),
            path: received.uri.to_string(),
            uid: peer.uid,
            gid: peer.gid,
            pid: peer.pid,
            user: received.user.filter(|u| !u.is_empty()).map(String::from),
        };
        let container = refusal.container.as_deref();
        if let Err(e) = self
            .options
            .audit
            .request_refused(container, &refusal.message, seen, dry_run)
            .await
        {
            tracing::error!("the refusal is not in the audit log: {e:#}");
        }
    }
}

fn incoming<'a>(received: &'a Received<'a>) -> Incoming<'a> {
    Incoming {
        method: received.method,
        target: received.uri,
        content_types: received.content_types,
        has_body: received.has_body,
        body: received.body,
    }
}

fn no_one() -> Seen<'static> {
    Seen {
        affected: &[],
        observed: &[],
        plugin: None,
        claims: Default::default(),
    }
}
