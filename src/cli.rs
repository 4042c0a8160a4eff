//! The command-line contract. Scripts, cron lines and CI jobs are written against it: change it
//! only on purpose.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ops::log::LogFormat;
use crate::record::rules::{AllowRule, LabelSelector, Orchestrator};

const EXIT_CODES: &str = "\
Exit codes:
  diff, enforce --dry-run   0 in sync, 1 drift, 2 error
  enforce                   0 the host matches the list after the pass,
                            1 an action failed, drift remains, or the pass would
                              exceed --max-removals (then nothing is done),
                            2 could not run
  snapshot, forget, restore,
  list, show                0 done, 2 error
  check                     0 the state file is valid, 2 it is not (or cannot be read)
  watch                     0 stopped by SIGTERM or SIGINT, 2 could not start
                              (it never exits on engine errors: it reconnects)
  guard                     0 stopped by SIGTERM or SIGINT, 2 could not start

Examples:
  guestlist snapshot --scope label=team=web     record what runs now
  guestlist diff --format json                  what drifted, for a script
  guestlist enforce --dry-run                   what a pass would do
  guestlist snapshot web                        approve the current web container
  guestlist watch --stop-timeout 0              enforce on every engine event
  guestlist restore                             what removed containers can come back
  guestlist show web --format compose           the recorded web as a compose service
  guestlist guard --listen unix:///run/guestlist/docker.sock   refuse what enforce would undo
  guestlist enforce --metrics-file /var/lib/node_exporter/textfile_collector/guestlist.prom";

/// Keep a Docker host running exactly the containers on its list.
#[derive(Debug, Parser)]
#[command(name = "guestlist", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// State file [default: <user data dir>/guestlist/state.json]
    #[arg(long, global = true, env = "GUESTLIST_STATE", value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Engine endpoint, e.g. unix:///var/run/docker.sock or tcp://127.0.0.1:2375
    /// [default: DOCKER_HOST, else unix:///var/run/docker.sock]
    #[arg(
        long,
        global = true,
        env = "DOCKER_HOST",
        value_name = "URL",
        hide_env_values = true
    )]
    pub host: Option<String>,

    /// Audit log: every action, and the full inspect of every container before it is removed
    /// [default: <user data dir>/guestlist/audit.jsonl]
    #[arg(long, global = true, env = "GUESTLIST_AUDIT_LOG", value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// Keep the lock and the restart history here instead of beside the state file (for a
    /// read-only state, such as a Kubernetes ConfigMap)
    #[arg(long, global = true, env = "GUESTLIST_RUN_DIR", value_name = "DIR")]
    pub run_dir: Option<PathBuf>,

    /// How long to wait for another guestlist that is acting on the same state file
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,

    /// More log detail (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log detail (-q warnings and errors only, -qq errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// Log lines as text or as JSON objects (one per line)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Use a state file taken on another kind of engine (Docker, Podman) than the one at
    /// --host: what each reports of a container differs, so a pass may replace containers
    #[arg(long, global = true)]
    pub any_engine: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record the containers running now as the list (or add/refresh the named ones)
    #[command(after_help = EXIT_CODES)]
    Snapshot(SnapshotArgs),
    /// Drop containers from the list (they become extras)
    #[command(after_help = EXIT_CODES)]
    Forget(ForgetArgs),
    /// Show what drifted from the list; exit 1 on drift
    #[command(after_help = EXIT_CODES)]
    Diff(DiffArgs),
    /// Do one pass: recreate or start what is missing, stop and remove what is not allowed
    #[command(after_help = EXIT_CODES)]
    Enforce(EnforceArgs),
    /// Enforce continuously: a pass on every relevant engine event, and a full resync
    /// every --resync; logs every action to stderr
    #[command(after_help = EXIT_CODES)]
    Watch(WatchArgs),
    /// Print recorded containers as the docker commands that recreate them, a compose file,
    /// or JSON
    #[command(after_help = EXIT_CODES)]
    Show(ShowArgs),
    /// Show what the state file allows (no engine needed)
    #[command(after_help = EXIT_CODES)]
    List(ListArgs),
    /// Check a state file without asking the engine: every entry's config, host_config and
    /// networks against what a create request can carry (for CI, before a list ships)
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Put removed containers back on the list from the audit log (without names: list them)
    #[command(after_help = EXIT_CODES)]
    Restore(RestoreArgs),
    /// Refuse at the engine's API what enforce would undo: as a socket proxy in front of the
    /// engine (--listen), or as a Docker authorization plugin (--plugin)
    #[command(after_help = EXIT_CODES)]
    Guard(GuardArgs),
    /// Print a shell completion script (e.g. `guestlist completions bash > /etc/bash_completion.d/guestlist`)
    Completions(CompletionsArgs),
    /// Print the manual page, or write it and one page per command into a directory
    /// (e.g. `guestlist man --dir /usr/local/share/man/man1`)
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write guestlist.1 and guestlist-<command>.1 here instead of printing guestlist.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Manage only containers with this label (label=KEY or label=KEY=VALUE; repeat to require
    /// all). Stored in the state: later passes never see or touch anything outside it
    #[arg(long = "scope", value_name = "SELECTOR", conflicts_with = "names")]
    pub scope: Vec<LabelSelector>,

    /// Tolerate extra containers matching a rule (name=GLOB, image=GLOB, label=KEY[=VALUE]):
    /// they are neither removed nor restored
    #[arg(long = "allow", value_name = "RULE", conflicts_with = "names")]
    pub allow: Vec<AllowRule>,

    /// Record stopped containers too (recreated when deleted, but not started)
    #[arg(long)]
    pub all: bool,

    /// Believe this orchestrator's labels on this host (kubernetes, nomad; repeatable): the
    /// containers they claim are its own. Found by itself when its containers run now; swarm
    /// is believed wherever the engine reports an active swarm
    #[arg(long = "orchestrator", value_name = "NAME", conflicts_with = "names")]
    pub orchestrators: Vec<Orchestrator>,

    /// Overwrite an existing state file
    #[arg(long, conflicts_with = "names")]
    pub force: bool,

    /// Add or refresh only these containers in the existing state
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Containers to drop from the list
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// run: `docker create`, `docker network connect` and `docker start` lines a shell runs
    /// unchanged; compose: a compose file with one service each; json: the records as stored
    #[arg(long, value_enum, default_value_t = ShowFormat::Run)]
    pub format: ShowFormat,

    /// Containers on the list
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Run,
    Compose,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The state file to check [default: --state, else the default state file]
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Containers to put back on the list as they were when last removed
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct EnforceArgs {
    #[command(flatten)]
    pub pass: PassArgs,

    /// Write metrics of this pass here (Prometheus text format, replaced atomically), e.g. into
    /// node_exporter's textfile collector directory; written whether the pass succeeds or not
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub pass: PassArgs,

    /// Run a full pass at least this often, whatever the events say (e.g. 5m, 30s)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_period)]
    pub resync: std::time::Duration,

    /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9617)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("front").required(true).args(["listen", "plugin"]))]
