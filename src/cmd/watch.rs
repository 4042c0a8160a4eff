//! `guestlist watch`: enforce continuously. A pass runs on every burst of relevant container
//! events, at least every `--resync`, and when a held-back start comes due; nothing runs in
//! between (no polling).
//!
//! The engine keeps no durable event history and drops events for slow readers, so events are
//! only a trigger: every pass observes the whole scope again. After every (re)connect the
//! subscription starts from the engine's clock at connect time and a full pass follows, so
//! nothing that happened in between is missed. Engine errors never end the watch: it logs the
//! outage once, reconnects with backoff, and resyncs as soon as the engine answers. A pass that
//! fails while the engine answers is another matter (kube-runtime's error policy): it is logged
//! as such and tried again after a growing delay, on the same connection.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use super::pass::{self, Acted, Pass, PassOptions};
use super::{Outcome, Settings, Shutdown};
use crate::cli::WatchArgs;
use crate::engine::{Engine, Event};
use crate::error;
use crate::notify;
use crate::ops::backoff::Policy;
use crate::ops::metrics::{self, Metrics, PassFacts};
use crate::plan::PassEnd;
use crate::record::state::State;
use crate::report;

/// A burst of events is over when the engine has been quiet this long. No longer wait is
/// needed for `docker rm -f` (die, then destroy ~100 ms later): in between, the container is
/// `removing`, which the planner leaves for the pass after the destroy.
const QUIET: Duration = Duration::from_millis(20);
/// A steady stream of events delays a pass by at most this much.
const MAX_BATCH: Duration = Duration::from_secs(1);
/// On SIGTERM, a pass in flight gets this long to finish before it is abandoned (every pass
/// is idempotent: the next run picks up where it stopped).
const FINISH_GRACE: Duration = Duration::from_millis(700);
/// After waiting --lock-timeout in vain for another guestlist, the next attempt comes this soon.
const LOCK_RETRY: Duration = Duration::from_secs(5);
/// Events waiting to be read. Any one of them only starts a batch, so when this many wait a
/// pass is due anyway and more are dropped here rather than held in memory.
const EVENTS_WAITING: usize = 64;
/// Delays after a pass that failed while the engine answers: 1 s, doubling up to 1 min (and
/// never past the resync period).
const PASS_RETRY: Policy = Policy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(60),
    reset_after: Duration::ZERO,
};
/// Reconnection delays: 100 ms, doubling up to 5 s (the crash-loop schedule, other numbers).
const RECONNECT: Policy = Policy {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
    reset_after: Duration::ZERO,
};

pub async fn run(settings: &Settings, args: WatchArgs) -> Result<Outcome> {
    let mut state = settings.load_state()?;
    let options = PassOptions::from_args(&args.pass, settings.audit_path.clone(), false);
    let mut shutdown = Shutdown::install()?;
    let mut health = Health::default();
    let metrics = match args.metrics_listen {
        Some(address) => Some(serve_metrics(address).await?),
        None => None,
    };
    let notices = settings.notifier(&args.pass)?.map(|notifier| {
        let metrics = metrics.clone();
        notify::Queue::start(
            notifier,
            Arc::new(move |n| {
                if let Some(metrics) = &metrics {
                    metrics.count_failed_notifications(n);
                }
            }),
        )
    });
    info!(
        "watching {} allowed containers at {} (state {}); full resync every {}",
        state.containers.len(),
        settings.endpoint,
        settings.state_path.display(),
        humantime::format_duration(args.resync)
    );
    loop {
        let ended = match settings.connect().await {
            Ok(engine) => {
                // The wrong kind of engine is a mistake to fix, not an outage to wait out.
                settings.check_engine(&state, &engine)?;
                let mut session = Session {
                    engine: &engine,
                    settings,
                    options: &options,
                    resync: args.resync,
                    health: &mut health,
                    last_held: Vec::new(),
                    metrics: metrics.as_deref(),
                    notices: notices.as_ref(),
                    failed_passes: 0,
                    resynced: false,
                };
                session.run(&mut state, &mut shutdown).await
            }
            Err(e) => SessionEnd::Lost(e),
        };
        match ended {
            SessionEnd::Shutdown => break,
            SessionEnd::Resubscribe => continue,
            SessionEnd::Lost(e) => {
                if let Some(metrics) = &metrics {
                    metrics.record(&failed_pass());
                }
                // An engine restarting (an upgrade, a reboot) is no news; one that stays away is.
                if let Some(notices) = notices.as_ref().filter(|_| health.down_for() >= OUTAGE) {
                    notices.push(notify::Report::could_not_run("watch", options.dry_run, &e));
                }
                let delay = health.lost(&e);
                tokio::select! {
                    () = sleep(delay) => {}
                    () = shutdown.recv() => break,
                }
            }
        }
    }
    if let Some(notices) = notices {
        notices.finish(notify::BUDGET).await;
    }
    info!("stopped");
    Ok(Outcome::Clean)
}

