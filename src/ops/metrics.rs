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
const KINDS: [&str; 4] = ["create", "start", "replace", "remove"];

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
                    .filter(|r| r.action.verb() == kind)
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
    let stopped = count(|a| matches!(a, Action::Start { .. }));
    let changed = count(|a| matches!(a, Action::Replace { .. }));
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::Tolerated;

    fn plan() -> Plan {
        Plan {
            waves: vec![vec![
                Action::Remove {
                    name: "x".into(),
                    id: "1".into(),
                    image: "i".into(),
                },
                Action::Start {
                    name: "db".into(),
                    id: "2".into(),
                    spec: serde_json::from_str::<crate::record::spec::ContainerSpec>(
                        r#"{"image":"i","image_id":"s"}"#,
                    )
                    .unwrap(),
                },
            ]],
            tolerated: vec![Tolerated {
                name: "ci".into(),
                image: "i".into(),
                rule: "name=ci".into(),
            }],
            in_sync: vec!["web".into()],
            removing: vec!["cache".into()],
            spared: Vec::new(),
            managed: Vec::new(),
        }
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_pass_becomes_gauges_by_state_and_action() {
        let metrics = Metrics::new(false).unwrap();
        let plan = plan();
        let results = vec![ActionResult {
            action: plan.waves[0][0].clone(),
            outcome: Ok(Vec::new()),
            outdated: false,
        }];
        metrics.record(&PassFacts {
            plan: Some(&plan),
            running: 4,
            held_back: 1,
            results: &results,
            ended: PassEnd::Drift,
            duration: Duration::from_millis(250),
        });
        let text = metrics.render().unwrap();
        assert_eq!(
            value(&text, r#"guestlist_containers{state="allowed"}"#),
            3.0
        );
        assert_eq!(
            value(&text, r#"guestlist_containers{state="missing"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"guestlist_containers{state="stopped"}"#),
            1.0
        );
        assert_eq!(value(&text, r#"guestlist_containers{state="extra"}"#), 1.0);
        assert_eq!(
            value(&text, r#"guestlist_containers{state="running"}"#),
            4.0
        );
        assert_eq!(
            value(&text, r#"guestlist_containers{state="tolerated"}"#),
            1.0
        );
        assert_eq!(
            value(
                &text,
                r#"guestlist_last_pass_actions{kind="remove",result="ok"}"#
            ),
            1.0
        );
        assert_eq!(
            value(
                &text,
                r#"guestlist_last_pass_actions{kind="start",result="failed"}"#
            ),
            0.0
        );
        assert_eq!(value(&text, "guestlist_held_back"), 1.0);
        assert_eq!(value(&text, "guestlist_pass_duration_seconds"), 0.25);
        assert_eq!(value(&text, "guestlist_last_pass_success"), 0.0);
        let totals: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("_total"))
            .collect();
        assert_eq!(
            totals,
            ["guestlist_notifications_failed_total 0"],
            "a one-shot run exports no counters but the one it carries over"
        );
        assert_eq!(last_success_in(&text), None);
    }

    #[test]
    fn failed_notifications_are_carried_over_from_run_to_run() {
        let first = Metrics::new(false).unwrap();
        first.count_failed_notifications(notifications_failed_in("") + 2);
        let text = first.render().unwrap();
        assert_eq!(notifications_failed_in(&text), 2);
        let second = Metrics::new(false).unwrap();
        second.count_failed_notifications(notifications_failed_in(&text) + 1);
        assert_eq!(notifications_failed_in(&second.render().unwrap()), 3);
    }

    /// Every `guestlist_*` name in `text`.
    fn names_used(text: &str) -> std::collections::BTreeSet<String> {
        text.match_indices("guestlist_")
            .map(|(at, _)| {
                text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect()
            })
            .collect()
    }

    fn exported() -> std::collections::BTreeSet<String> {
        let text = Metrics::new(true).unwrap().render().unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    }

    #[test]
    fn the_dashboard_parses_and_queries_only_exported_metrics() {
        let text = include_str!("../../contrib/grafana/guestlist.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut queries = String::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                queries += target["expr"].as_str().unwrap();
                queries.push('\n');
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            queries += variable["definition"].as_str().unwrap_or_default();
        }
        let used = names_used(&queries);
        assert!(used.len() >= 6, "{used:?}");
        let exported = exported();
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "the dashboard queries {unknown:?}");
    }

    #[test]
    fn the_alerts_use_only_exported_metrics() {
        let used = names_used(include_str!("../../contrib/prometheus/alerts.yml"));
        assert!(used.len() >= 4, "{used:?}");
        let exported = exported();
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "the alerts use {unknown:?}");
    }

    #[test]
    fn a_long_running_process_also_counts_and_remembers_its_last_success() {
        let metrics = Metrics::new(true).unwrap();
        let plan = plan();
        let facts = |ended| PassFacts {
            plan: Some(&plan),
            running: 0,
            held_back: 0,
            results: &[],
            ended,
            duration: Duration::ZERO,
        };
        metrics.record(&facts(PassEnd::InSync));
        metrics.record(&facts(PassEnd::Error));
        metrics.record(&facts(PassEnd::InSync));
        let text = metrics.render().unwrap();
        assert_eq!(
            value(&text, r#"guestlist_passes_total{result="in_sync"}"#),
            2.0
        );
        assert_eq!(
            value(&text, r#"guestlist_passes_total{result="error"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"guestlist_passes_total{result="refused"}"#),
            0.0
        );
        assert_eq!(
            value(
                &text,
                r#"guestlist_actions_total{kind="create",result="ok"}"#
            ),
            0.0
        );
        assert!(last_success_in(&text).unwrap() > 1.7e9);
    }

    /// One GET of /metrics on a fresh connection; `None` if no answer comes within `within`.
    async fn scrape(address: std::net::SocketAddr, within: Duration) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
            let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.ok()?;
            Some(answer)
        };
        tokio::time::timeout(within, exchange).await.ok().flatten()
    }

    #[tokio::test]
    async fn scrapes_beyond_the_bound_wait_for_a_free_slot() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            std::sync::Arc::new(Metrics::new(true).unwrap()),
        ));
        let answered = scrape(address, Duration::from_secs(5)).await.unwrap();
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

        // Clients that connect and send nothing hold every slot.
        let mut idle = Vec::new();
        for _ in 0..SCRAPES_AT_ONCE {
            idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(scrape(address, Duration::from_millis(500)).await, None);

        // One of them goes away: its slot serves the next scrape.
        idle.pop();
        let answered = scrape(address, Duration::from_secs(5)).await.unwrap();
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    }
}