pub struct GuardArgs {
    /// Serve the engine's API at this socket (unix:///PATH), refusing what the list forbids and
    /// forwarding the rest to the engine at --host; point clients' DOCKER_HOST here
    #[arg(long, value_name = "URL")]
    pub listen: Option<String>,

    /// Serve as the Docker authorization plugin NAME (dockerd --authorization-plugin=NAME)
    #[arg(long, value_name = "NAME")]
    pub plugin: Option<String>,

    /// The plugin's socket [default: /run/docker/plugins/NAME.sock]
    #[arg(long, value_name = "PATH", requires = "plugin")]
    pub socket: Option<PathBuf>,

    /// Let this group (name or gid) use the proxy's socket (mode 0660) [default: only the
    /// guard's user (0600)]
    #[arg(long, value_name = "GROUP", requires = "listen")]
    pub socket_group: Option<String>,

    /// Log, audit and count what would be refused, and refuse nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Serve Prometheus metrics (guestlist_refused_total) on http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// What `enforce` and `watch` share: how one pass acts.
#[derive(Debug, Args)]
pub struct PassArgs {
    /// Print the plan and change nothing (exits like diff)
    #[arg(long)]
    pub dry_run: bool,

    /// Grace period for every stop before the container is killed, overriding each
    /// container's own (e.g. 10s, 1m; 0 kills at once) [default: each container is stopped as
    /// `docker stop` stops it: with its own stop signal and its own --stop-timeout, else the
    /// engine's default, 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_timeout: Option<std::time::Duration>,

    /// Do nothing at all if the pass would remove or replace more than N containers
    /// [default: 10; 0 when the list is empty and has no scope]
    #[arg(long, value_name = "N")]
    pub max_removals: Option<usize>,