/// Why a session with the engine ended.
enum SessionEnd {
    Shutdown,
    /// The engine does not answer (or its event stream ended); reconnect after a delay.
    Lost(anyhow::Error),
    /// The scope in the state file changed: subscribe again with the new filter.
    Resubscribe,
}

/// How long the engine must be away before a notification says so.
const OUTAGE: Duration = Duration::from_secs(30);

/// Outage bookkeeping: one log line when the engine goes away, one when it answers again.
#[derive(Default)]
struct Health {
    failures: u32,
    /// When the engine stopped answering.
    since: Option<Instant>,
}

impl Health {
    /// Note a failure; returns how long to wait before reconnecting.
    fn lost(&mut self, err: &anyhow::Error) -> Duration {
        if self.failures == 0 {
            warn!("{err:#}; reconnecting until the engine answers");
        } else {
            debug!("still unreachable: {err:#}");
        }
        self.failures = self.failures.saturating_add(1);
        self.since.get_or_insert_with(Instant::now);
        reconnect_delay(self.failures)
    }

    /// How long the engine has been away; zero while it answers.
    fn down_for(&self) -> Duration {
        self.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    fn answered(&mut self, endpoint: &str) {
        if self.failures > 0 {
            info!("the engine at {endpoint} answers again; resynced");
        }
        self.failures = 0;
        self.since = None;
    }
}

fn reconnect_delay(failures: u32) -> Duration {
    RECONNECT.delay(failures)
}

/// Events waiting to become a pass: a burst ends when the engine is quiet, or after
/// `MAX_BATCH` at the latest.
#[derive(Debug, Default)]
struct Batch {
    first: Option<Instant>,
    due: Option<Instant>,
}

impl Batch {
    fn add(&mut self, now: Instant) {
        let first = *self.first.get_or_insert(now);
        self.due = Some((now + QUIET).min(first + MAX_BATCH));
    }

    fn due(&self) -> Option<Instant> {
        self.due
    }

    fn clear(&mut self) {
        *self = Batch::default();
    }
}

/// One connection to the engine: its event subscription and the passes it triggers.
struct Session<'a> {
    engine: &'a Engine,
    settings: &'a Settings,
    options: &'a PassOptions,
    resync: Duration,
    health: &'a mut Health,
    /// What the last pass held back, so a crash loop is logged once per start, not per event.
    last_held: Vec<(String, u32)>,
    metrics: Option<&'a Metrics>,
    notices: Option<&'a notify::Queue>,
    /// Passes that failed in a row while the engine still answered.
    failed_passes: u32,
    /// Whether the first pass of this connection has run (it is logged in full).
    resynced: bool,
}

/// What the session does after a branch of its loop.
enum Next {
    /// Go on; the next pass is due at this instant.
    PassAt(Instant),
    /// End the session.
    End(SessionEnd),
}

