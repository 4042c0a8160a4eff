//! `guestlist guard`: prevention at the engine's API. Two front ends, a socket proxy
//! (`proxy`) and a Docker authorization plugin (`plugin`), hand each request to one `Guard`,
//! which reads what it needs of the engine and asks the pure `policy` for a verdict, then logs,
//! audits and counts every refusal.

pub mod plugin;
pub mod policy;
pub mod proxy;
pub mod request;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::engine::{self, Engine};
use crate::observe::{self, Capture};
use crate::ops::audit::{Audit, RequestSeen};
use crate::ops::metrics::Refusals;
use crate::plan::{LastRun, Observed, Status};
use crate::record::state::{self, State};
use policy::{Refusal, Verdict};
use request::Request;

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
    /// The path with its query, as sent.
    pub uri: &'a str,
    /// `None`: the body was not seen (or is not needed, see `Request::wants_body`).
    pub body: Option<&'a [u8]>,
    pub peer: Peer,
    /// The user the engine authenticated, as a plugin is told.
    pub user: Option<&'a str>,
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

    /// The verdict on one request, logged, audited and counted when it is a refusal. Under
    /// --dry-run a refusal is all of that and then allowed.
    pub async fn judge(&self, received: Received<'_>) -> Verdict {
        // Reads change nothing: the common case, decided before anything is parsed.
        if matches!(received.method, "GET" | "HEAD") {
            return Verdict::Allow;
        }
        let request = request::parse(received.method, received.uri, received.body);
        if request == Request::Other {
            return Verdict::Allow;
        }
        let state = self.current();
        let verdict = match self.consult(&state, &request).await {
            Ok(verdict) => verdict,
            // Never treated as "nothing to protect": a guard that cannot see lets nothing by.
            Err(e) => Verdict::Refuse(Refusal {
                container: None,
                message: format!("guestlist: cannot check this request against the list: {e:#}"),
            }),
        };
        let Verdict::Refuse(refusal) = verdict else {
            return Verdict::Allow;
        };
        self.report(&request, &received, &refusal).await;
        match self.options.dry_run {
            true => Verdict::Allow,
            false => Verdict::Refuse(refusal),
        }
    }

    /// Read what the policy needs of the engine and ask it.
    async fn consult(&self, state: &State, request: &Request) -> Result<Verdict> {
        let plugin = self.options.plugin.as_deref();
        let target = match request {
            Request::Change { container, .. } => {
                let engine = self.engine(state).await?;
                let inspect = engine
                    .inspect(container)
                    .await
                    .with_context(|| format!("cannot inspect container {container}"))?;
                match inspect {
                    Some(json) => Some(target_of(&json)),
                    None => return Ok(Verdict::Allow),
                }
            }
            _ => None,
        };
        let names = policy::names_to_observe(state, request, target.as_ref().map(|t| &*t.name));
        let observed = match names.is_empty() {
            true => Vec::new(),
            false => {
                let engine = self.engine(state).await?;
                observe::host(engine, &state.scope, Capture::Named(&names)).await?
            }
        };
        Ok(policy::decide(
            state,
            request,
            target.as_ref(),
            &observed,
            plugin,
        ))
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
            received.uri,
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

/// The container an inspect describes, enough for the policy to place it.
fn target_of(json: &Value) -> Observed {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let labels = request::string_map(&json["Config"]["Labels"]);
    let status = Status::from_word(json["State"]["Status"].as_str().unwrap_or_default());
    Observed {
        id: text(&json["Id"]),
        name: text(&json["Name"]).trim_start_matches('/').to_string(),
        image: text(&json["Config"]["Image"]),
        running: status.is_running(),
        status,
        labels,
        spec: None,
        last_run: LastRun::default(),
        runs_guestlist: false,
        origin: None,
    }
}
