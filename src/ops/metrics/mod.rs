//! Metrics: what each pass found and did, in the Prometheus text format, for node_exporter's
//! textfile collector (`enforce --metrics-file`) or a scrape (`watch --metrics-listen`). Report
//! stage: it counts, it decides nothing.
//!
//! Every series is a gauge describing the latest pass, so a file rewritten by each cron run
//! means the same as a scrape of `watch`; only `watch`, which lives across passes, also exports
//! counters (`_total`), which a one-shot process could only ever reset. One counter is in both:
//! the notifications that failed, which a metrics file carries over from the run before it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::plan::{Action, ActionResult, PassEnd, Plan};

/// The `result` label of a pass.
pub fn label(end: PassEnd) -> &'static str {
    match end {
        PassEnd::InSync => "in_sync",
        PassEnd::Drift => "drift",
        PassEnd::Refused => "refused",
        PassEnd::Error => "error",
    }
}

/// What one pass saw and did. `plan` is `None` when it could not observe.
pub struct PassFacts<'a> {
    pub plan: Option<&'a Plan>,
    /// Containers in scope running when the pass observed them.
    pub running: usize,
    pub held_back: usize,
    pub results: &'a [ActionResult],
    pub ended: PassEnd,
    pub duration: Duration,
}

/// The container states `guestlist_containers` reports, in the words of `diff`.
const STATES: [&str; 8] = [
    "allowed",
    "running",
    "in_sync",
    "missing",
    "stopped",
    "changed",
    "extra",
    "tolerated",
];
/// Action verbs as metric labels (`put back` is `put_back`).
const KINDS: [&str; 5] = ["create", "start", "replace", "remove", "put_back"];

pub struct Metrics {
    registry: Registry,
    duration: Gauge,
    last_pass: Gauge,
    last_success: Gauge,
    success: IntGauge,
    containers: IntGaugeVec,
    held_back: IntGauge,
    last_actions: IntGaugeVec,
    /// Only for a process that lives across passes.
    totals: Option<(IntCounterVec, IntCounterVec)>,
    failed_notifications: IntCounter,
}

