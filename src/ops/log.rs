//! Logging to stderr through `tracing`: how much (`-v`, `-q`), in which shape (`--log-format`),
//! with colour only for a person at a terminal, and without a second timestamp under journald.
//!
//! Everything else that reaches stderr goes through here too (a warning, the fatal error, a
//! usage error, a panic): a person reads them as `guestlist: ...` lines with their hint, and
//! with `--log-format json` every line on stderr is one JSON object of the same shape as the
//! log lines (`timestamp`, `level`, `message`, and `hint` when there is a next step), so a
//! log shipper never meets a line it cannot parse.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::Level;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-11-25T13:28:40.982514Z  INFO + web: missing: created and started`
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The level for `-v` given `verbose` times and `-q` given `quiet` times; INFO by default.
pub fn level(verbose: u8, quiet: u8) -> Level {
    match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => Level::ERROR,
        -1 => Level::WARN,
        0 => Level::INFO,
        1 => Level::DEBUG,
        _ => Level::TRACE,
    }
}

/// Where stderr goes decides the decoration: colour for a terminal unless NO_COLOR is set
/// (no-color.org: any value), and no timestamp when journald already stamps every line.
pub struct Sink {
    pub ansi: bool,
    pub timestamps: bool,
}

impl Sink {
    pub fn detect() -> Sink {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Sink {
            ansi: std::io::stderr().is_terminal() && !no_color,
            timestamps: !stderr_is_journal(),
        }
    }
}

/// systemd sets JOURNAL_STREAM to `<device>:<inode>` of the stream it connects to the journal;
/// it is ours only if stderr is still that very stream (not redirected by a wrapper script).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    journal_stream_matches(&stream.to_string_lossy(), stat.st_dev, stat.st_ino)
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The shape and the level chosen for this process, once `init` ran.
static CHOSEN: OnceLock<(LogFormat, Level)> = OnceLock::new();

/// Install the subscriber for this process, and with `--log-format json` a panic hook that
/// writes a panic as one JSON line too. The first call wins.
pub fn init(level: Level, format: LogFormat, sink: &Sink) {
    if CHOSEN.set((format, level)).is_err() {
        return;
    }
    if format == LogFormat::Json {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let payload = info.payload();
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            tracing::error!(
                panic = true,
                location,
                hint = "this is a bug in guestlist: please report it with this line",
                "panicked: {what}"
            );
        }));
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(sink.ansi);
    match (format, sink.timestamps) {
        (LogFormat::Text, true) => builder.init(),
        (LogFormat::Text, false) => builder.without_time().init(),
        // A JSON line keeps its timestamp: shippers parse it, and journald's is a field apart.
        (LogFormat::Json, _) => builder.json().flatten_event(true).init(),
    }
}

/// Something the operator should hear that is not an event of the work itself (a receiver
/// that did not take a notification, unreadable audit lines): `guestlist: warning: ...` for a
/// person, a WARN line in JSON. Silent under `-qq`, like every warning.
pub fn warning(message: &str) {
    tell(Level::WARN, message, None);
}

/// What stopped the command, with the next step if the error carries one.
pub fn fatal(err: &anyhow::Error) {
    let hint = crate::error::hint(err);
    tell(Level::ERROR, &crate::error::cause(err), hint.as_deref());
}

/// A refusal the command reports and survives (a pass held back by `--max-removals`), with the
/// next step.
pub fn refusal(message: &str, hint: &str) {
    tell(Level::ERROR, message, Some(hint));
}

/// A usage error from the command line, told in the shape `--log-format` asks for, as far
/// as the command line that did not parse can be read. Help and `--version` are no errors and
/// go to stdout as they are. Ends with clap's exit code (2 for a usage error).
pub fn usage_error(err: &clap::Error) -> std::process::ExitCode {
    let code = std::process::ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
    let format = crate::cli::log_format_asked(std::env::args_os());
    if !err.use_stderr() || format == LogFormat::Text {
        let _ = err.print();
        return code;
    }
    init(Level::ERROR, format, &Sink::detect());
    let rendered = err.render().to_string();
    let (first, rest) = rendered
        .trim()
        .split_once('\n')
        .unwrap_or((rendered.trim(), ""));
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let rest = rest.trim();
    tell(Level::ERROR, message, (!rest.is_empty()).then_some(rest));
    code
}

fn tell(level: Level, message: &str, hint: Option<&str>) {
    let (format, max) = CHOSEN
        .get()
        .copied()
        .unwrap_or((LogFormat::Text, Level::INFO));
    // Level::ERROR is the least of all: a warning is heard unless the level is ERROR alone.
    if level > max {
        return;
    }
    match (format, level == Level::ERROR) {
        (LogFormat::Json, true) => tracing::error!(hint, "{message}"),
        (LogFormat::Json, false) => tracing::warn!(hint, "{message}"),
        (LogFormat::Text, error) => {
            let label = if error { "" } else { "warning: " };
            let next = hint.map(|h| format!("\nhint: {h}")).unwrap_or_default();
            eprintln!("guestlist: {label}{message}{next}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_and_quiet_move_the_level_from_info() {
        assert_eq!(level(0, 0), Level::INFO);
        assert_eq!(level(1, 0), Level::DEBUG);
        assert_eq!(level(3, 0), Level::TRACE);
        assert_eq!(level(0, 1), Level::WARN);
        assert_eq!(level(0, 5), Level::ERROR);
        assert_eq!(level(1, 1), Level::INFO);
    }

    /// Set in the child process of the test below, which installs the JSON shape and panics.
    const PANIC_CHILD: &str = "GUESTLIST_TEST_PANIC_CHILD";

    /// A panic cannot be caught in process without changing the hook of every test: the test
    /// runs itself again as a child that installs the JSON shape and panics, and reads the
    /// child's stderr, where nothing but the panic is written.
    #[test]
    #[allow(clippy::unwrap_used, clippy::panic)]
    fn a_panic_under_json_is_one_json_line() {
        let name = "ops::log::tests::a_panic_under_json_is_one_json_line";
        if std::env::var_os(PANIC_CHILD).is_some() {
            let sink = Sink {
                ansi: false,
                timestamps: true,
            };
            init(Level::INFO, LogFormat::Json, &sink);
            panic!("the invariant \"x\" broke\non two lines");
        }
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(PANIC_CHILD, "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        assert!(!child.status.success(), "the child did not panic");
        let stderr = String::from_utf8(child.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["panic"], true, "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        let message = line["message"].as_str().unwrap();
        assert!(
            message.contains("the invariant \"x\" broke\non two lines"),
            "{line}"
        );
        assert!(
            line["location"].as_str().unwrap().contains("log.rs"),
            "{line}"
        );
    }

    #[test]
    fn the_journal_is_recognised_by_device_and_inode_only() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 99));
        assert!(!journal_stream_matches("garbage", 8, 12345));
    }
}