    /// Longest wait between starts of a container that keeps dying (waits start at 1s and
    /// double; they reset once it stays up 10s)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_period)]
    pub max_backoff: std::time::Duration,

    /// After a pass that acted, failed, was held back by --max-removals or left drift, POST
    /// a JSON notification to URL (repeatable; Slack, Mattermost and Rocket.Chat incoming
    /// webhooks show its `text`). A situation that lasts is told once, not at every pass
    #[arg(
        long,
        value_name = "URL",
        env = "GUESTLIST_NOTIFY",
        hide_env_values = true,
        value_parser = parse_receivers
    )]
    pub notify: Vec<Receivers>,

    /// Tell a situation that lasts (a failure, a crash loop, a refused pass, drift a dry run
    /// found) again at most this often
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_period)]
    pub notify_repeat: std::time::Duration,
}

/// The `--log-format` of a command line that did not parse, as far as it can be read: a usage
/// error is told in the shape the caller asked for. Read from the words themselves, since clap
/// stops at the first one it cannot place (`enforce --bogus --log-format json`).
pub fn log_format_asked(args: impl IntoIterator<Item = std::ffi::OsString>) -> LogFormat {
    let mut asked = LogFormat::Text;
    let mut words = args.into_iter().skip(1);
    while let Some(word) = words.next() {
        let value = match word.to_str() {
            Some("--") => break,
            Some("--log-format") => words.next(),
            Some(w) => w.strip_prefix("--log-format=").map(Into::into),
            None => None,
        };
        if let Some(format) =
            value.and_then(|v| LogFormat::from_str(&v.to_string_lossy(), false).ok())
        {
            asked = format;
        }
    }
    asked
}

/// One `--notify` value (or `GUESTLIST_NOTIFY`): one or more http or https URLs, several
/// separated by a comma before `http://` or `https://` (so a comma inside a URL, `?ids=1,2`,
/// stays in it), or nothing (set empty by a compose file or a unit that passes it through).
/// A URL is a credential: a value that does not parse is kept as the reason only, and told
/// when the notifier is made (`Receivers::urls`), never with the value itself (clap would
/// print the value in its own error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receivers(pub Vec<Result<reqwest::Url, String>>);

fn parse_receivers(text: &str) -> Result<Receivers, String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let next = [",http://", ",https://"]
            .iter()
            .filter_map(|sep| rest.find(sep))
            .min()
            .unwrap_or(rest.len());
        parts.push(rest[..next].trim());
        rest = rest.get(next + 1..).unwrap_or_default();
    }
    Ok(Receivers(parts.into_iter().map(receiver).collect()))
}

fn receiver(text: &str) -> Result<reqwest::Url, String> {
    // Only what comes before `://` may be shown: the rest may hold a password or a token.
    let scheme = text.split_once("://").map_or("", |(s, _)| s);
    let shown = match scheme.chars().all(|c| c.is_ascii_alphanumeric()) && !scheme.is_empty() {
        true => format!("a value starting with {scheme}://"),
        false => "a value".to_string(),
    };
    let url = reqwest::Url::parse(text).map_err(|e| format!("{shown} is not a URL ({e})"))?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(_)) => Ok(url),
        _ => Err(format!("{shown} is not an http:// or https:// URL")),
    }
}

impl Receivers {
    /// Every URL, or the first value that is none (its reason, the value left out).
    pub fn urls(all: &[Receivers]) -> Result<Vec<reqwest::Url>, String> {
        all.iter().flat_map(|r| r.0.iter().cloned()).collect()
    }

    /// Whether some value was given that names no receiver at all (`--notify ''`).
    pub fn any_empty(all: &[Receivers]) -> bool {
        all.iter().any(|r| r.0.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// A humantime period that must not be zero (a zero resync would spin).
fn parse_period(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0 (examples: 30s, 5m)".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (examples: 30s, 5m)")),
    }
}