impl Metrics {
    /// `cumulative`: also export counters since the process started (`watch`).
    pub fn new(cumulative: bool) -> Result<Metrics> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> Result<Gauge> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let int_vec = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let success = IntGauge::new(
            "guestlist_last_pass_success",
            "1 if the last pass ended with the host matching the list, else 0",
        )?;
        registry.register(Box::new(success.clone()))?;
        let held_back = IntGauge::new(
            "guestlist_held_back",
            "Allowed containers that keep dying, whose next start waits (crash-loop backoff)",
        )?;
        registry.register(Box::new(held_back.clone()))?;
        let failed_notifications = IntCounter::new(
            FAILED_NOTIFICATIONS,
            "Notifications (--notify) a receiver did not take after every try",
        )?;
        registry.register(Box::new(failed_notifications.clone()))?;
        let metrics = Metrics {
            failed_notifications,
            duration: gauge(
                "guestlist_pass_duration_seconds",
                "How long the last pass took, from observing to acting and checking",
            )?,
            last_pass: gauge(
                "guestlist_last_pass_timestamp_seconds",
                "When the last pass ended (Unix time), whatever its outcome",
            )?,
            last_success: gauge(
                "guestlist_last_success_timestamp_seconds",
                "When a pass last ended with the host matching the list (Unix time)",
            )?,
            success,
            containers: int_vec(
                "guestlist_containers",
                "Containers by state as the last pass found them before acting",
                &["state"],
            )?,
            held_back,
            last_actions: int_vec(
                "guestlist_last_pass_actions",
                "Actions of the last pass by kind and result",
                &["kind", "result"],
            )?,
            totals: match cumulative {
                false => None,
                true => Some((
                    counter_vec(
                        "guestlist_actions_total",
                        "Actions since guestlist started, by kind and result",
                        &["kind", "result"],
                    )?,
                    counter_vec(
                        "guestlist_passes_total",
                        "Passes since guestlist started, by how they ended",
                        &["result"],
                    )?,
                )),
            },
            registry,
        };
        // Every label combination exists from the start: an alert on a series that has never
        // been exported would not fire.
        for kind in KINDS {
            for result in ["ok", "failed"] {
                metrics
                    .last_actions
                    .with_label_values(&[kind, result])
                    .set(0);
                if let Some((actions, _)) = &metrics.totals {
                    actions.with_label_values(&[kind, result]);
                }
            }
        }
        for state in STATES {
            metrics.containers.with_label_values(&[state]).set(0);
        }
        if let Some((_, passes)) = &metrics.totals {
            for ended in [
                PassEnd::InSync,
                PassEnd::Drift,
                PassEnd::Refused,
                PassEnd::Error,
            ] {
                passes.with_label_values(&[label(ended)]);
            }
        }
        Ok(metrics)
    }

    /// Carry over the time of the last success from an earlier run (a cron pass that fails
    /// must not make it look as if guestlist never succeeded).
    pub fn set_last_success(&self, at: f64) {
        self.last_success.set(at);
    }

    /// Count notifications a receiver did not take.
    pub fn count_failed_notifications(&self, n: u64) {
        self.failed_notifications.inc_by(n);
    }

    /// Record one pass ending now.
    pub fn record(&self, facts: &PassFacts<'_>) {
        let now = unix_seconds(SystemTime::now());
        self.duration.set(facts.duration.as_secs_f64());
        self.last_pass.set(now);
        let in_sync = facts.ended == PassEnd::InSync;
        self.success.set(i64::from(in_sync));
        if in_sync {
            self.last_success.set(now);
        }
        if let Some(plan) = facts.plan {
            for (state, n) in counts(plan, facts.running) {
                self.containers.with_label_values(&[state]).set(n as i64);
            }
        }
        self.held_back.set(facts.held_back as i64);
        for kind in KINDS {
            for result in ["ok", "failed"] {
                let n = facts
                    .results
                    .iter()
                    .filter(|r| r.action.verb().replace(' ', "_") == kind)
                    .filter(|r| r.outcome.is_ok() == (result == "ok"))
                    .count();
                self.last_actions
                    .with_label_values(&[kind, result])
                    .set(n as i64);
                if let Some((actions, _)) = &self.totals {
                    actions.with_label_values(&[kind, result]).inc_by(n as u64);
                }
            }
        }
        if let Some((_, passes)) = &self.totals {
            passes.with_label_values(&[label(facts.ended)]).inc();
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> Result<String> {
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    /// Replace `path` atomically with the current metrics, readable by all: the collector
    /// (node_exporter) rarely runs as the user guestlist runs as, and no secrets are in it.
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let text = self.render()?;
        crate::ops::files::write_atomic(path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write the metrics file {}", path.display()))
    }
}

/// What a metrics endpoint serves.
pub trait Exposition: Send + Sync + 'static {
    /// The text exposition format (version 0.0.4).
    fn render(&self) -> Result<String>;
}

impl Exposition for Metrics {
    fn render(&self) -> Result<String> {
        Metrics::render(self)
    }
}

/// The guard's counters: requests refused, and requests a dry run would have refused, by
/// operation.
pub struct Refusals {
    registry: Registry,
    refused: IntCounterVec,
    would_refuse: IntCounterVec,
}

/// The `operation` labels of the guard's counters, all exported from the start.
pub const OPERATIONS: [&str; 9] = [
    "create", "remove", "stop", "kill", "pause", "rename", "update", "prune", "plugin",
];

impl Refusals {
    pub fn new() -> Result<Refusals> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), &["operation"])?;
            registry.register(Box::new(c.clone()))?;
            for operation in OPERATIONS {
                c.with_label_values(&[operation]);
            }
            Ok(c)
        };
        Ok(Refusals {
            refused: counter(
                "guestlist_refused_total",
                "Engine API requests the guard refused since it started, by operation",
            )?,
            would_refuse: counter(
                "guestlist_would_refuse_total",
                "Engine API requests the guard would have refused (--dry-run), by operation",
            )?,
            registry,
        })
    }

    pub fn count(&self, operation: &str, dry_run: bool) {
        let counter = match dry_run {
            true => &self.would_refuse,
            false => &self.refused,
        };
        counter.with_label_values(&[operation]).inc();
    }
}