impl Session<'_> {
    /// The loop: a signal ends it, events gather into a batch, and a pass runs when the batch
    /// or the timer (resync, a held-back start, a retry) comes due.
    async fn run(&mut self, state: &mut State, shutdown: &mut Shutdown) -> SessionEnd {
        // Subscribe before the first pass observes anything; starting from the engine's clock
        // at connect time covers the moment in between.
        let since = self.engine.connected_at.map(|t| t - Duration::from_secs(1));
        let (tx, mut events) = mpsc::channel(EVENTS_WAITING);
        let reader = tokio::spawn(forward(self.engine.events(&state.scope, since), tx));
        let _stop_reader = AbortOnDrop(reader);

        let mut batch = Batch::default();
        let mut next_pass = Instant::now();
        loop {
            let due = batch.due().map_or(next_pass, |d| d.min(next_pass));
            let next = tokio::select! {
                () = shutdown.recv() => Next::End(SessionEnd::Shutdown),
                received = events.recv() => self.event(received, &mut batch, next_pass),
                () = sleep_until(due) => {
                    batch.clear();
                    self.pass_due(state, shutdown).await
                }
            };
            match next {
                Next::PassAt(at) => next_pass = at,
                Next::End(ended) => return ended,
            }
        }
    }

    /// An event adds to the batch; an error or the end of the stream means the engine is lost.
    fn event(
        &self,
        received: Option<Result<Event>>,
        batch: &mut Batch,
        next_pass: Instant,
    ) -> Next {
        match received {
            Some(Ok(event)) => {
                debug!("event: {} {}", event.action, event.name);
                batch.add(Instant::now());
                Next::PassAt(next_pass)
            }
            Some(Err(e)) => Next::End(SessionEnd::Lost(e)),
            None => Next::End(SessionEnd::Lost(anyhow!(
                "the event stream from {} ended",
                self.engine.info.endpoint
            ))),
        }
    }

    /// Take the lock, read the list again, run a pass; a signal meanwhile ends the session.
    async fn pass_due(&mut self, state: &mut State, shutdown: &mut Shutdown) -> Next {
        // Held for the pass, not for the watch: a manual enforce or a snapshot gets its turn
        // between passes.
        let locked = match self.options.dry_run {
            true => None,
            false => tokio::select! {
                locked = self.settings.lock() => Some(locked),
                () = shutdown.recv() => return Next::End(SessionEnd::Shutdown),
            },
        };
        let _lock = match locked.transpose() {
            Ok(lock) => lock,
            Err(e) => {
                let retry = self.resync.min(LOCK_RETRY);
                let wait = humantime::format_duration(retry);
                // The next step stays with it: a read-only state directory wants --run-dir.
                let hint = error::hint(&e);
                warn!(hint, "{}; trying again in {wait}", error::cause(&e));
                return Next::PassAt(Instant::now() + retry);
            }
        };
        if reload(self.settings, state) {
            return Next::End(SessionEnd::Resubscribe);
        }
        let started = Instant::now();
        let history = self.settings.history_path();
        let pass = pass::run(self.engine, state, &history, self.options);
        tokio::pin!(pass);
        let result = tokio::select! {
            result = &mut pass => result,
            () = shutdown.recv() => {
                if timeout(FINISH_GRACE, pass).await.is_err() {
                    info!("abandoned the pass in flight; the next run completes it");
                }
                return Next::End(SessionEnd::Shutdown);
            }
        };
        match result {
            Ok(pass) => self.passed(&pass, started.elapsed()),
            Err(e) => self.pass_failed(e).await,
        }
    }

    fn passed(&mut self, pass: &Pass, took: Duration) -> Next {
        self.health.answered(&self.engine.info.endpoint);
        if std::mem::take(&mut self.failed_passes) > 0 {
            info!("a pass succeeded again");
        }
        if !std::mem::replace(&mut self.resynced, true) {
            let text = report::plan_text(&pass.plan, &pass.held);
            info!(
                "full pass at {}: {}",
                self.engine.info.endpoint,
                text.lines().last().unwrap_or_default()
            );
        }
        self.log(pass);
        if let Some(metrics) = self.metrics {
            metrics.record(&facts(pass, took));
        }
        if let Some(notices) = self.notices {
            let end = Ok(pass.end());
            notices.push(pass::report(
                "watch",
                self.options,
                Some(pass),
                None,
                &end,
                took,
            ));
        }
        let soonest = pass.held.iter().map(|h| h.wait).min();
        Next::PassAt(Instant::now() + soonest.map_or(self.resync, |w| w.min(self.resync)))
    }

    /// The error policy. A pass that failed while the engine still answers (it refused a
    /// read, the audit log cannot be written) is tried again after a growing delay on this
    /// connection; only an engine that no longer answers ends the session and reconnects.
    async fn pass_failed(&mut self, e: anyhow::Error) -> Next {
        if !self.engine.answers().await {
            return Next::End(SessionEnd::Lost(e));
        }
        if let Some(metrics) = self.metrics {
            metrics.record(&failed_pass());
        }
        if let Some(notices) = self.notices {
            notices.push(notify::Report::could_not_run(
                "watch",
                self.options.dry_run,
                &e,
            ));
        }
        self.failed_passes = self.failed_passes.saturating_add(1);
        let retry = PASS_RETRY.delay(self.failed_passes).min(self.resync);
        let hint = error::hint(&e);
        warn!(
            hint,
            "the pass failed: {}; the engine answers, so the next pass comes in {}",
            error::cause(&e),
            humantime::format_duration(retry)
        );
        Next::PassAt(Instant::now() + retry)
    }

    fn log(&mut self, pass: &Pass) {
        for warning in &pass.warnings {
            warn!("{warning}");
        }
        match &pass.acted {
            Acted::Done(results) => {
                for r in results {
                    match r.outcome {
                        Ok(_) => info!("{}", report::result_line(r)),
                        Err(_) => warn!("{}", report::result_line(r)),
                    }
                }
            }
            Acted::Refused { removals, limit } => {
                warn!("{}", pass::refusal(*removals, *limit));
                for line in report::plan_text(&pass.plan, &pass.held).lines() {
                    warn!("  {line}");
                }
            }
            Acted::Nothing if self.options.dry_run && !pass.in_sync() => {
                for line in report::plan_text(&pass.plan, &pass.held).lines() {
                    info!("dry run: {line}");
                }
            }
            Acted::Nothing => {}
        }
        let held: Vec<(String, u32)> = pass
            .held
            .iter()
            .map(|h| (h.name.clone(), h.starts))
            .collect();
        for h in &pass.held {
            if !self.last_held.contains(&(h.name.clone(), h.starts)) {
                info!("{}: {}", h.name, report::held_back(h));
            }
        }
        self.last_held = held;
    }
}

