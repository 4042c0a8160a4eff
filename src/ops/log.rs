//! Logging to stderr through `tracing`: how much (`-v`, `-q`), in which shape (`--log-format`),
//! with colour only for a person at a terminal, and without a second timestamp under journald.

use std::io::IsTerminal;

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

/// Install the subscriber for this process.
pub fn init(level: Level, format: LogFormat, sink: &Sink) {
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

    #[test]
    fn the_journal_is_recognised_by_device_and_inode_only() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 99));
        assert!(!journal_stream_matches("garbage", 8, 12345));
    }
}