impl Exposition for Refusals {
    fn render(&self) -> Result<String> {
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

/// Scrapes served at once. Prometheus scrapes one at a time; more are left waiting in the
/// listen backlog rather than each costing a task and a buffer.
const SCRAPES_AT_ONCE: usize = 8;
/// How long a connection may take: a client that opens one and sends nothing must not hold a
/// scrape slot for ever.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve `GET /metrics` on `listener` until the process ends. Each connection is its own task,
/// so a slow scraper delays nobody, and at most `SCRAPES_AT_ONCE` run.
pub async fn serve<M: Exposition>(listener: tokio::net::TcpListener, metrics: std::sync::Arc<M>) {
    use hyper::service::service_fn;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(SCRAPES_AT_ONCE));
    let mut failures = crate::ops::accept::Failures::new("metrics");
    loop {
        // Never closed, so acquiring fails only if it were; then serve unbounded.
        let slot = std::sync::Arc::clone(&slots).acquire_owned().await.ok();
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                failures.ended();
                stream
            }
            Err(e) => {
                failures.wait_after(e).await;
                continue;
            }
        };
        let metrics = std::sync::Arc::clone(&metrics);
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| {
                let response = respond(metrics.as_ref(), &request);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, connection).await;
        });
    }
}

type Body = http_body_util::Full<hyper::body::Bytes>;

fn respond<B, M: Exposition>(metrics: &M, request: &hyper::Request<B>) -> hyper::Response<Body> {
    let reply = |status: u16, content_type: &str, body: String| {
        let mut response = hyper::Response::new(Body::from(body));
        *response.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
        if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    };
    match (request.method().as_str(), request.uri().path()) {
        ("GET" | "HEAD", "/metrics") => match metrics.render() {
            Ok(text) => reply(200, prometheus::TEXT_FORMAT, text),
            Err(e) => reply(500, "text/plain", format!("{e:#}\n")),
        },
        ("GET" | "HEAD", "/") => reply(200, "text/plain", "guestlist: see /metrics\n".into()),
        _ => reply(404, "text/plain", "not found; try /metrics\n".into()),
    }
}

/// The value of `guestlist_last_success_timestamp_seconds` in an earlier metrics file.
pub fn last_success_in(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("guestlist_last_success_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .filter(|v: &f64| *v > 0.0)
}

const FAILED_NOTIFICATIONS: &str = "guestlist_notifications_failed_total";

/// The failed notifications a metrics file counted so far.
pub fn notifications_failed_in(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(FAILED_NOTIFICATIONS)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn counts(plan: &Plan, running: usize) -> [(&'static str, usize); 8] {
    let actions = || plan.actions().chain(&plan.spared);
    let count = |f: fn(&Action) -> bool| actions().filter(|a| f(a)).count();
    let missing = count(|a| matches!(a, Action::Create { .. })) + plan.removing.len();
    let stopped = count(|a| matches!(a, Action::Start { .. } | Action::PutBack { .. }));
    let changed = count(|a| matches!(a, Action::Replace { .. } | Action::Finish { .. }));
    let extra = count(|a| matches!(a, Action::Remove { .. }));
    let in_sync = plan.in_sync.len();
    [
        ("allowed", in_sync + missing + stopped + changed),
        ("running", running),
        ("in_sync", in_sync),
        ("missing", missing),
        ("stopped", stopped),
        ("changed", changed),
        ("extra", extra),
        ("tolerated", plan.tolerated.len()),
    ]
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
