//! Notifications (`--notify URL`): after a pass that acted, failed, was held back by
//! --max-removals or left drift, one JSON document to each receiver; a quiet pass sends nothing,
//! and an unresolved situation is told once (`situation`), not at every pass.
//!
//! Report stage: it runs after the pass acted, and nothing it does changes the pass or its
//! exit code. What was told lives in a runtime file beside the restart history (0600, written
//! atomically); a damaged one is a warning and is started afresh.

mod deliver;
mod message;
mod situation;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde_json::Value;

pub use deliver::{Receiver, BUDGET};

pub use message::Host;
use situation::{Condition, Conditions, Memory, PASS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::plan::{Action, ActionResult, Held, PassEnd, Plan};

/// One action of the pass, as the notification tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// create, start, replace, remove.
    pub verb: &'static str,
    pub container: String,
    /// What was wrong with it: `missing`, `stopped`, `changed Image`, `extra (image x)`.
    pub reason: String,
    /// What was done, for the text line: `created and started`, `removed (extra, image x)`.
    pub done: String,
    /// Why it failed, with its causes.
    pub error: Option<String>,
}

/// A pass held back by --max-removals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub removals: usize,
    pub limit: usize,
    pub message: String,
}

/// What one pass found and did, as much as a notification needs: owned, so `watch` can hand it
/// to the task that sends.
#[derive(Debug, Clone)]
pub struct Report {
    /// enforce or watch.
    pub command: &'static str,
    pub dry_run: bool,
    pub at: SystemTime,
    pub duration: Duration,
    pub ended: PassEnd,
    pub actions: Vec<Done>,
    /// What remains, as `diff --format json` shows it (secrets masked there); `None` when the
    /// pass could not observe.
    pub drift: Option<Value>,
    pub refused: Option<Refused>,
    /// Why the pass could not run.
    pub error: Option<String>,
    /// What is unresolved, by subject (see `situation::conditions`).
    pub conditions: Conditions,
    /// The containers on the list the pass went by: a situation that ends because its
    /// container left the list (`forget`) is not "back in sync".
    pub listed: BTreeSet<String>,
    /// Extras an allow rule tolerates now.
    pub tolerated: BTreeSet<String>,
}

/// What a pass that ran leaves for its report.
pub struct PassSeen<'a> {
    pub plan: &'a Plan,
    /// The drift the host showed when read again after acting (`enforce`), if it was.
    pub verified: Option<&'a Plan>,
    pub held: &'a [Held],
    /// Containers guestlist started again without their staying up.
    pub dying: &'a BTreeSet<String>,
    pub results: &'a [ActionResult],
    pub refused: Option<Refused>,
    /// The names on the list.
    pub listed: &'a BTreeSet<String>,
}

