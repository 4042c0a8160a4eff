//! The subcommands, and what they share: resolving settings, loading the state, connecting,
//! the outcome of a command and its exit code.

mod check;
mod diff;
mod enforce;
mod forget;
mod guard;
mod list;
mod pass;
mod restore;
mod show;
mod snapshot;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::CommandFactory;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::{Cli, Command, PassArgs};
use crate::engine::{self, Engine};
use crate::error::Hint;
use crate::notify::{Notifier, Receiver};
use crate::ops::audit;
use crate::ops::lock::{self, Lock};
use crate::plan::PassEnd;
use crate::record::spec::EngineKind;
use crate::record::state::{self, LoadError, State};

/// How a command ended, when it could run at all (could not run is an `Err`, exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In sync, or done: exit 0.
    Clean,
    /// Drift found (`diff`, `enforce --dry-run`): exit 1.
    Drift,
    /// An action failed or drift remains after `enforce`: exit 1.
    Failed,
}

impl Outcome {
    /// The outcome of a pass that ran: drift a dry run found is what it was asked to find;
    /// anything else short of in sync is a failure to enforce.
    pub fn of(end: PassEnd, dry_run: bool) -> Outcome {
        match end {
            PassEnd::InSync => Outcome::Clean,
            PassEnd::Drift if dry_run => Outcome::Drift,
            PassEnd::Drift | PassEnd::Refused | PassEnd::Error => Outcome::Failed,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Drift | Outcome::Failed => ExitCode::from(1),
        }
    }
}

/// Write a report to stdout. A closed stdout (`guestlist diff | head -1`) ends the output, not
/// the program: the exit code must still tell the truth.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// What every command needs to know, resolved from flags, environment and defaults.
pub struct Settings {
    pub state_path: PathBuf,
    pub endpoint: String,
    pub lock_timeout: Duration,
    pub audit_path: PathBuf,
    /// Where the lock and the restart history live; `None`: beside the state file.
    pub run_dir: Option<PathBuf>,
    /// Use a state file taken on another kind of engine.
    pub any_engine: bool,
}

