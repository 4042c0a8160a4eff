//! Accepting connections on a listener that serves until the process ends (the metrics
//! endpoint, the guard's sockets): a failed accept (out of file descriptors, say) is waited out
//! and said once per run of failures, never a busy loop that starves the rest, nor ten log
//! lines a second.

use std::time::Duration;

/// How long to wait after a failed accept before the next.
const RETRY: Duration = Duration::from_millis(100);

pub struct Failures {
    /// Who is accepting, for the log: `metrics`, `guard`.
    what: &'static str,
    failing: bool,
}

impl Failures {
    pub fn new(what: &'static str) -> Failures {
        Failures {
            what,
            failing: false,
        }
    }

    /// An accept succeeded: the next failure is news again.
    pub fn ended(&mut self) {
        self.failing = false;
    }

    /// An accept failed: say so (once per run of failures) and wait before the next.
    pub async fn wait_after(&mut self, error: std::io::Error) {
        let what = self.what;
        match std::mem::replace(&mut self.failing, true) {
            false => tracing::warn!("{what}: cannot accept a connection: {error}"),
            true => tracing::debug!("{what}: accept failed again: {error}"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