impl Report {
    /// The report of a pass that ran.
    pub fn of_pass(
        command: &'static str,
        dry_run: bool,
        seen: &PassSeen<'_>,
        ended: PassEnd,
        duration: Duration,
    ) -> Report {
        let remaining = match seen.verified {
            Some(plan) => plan.clone(),
            None => situation::remaining(seen.plan, seen.results),
        };
        let mut conditions = situation::conditions(&remaining, seen.results, seen.held, seen.dying);
        if let Some(r) = &seen.refused {
            let condition = format!("over --max-removals: {} of {}", r.removals, r.limit);
            conditions.insert(PASS.into(), Condition::new("refused", condition));
        }
        Report {
            command,
            dry_run,
            at: SystemTime::now(),
            duration,
            ended,
            actions: seen.results.iter().map(done).collect(),
            drift: Some(crate::report::plan_json(&remaining)),
            refused: seen.refused.clone(),
            error: None,
            conditions,
            listed: seen.listed.clone(),
            tolerated: remaining.tolerated.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// The report of a pass that could not run.
    pub fn could_not_run(command: &'static str, dry_run: bool, error: &anyhow::Error) -> Report {
        Report {
            command,
            dry_run,
            at: SystemTime::now(),
            duration: Duration::ZERO,
            ended: PassEnd::Error,
            actions: Vec::new(),
            drift: None,
            refused: None,
            error: Some(crate::error::cause(error)),
            conditions: [(
                PASS.to_string(),
                Condition::new("error", "the pass could not run"),
            )]
            .into(),
            listed: BTreeSet::new(),
            tolerated: BTreeSet::new(),
        }
    }

    /// A pass that acted and then could not check the host.
    pub fn could_not_finish(&mut self, error: &anyhow::Error) {
        self.ended = PassEnd::Error;
        self.error = Some(crate::error::cause(error));
        let condition = Condition::new("error", "the pass could not finish");
        self.conditions.insert(PASS.into(), condition);
    }

    fn in_sync(&self) -> bool {
        self.ended == PassEnd::InSync
    }

    fn ended_word(&self) -> &'static str {
        crate::ops::metrics::label(self.ended)
    }
}

fn done(r: &ActionResult) -> Done {
    let action = &r.action;
    // Beside the names of other containers, "extra" says why this one went.
    let done = match action {
        Action::Remove { image, .. } => format!("removed (extra, image {image})"),
        _ => crate::report::done(action),
    };
    Done {
        verb: action.verb(),
        container: action.name().to_string(),
        reason: action.condition(),
        done,
        error: r.outcome.as_ref().err().map(|e| format!("{e:#}")),
    }
}

/// Where notifications go, how often a lasting situation is told again, and where what was
/// told is kept.
pub struct Notifier {
    receivers: deliver::Receivers,
    repeat: Duration,
    memory_path: PathBuf,
    host: Host,
}

/// How telling went: receivers that did not take it, and what the operator should hear.
#[derive(Debug, Default)]
pub struct Telling {
    pub failed: usize,
    pub warnings: Vec<String>,
}

impl Notifier {
    /// `None` without receivers: nothing to tell anyone.
    pub fn new(
        receivers: Vec<Receiver>,
        repeat: Duration,
        memory_path: PathBuf,
        endpoint: &str,
    ) -> Option<Notifier> {
        if receivers.is_empty() {
            return None;
        }
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Some(Notifier {
            receivers: deliver::Receivers::new(receivers),
            repeat,
            memory_path,
            host: Host {
                hostname,
                endpoint: endpoint.to_string(),
            },
        })
    }

    /// Tell what `report` has to tell, if anything: at most `BUDGET`, never an error.
    pub async fn tell(&self, report: &Report) -> Telling {
        let mut telling = Telling::default();
        let (memory, damaged) = match load(&self.memory_path) {
            Ok(memory) => (memory, false),
            Err(e) => {
                telling.warnings.push(format!("{e:#}; starting it afresh"));
                (Memory::default(), true)
            }
        };
        let observed = report.drift.is_some();
        let review = situation::review(
            &memory,
            &report.conditions,
            observed,
            report.at,
            self.repeat,
        );
        let mut kept = review.memory;
        if message::worth_telling(report, &review.news) {
            let body = message::body(&self.host, report, &review.news);
            let answers = self.receivers.post(&body).await;
            for (receiver, answer) in self.receivers.list.iter().zip(&answers) {
                if let Err(e) = answer {
                    telling.failed += 1;
                    telling
                        .warnings
                        .push(format!("cannot notify {}: {e}", receiver.shown));
                }
            }
            // Told if anyone took it; otherwise the next pass tells it again, with the time
            // each situation began.
            if !answers.iter().any(Result::is_ok) {
                kept = review.untold;
            }
        }
        if damaged || kept != memory {
            let path = self.memory_path.clone();
            let saved = tokio::task::spawn_blocking(move || save(&path, &kept)).await;
            if let Err(e) = saved.map_err(anyhow::Error::from).and_then(|r| r) {
                telling
                    .warnings
                    .push(format!("{e:#}; what was told may be told again"));
            }
        }
        telling
    }
}

/// Reports waiting for `watch`'s sender. Each takes at most `BUDGET` to tell, so when this many
/// wait the receivers are failing; a report dropped then loses its actions, not its situations,
/// which the next report carries again.
const WAITING: usize = 4;

/// `watch`'s notifications: told by a task of its own, so a slow receiver delays no pass, from
/// a queue of at most `WAITING` reports, so a dead one cannot grow memory.
pub struct Queue {
    reports: mpsc::Sender<Report>,
    sender: tokio::task::JoinHandle<()>,
    /// Whether reports are being dropped (warned once per run of drops).
    dropping: AtomicBool,
    on_failed: Arc<dyn Fn(u64) + Send + Sync>,
}

impl Queue {
    /// Start the sender; `on_failed` counts notifications that did not reach a receiver.
    pub fn start(notifier: Notifier, on_failed: Arc<dyn Fn(u64) + Send + Sync>) -> Queue {
        let (reports, mut waiting) = mpsc::channel::<Report>(WAITING);
        let counted = Arc::clone(&on_failed);
        let sender = tokio::spawn(async move {
            while let Some(report) = waiting.recv().await {
                let telling = notifier.tell(&report).await;
                for warning in &telling.warnings {
                    tracing::warn!("{warning}");
                }
                counted(telling.failed as u64);
            }
        });
        Queue {
            reports,
            sender,
            dropping: AtomicBool::new(false),
            on_failed,
        }
    }