/// humantime, plus a bare `0` (kill at once), which is what people type.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if text.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 10s, 1m30s, 0)"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("guestlist").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn only_http_and_https_urls_are_receivers() {
        for bad in [
            "ftp://x/y",
            "file:///tmp/x",
            "hooks.slack.com/services/x",
            "mailto:a@b",
        ] {
            assert!(parse_receivers(bad).unwrap().0[0].is_err(), "{bad}");
        }
        let one = parse_receivers(" https://hooks.slack.com/services/T/B/X ").unwrap();
        assert_eq!(one.0.len(), 1);
        assert!(one.0[0].is_ok());
        assert_eq!(parse_receivers(""), Ok(Receivers(Vec::new())));
    }

    #[test]
    fn a_url_is_never_shown_in_an_error_and_a_comma_inside_one_stays() {
        let bad = parse_receivers("https://user:s3cret@host:99999/hook?token=abc").unwrap();
        let reason = bad.0[0].clone().unwrap_err();
        assert!(
            !reason.contains("s3cret") && !reason.contains("abc"),
            "{reason}"
        );
        assert!(reason.contains("https://"), "{reason}");
        let hidden = parse_receivers("s3cret-token-only").unwrap();
        assert!(!hidden.0[0].clone().unwrap_err().contains("s3cret"));
        let listed = parse_receivers("https://a/x?ids=1,2,https://b/y,http://c/z").unwrap();
        let urls = Receivers::urls(&[listed]).unwrap();
        let shown: Vec<&str> = urls.iter().map(|u| u.as_str()).collect();
        assert_eq!(shown, ["https://a/x?ids=1,2", "https://b/y", "http://c/z"]);
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn snapshot_takes_scopes_rules_and_names() {
        let cli = parse(&[
            "snapshot",
            "--scope",
            "label=a",
            "--scope",
            "label=b=1",
            "--allow",
            "name=x*",
            "--all",
        ]);
        let Command::Snapshot(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.scope.len(), 2);
        assert_eq!(args.allow.len(), 1);
        assert!(args.all);
        let Command::Snapshot(args) = parse(&["snapshot", "web", "db"]).command else {
            panic!()
        };
        assert_eq!(args.names, ["web", "db"]);
    }

    #[test]
    fn names_cannot_be_combined_with_scope_or_force() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["guestlist", "snapshot", "--scope", "label=a", "web"]).is_err());
        assert!(parse(&["guestlist", "snapshot", "--force", "web"]).is_err());
    }

    #[test]
    fn globals_and_durations_parse() {
        let cli = parse(&[
            "--state",
            "/tmp/s.json",
            "--host",
            "unix:///x.sock",
            "enforce",
            "--stop-timeout",
            "0",
        ]);
        assert_eq!(cli.state.unwrap().to_str(), Some("/tmp/s.json"));
        assert_eq!(cli.host.as_deref(), Some("unix:///x.sock"));
        let Command::Enforce(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.pass.stop_timeout, Some(std::time::Duration::ZERO));
        assert_eq!(args.pass.max_backoff.as_secs(), 300);
        let Command::Enforce(args) = parse(&["enforce", "--stop-timeout", "1m30s"]).command else {
            panic!()
        };
        assert_eq!(
            args.pass.stop_timeout,
            Some(std::time::Duration::from_secs(90))
        );
        let Command::Enforce(args) = parse(&["enforce"]).command else {
            panic!()
        };
        assert_eq!(
            args.pass.stop_timeout, None,
            "each container's own grace period"
        );
        let Command::Watch(args) = parse(&[
            "watch",
            "--resync",
            "30s",
            "--max-backoff",
            "1m",
            "--dry-run",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(args.resync.as_secs(), 30);
        assert_eq!(args.pass.max_backoff.as_secs(), 60);
        assert!(args.pass.dry_run);
        let Command::Diff(args) = parse(&["diff", "--format", "json"]).command else {
            panic!()
        };
        assert_eq!(args.format, ReportFormat::Json);
    }

    #[test]
    fn the_log_format_is_read_from_a_command_line_that_does_not_parse() {
        let asked = |line: &str| log_format_asked(line.split(' ').map(Into::into));
        assert_eq!(
            asked("guestlist enforce --bogus --log-format json"),
            LogFormat::Json
        );
        assert_eq!(
            asked("guestlist --log-format=json frobnicate"),
            LogFormat::Json
        );
        assert_eq!(
            asked("guestlist --log-format json --log-format text x"),
            LogFormat::Text
        );
        assert_eq!(asked("guestlist --log-format yaml x"), LogFormat::Text);
        assert_eq!(
            asked("guestlist snapshot -- --log-format json"),
            LogFormat::Text
        );
        assert_eq!(asked("guestlist --log-format"), LogFormat::Text);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["guestlist", "enforce", "--stop-timeout", "soon"]).is_err());
        assert!(parse(&["guestlist", "snapshot", "--scope", "team=web"]).is_err());
        assert!(parse(&["guestlist", "diff", "--format", "yaml"]).is_err());
        assert!(parse(&["guestlist", "watch", "--resync", "0s"]).is_err());
    }
}