impl Settings {
    fn resolve(cli: &Cli) -> Result<Settings> {
        let state_path = match &cli.state {
            Some(path) => path.clone(),
            None => state::default_path()?,
        };
        let endpoint = cli
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| {
                let runtime_dir = std::env::var("XDG_RUNTIME_DIR").ok();
                engine::default_endpoint(runtime_dir.as_deref(), |p| {
                    std::path::Path::new(p).exists()
                })
            });
        let audit_path = match &cli.audit_log {
            Some(path) => path.clone(),
            None => audit::default_path()?,
        };
        Ok(Settings {
            any_engine: cli.any_engine,
            run_dir: cli.run_dir.clone(),
            audit_path,
            state_path,
            endpoint,
            lock_timeout: cli.lock_timeout,
        })
    }

    /// Load the state file, with the next step when there is none.
    pub fn load_state(&self) -> Result<State> {
        match state::load(&self.state_path) {
            Ok(state) => {
                if state.orchestrators.is_none() {
                    tracing::warn!(
                        "the list {} predates orchestrator claims: Kubernetes' and Nomad's \
                         labels exempt a container wherever they appear, and any client that \
                         can create a container can write them; record which orchestrators \
                         run here with `guestlist snapshot --force` (or add \"orchestrators\": \
                         [] to the file, see the README)",
                        self.state_path.display()
                    );
                }
                Ok(state)
            }
            Err(LoadError::NotFound(path)) => {
                Err(anyhow::anyhow!("no state file at {}", path.display())).context(Hint(
                    "run `guestlist snapshot` to record the containers running now".into(),
                ))
            }
            Err(LoadError::Malformed(e)) => Err(e).context(Hint(
                "fix the file by hand (it was not modified), or replace it with \
                     `guestlist snapshot --force`"
                    .into(),
            )),
            Err(LoadError::Other(e)) => Err(e),
        }
    }

    /// A file that belongs to the state file at run time, named after it (`state.json` →
    /// `state.<extension>`): beside it, or in `--run-dir` when the state's directory is not
    /// ours to write (a ConfigMap).
    fn runtime_file(&self, extension: &str) -> PathBuf {
        let beside = self.state_path.with_extension(extension);
        match (&self.run_dir, beside.file_name()) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => beside,
        }
    }

    /// The lock that passes, snapshots and forgets take turns on.
    pub fn lock_path(&self) -> PathBuf {
        self.runtime_file("lock")
    }

    /// The crash-loop backoff's memory of recent starts.
    pub fn history_path(&self) -> PathBuf {
        self.runtime_file("restarts.json")
    }

    /// What notifications told, so a lasting situation is not told at every pass.
    pub fn notified_path(&self) -> PathBuf {
        self.runtime_file("notified.json")
    }

    /// The notifier of `--notify`, if any receiver was given. A value that is not a URL
    /// stops the command (its reason is told, the value never: it is a credential); one that
    /// is empty is said to send nothing.
    pub fn notifier(&self, args: &PassArgs) -> Result<Option<Notifier>> {
        let urls = crate::cli::Receivers::urls(&args.notify).map_err(|why| {
            anyhow::anyhow!("--notify (or GUESTLIST_NOTIFY): {why}").context(Hint(
                "give http:// or https:// URLs; several are separated by commas".into(),
            ))
        })?;
        if crate::cli::Receivers::any_empty(&args.notify) {
            tracing::warn!("--notify (or GUESTLIST_NOTIFY) is empty: that sends no notification");
        }
        Ok(Notifier::new(
            urls.into_iter().map(Receiver::new).collect(),
            args.notify_repeat,
            self.notified_path(),
            &self.endpoint,
        ))
    }

    /// Take the state file's lock, waiting for another guestlist to finish with it.
    pub async fn lock(&self) -> Result<Lock> {
        lock::acquire(&self.lock_path(), self.lock_timeout, |holder| {
            let who = holder.map_or("another guestlist".into(), |pid| format!("process {pid}"));
            tracing::info!(
                "waiting for {who} to finish with {} (up to {})",
                self.state_path.display(),
                humantime::format_duration(self.lock_timeout)
            );
        })
        .await
    }

    /// Connect to the engine. Each request may take 120 s up to its answer's headers; a stop,
    /// which returns only once the container is down, gets its grace period on top.
    pub async fn connect(&self) -> Result<Engine> {
        engine::connect(&self.endpoint, engine::REQUEST_TIMEOUT).await
    }

    /// Connect to the engine that `state` is to be used against: one of the kind it was taken
    /// on, unless --any-engine. Docker and Podman report the same container differently (their
    /// defaults, their default network), so a list taken on one would make a pass on the other
    /// replace containers that are as they should be.
    pub async fn connect_for(&self, state: &State) -> Result<Engine> {
        let engine = self.connect().await?;
        self.check_engine(state, &engine)?;
        Ok(engine)
    }

    /// Refuse `engine` for `state` if it is of another kind than the one the state was taken
    /// on (see `connect_for`).
    pub fn check_engine(&self, state: &State, engine: &Engine) -> Result<()> {
        let recorded = state.engine.kind;
        let here = engine.defaults.kind;
        if self.any_engine || recorded.is_none_or(|kind| kind == here) {
            return Ok(());
        }
        Err(anyhow::anyhow!(
            "the state file {} was taken on {}, and the engine at {} is {}",
            self.state_path.display(),
            recorded.map_or("", EngineKind::word),
            self.endpoint,
            here.word()
        ))
        .context(Hint(
            "take a snapshot against this engine (`guestlist snapshot --force`), or pass \
             --any-engine to use the list anyway (a pass may then replace containers)"
                .into(),
        ))
    }
}

/// SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C): the end of a command that runs until
/// told to stop.
pub struct Shutdown {
    term: Signal,
    interrupt: Signal,
}

impl Shutdown {
    pub fn install() -> Result<Shutdown> {
        let install = |kind| signal(kind).context("cannot install the signal handlers");
        Ok(Shutdown {
            term: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    // One thread: the work is waiting on the engine, and a second thread costs start-up time
    // on every cron run.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let settings = Settings::resolve(&cli)?;
    runtime.block_on(async {
        match cli.command {
            Command::Snapshot(args) => snapshot::run(&settings, args).await,
            Command::Forget(args) => forget::run(&settings, args).await,
            Command::Diff(args) => diff::run(&settings, args).await,
            Command::Enforce(args) => enforce::run(&settings, args).await,
            Command::Watch(args) => watch::run(&settings, args).await,
            Command::Restore(args) => restore::run(&settings, args).await,
            Command::Guard(args) => guard::run(&settings, args).await,
            Command::List(args) => list::run(&settings, args),
            Command::Check(args) => check::run(&settings, args),
            Command::Show(args) => show::run(&settings, args),
            Command::Completions(args) => completions(args.shell),
            Command::Man(args) => man(args.dir.as_deref()),
        }
    })
}

/// Generated from the command-line definition itself, so they never disagree with it.
fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "guestlist", &mut script);
    print(&String::from_utf8_lossy(&script));
    Ok(Outcome::Clean)
}

fn man(dir: Option<&std::path::Path>) -> Result<Outcome> {
    let command = Cli::command();
    if let Some(dir) = dir {
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        return Ok(Outcome::Clean);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .context("cannot render the manual page")?;
    print(&String::from_utf8_lossy(&page));
    Ok(Outcome::Clean)
}