    /// Hand a report to the sender, or drop it if too many wait.
    pub fn push(&self, report: Report) {
        match self.reports.try_send(report) {
            Ok(()) => self.dropping.store(false, Ordering::Relaxed),
            Err(_) => {
                (self.on_failed)(1);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "notifications are not getting through: dropping the report of this \
                         pass ({WAITING} wait already)"
                    );
                }
            }
        }
    }

    /// Tell what waits, for at most `within`: a shutdown must not hang on a dead receiver.
    pub async fn finish(self, within: Duration) {
        drop(self.reports);
        let mut sender = self.sender;
        if tokio::time::timeout(within, &mut sender).await.is_err() {
            sender.abort();
            tracing::info!("left notifications untold at shutdown: the receivers did not answer");
        }
    }
}

fn load(path: &std::path::Path) -> Result<Memory> {
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Memory::default()),
        read => read.with_context(|| format!("cannot read {}", path.display()))?,
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "ignoring the damaged notification memory {}",
            path.display()
        )
    })
}

fn save(path: &std::path::Path, memory: &Memory) -> Result<()> {
    let json = serde_json::to_vec_pretty(memory)?;
    crate::ops::files::write_private(path, &json)
        .with_context(|| format!("cannot write the notification memory {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::Url;
    use std::sync::atomic::AtomicU64;

    fn report() -> Report {
        Report {
            command: "watch",
            dry_run: false,
            at: SystemTime::now(),
            duration: Duration::ZERO,
            ended: PassEnd::Drift,
            actions: vec![Done {
                verb: "remove",
                container: "intruder".into(),
                reason: "extra (image busybox)".into(),
                done: "removed (extra, image busybox)".into(),
                error: None,
            }],
            drift: Some(serde_json::json!({})),
            refused: None,
            error: None,
            conditions: Conditions::new(),
            listed: BTreeSet::new(),
            tolerated: BTreeSet::new(),
        }
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_holds_a_bounded_queue_and_drops_the_rest() {
        // Accepts connections and never reads or answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(
            vec![Receiver::new(url)],
            Duration::from_secs(3600),
            dir.path().join("notified.json"),
            "unix:///var/run/docker.sock",
        )
        .unwrap();
        let failed = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&failed);
        let queue = Queue::start(
            notifier,
            Arc::new(move |n| {
                counted.fetch_add(n, Ordering::Relaxed);
            }),
        );
        // The sender takes the first report; the queue holds WAITING more.
        queue.push(report());
        tokio::task::yield_now().await;
        for _ in 0..20 {
            queue.push(report());
        }
        assert_eq!(failed.load(Ordering::Relaxed), 20 - WAITING as u64);
        queue.finish(Duration::from_millis(100)).await;
        drop(listener);
    }
}