/// Bind `address` and serve the metrics there; failing to bind is fatal at start (exit 2),
/// like any other bad argument.
async fn serve_metrics(address: std::net::SocketAddr) -> Result<Arc<Metrics>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for --metrics-listen"))?;
    let metrics = Arc::new(Metrics::new(true)?);
    tokio::spawn(metrics::serve(listener, Arc::clone(&metrics)));
    info!("serving metrics on http://{address}/metrics");
    Ok(metrics)
}

/// What the metrics take from a pass. `watch` does not read the host again after acting
/// (`Pass::end`): the next pass corrects that if it was not in sync.
fn facts(pass: &Pass, duration: Duration) -> PassFacts<'_> {
    let results = match &pass.acted {
        Acted::Done(results) => results.as_slice(),
        Acted::Refused { .. } | Acted::Nothing => &[],
    };
    PassFacts {
        plan: Some(&pass.plan),
        running: pass.running,
        held_back: pass.held.len(),
        results,
        ended: pass.end(),
        duration,
    }
}

/// A pass that could not run, for the metrics.
fn failed_pass() -> PassFacts<'static> {
    PassFacts {
        plan: None,
        running: 0,
        held_back: 0,
        results: &[],
        ended: PassEnd::Error,
        duration: Duration::ZERO,
    }
}

/// Read the state file again so `guestlist snapshot NAME` takes effect without a restart.
/// A file that cannot be read now keeps the last good list in force. Returns whether the scope
/// changed (the event filter depends on it).
fn reload(settings: &Settings, state: &mut State) -> bool {
    match settings.load_state() {
        Ok(fresh) => {
            let scope_changed = fresh.scope != state.scope;
            *state = fresh;
            scope_changed
        }
        Err(e) => {
            warn!("{}; keeping the list read before", error::cause(&e));
            false
        }
    }
}

/// Move events from the engine's stream into the channel as fast as they come: a reader that
/// lags loses events at the engine. When the channel is full a pass is due anyway, and the
/// event is dropped; an error waits for room, as it ends the session.
async fn forward(events: impl Stream<Item = Result<Event>>, tx: mpsc::Sender<Result<Event>>) {
    let mut events = std::pin::pin!(events);
    while let Some(item) = events.next().await {
        if item.is_err() {
            let _ = tx.send(item).await;
            break;
        }
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(item) {
            break;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_becomes_one_pass_after_the_engine_is_quiet() {
        let t0 = Instant::now();
        let mut batch = Batch::default();
        assert_eq!(batch.due(), None);
        batch.add(t0);
        batch.add(t0 + 5 * MS);
        assert_eq!(batch.due(), Some(t0 + 5 * MS + QUIET));
        batch.clear();
        assert_eq!(batch.due(), None);
    }

    #[test]
    fn a_steady_stream_of_events_cannot_postpone_the_pass_for_ever() {
        let t0 = Instant::now();
        let mut batch = Batch::default();
        for i in 0..100 {
            batch.add(t0 + i * 10 * MS);
        }
        assert_eq!(batch.due(), Some(t0 + MAX_BATCH));
    }

    #[test]
    fn reconnection_waits_double_up_to_five_seconds() {
        let delays: Vec<u128> = (1..=8).map(|n| reconnect_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(reconnect_delay(u32::MAX), RECONNECT.max);
    }

    #[tokio::test]
    async fn a_flood_of_events_is_held_to_the_bound_and_an_error_still_arrives() {
        let event = |i: usize| {
            Ok(Event {
                action: "start".into(),
                name: format!("c{i}"),
            })
        };
        let flood: Vec<Result<Event>> = (0..10 * EVENTS_WAITING)
            .map(event)
            .chain(std::iter::once(Err(anyhow!("the stream broke"))))
            .collect();
        let (tx, mut rx) = mpsc::channel(EVENTS_WAITING);
        let forwarding = tokio::spawn(forward(futures_util::stream::iter(flood), tx));
        // Nobody reads while the flood comes: what does not fit is dropped.
        tokio::task::yield_now().await;
        let mut events = 0;
        let mut error = None;
        while let Some(item) = rx.recv().await {
            match item {
                Ok(_) => events += 1,
                Err(e) => error = Some(e.to_string()),
            }
        }
        forwarding.await.unwrap();
        assert_eq!(events, EVENTS_WAITING);
        assert_eq!(error.as_deref(), Some("the stream broke"));
    }
}
