//! `guestlist guard`: bind the front end's socket first (a plugin must answer dockerd at once,
//! or dockerd blocks every API call), then serve until SIGTERM or SIGINT.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::net::UnixListener;
use tracing::info;

use super::{Outcome, Settings, Shutdown};
use crate::cli::GuardArgs;
use crate::guard::proxy::{self, Upstream};
use crate::guard::{plugin, Guard, Options};
use crate::ops::audit::Audit;
use crate::ops::metrics::{self, Refusals};

pub async fn run(settings: &Settings, args: GuardArgs) -> Result<Outcome> {
    tokio::task::LocalSet::new()
        .run_until(serve(settings, args))
        .await
}

async fn serve(settings: &Settings, args: GuardArgs) -> Result<Outcome> {
    let mut shutdown = Shutdown::install()?;
    enough_files();
    let refusals = Arc::new(Refusals::new()?);
    let options = Options {
        state_path: settings.state_path.clone(),
        endpoint: settings.endpoint.clone(),
        audit: Audit::new(settings.audit_path.clone()),
        dry_run: args.dry_run,
        plugin: args.plugin.clone(),
        any_engine: settings.any_engine,
    };
    let guard = Arc::new(Guard::new(options, Arc::clone(&refusals), || {
        settings.load_state()
    })?);
    if let Some(address) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for --metrics-listen"))?;
        tokio::spawn(metrics::serve(listener, Arc::clone(&refusals)));
        info!("serving metrics on http://{address}/metrics");
    }
    let mode = match args.dry_run {
        true => "dry run: refusing nothing, logging what would be refused",
        false => "refusing what the list forbids",
    };
    let allowed = guard.state().containers.len();
    let state = settings.state_path.display();
    let (socket, served) = match (&args.listen, &args.plugin) {
        (Some(url), _) => {
            let upstream = Upstream::parse(&settings.endpoint)?;
            let path = socket_path(url)?;
            if let Upstream::Unix(engine) = &upstream {
                if same_file(engine, &path) {
                    bail!("--listen {url} is the engine's own socket: the guard would ask itself");
                }
            }
            let group = args.socket_group.as_deref().map(gid).transpose()?;
            let listener = bind(&path, group)?;
            info!(
                "guarding {} at {url} with {allowed} allowed containers (state {state}); {mode}",
                settings.endpoint
            );
            let served =
                tokio::task::spawn_local(proxy::serve(listener, upstream, Arc::clone(&guard)));
            (path, served)
        }
        (None, Some(name)) => {
            let path = args
                .socket
                .clone()
                .unwrap_or_else(|| Path::new(plugin::SOCKETS).join(format!("{name}.sock")));
            let listener = bind(&path, None)?;
            info!(
                "serving authorization plugin {name} at {} with {allowed} allowed containers \
                 (state {state}); {mode}",
                path.display()
            );
            let served = tokio::task::spawn_local(plugin::serve(listener, Arc::clone(&guard)));
            (path, served)
        }
        (None, None) => bail!("give --listen or --plugin"),
    };
    shutdown.recv().await;
    served.abort();
    let _ = std::fs::remove_file(&socket);
    info!("stopped; {} is gone", socket.display());
    Ok(Outcome::Clean)
}

/// Each proxied client takes two file descriptors (its own and the engine's): the soft limit
/// (often 1024) is raised to the hard one, which `LimitNOFILE` in the units sets.
fn enough_files() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("cannot raise the open files limit to the hard limit: {e}");
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    let needed = 2 * proxy::MAX_CLIENTS as u64 + 64;
    if now.is_some_and(|n| n < needed) {
        tracing::warn!(
            "{} open files at most: fewer than {needed} clients' connections can be served \
             (raise LimitNOFILE)",
            now.unwrap_or_default()
        );
    }
}

/// `unix:///run/guestlist/docker.sock` -> its path. The proxy serves a unix socket only: the
/// peer's credentials are what the audit log names, and an engine API on TCP without TLS is
/// root for anyone who can reach it.
fn socket_path(url: &str) -> Result<PathBuf> {
    match url.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => bail!("--listen takes unix:///ABSOLUTE/PATH, not {url}"),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}

/// A group name or number.
fn gid(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    uzers::get_group_by_name(group)
        .map(|g| g.gid())
        .with_context(|| format!("no group {group} on this host (--socket-group)"))
}

/// Listen at `path`: its directory created when missing, a stale socket from a guard that died
/// replaced, a live one left alone. The socket is the owner's only, or its group's too.
fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "something already serves {}: another guard?",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!("{} exists and is not a socket", path.display()),
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen at {}", path.display()))?;
    let mode = match group {
        Some(gid) => {
            rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
                .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}
