//! `guestlist enforce`: one reconciliation pass. Observe, plan, act, then observe again to tell
//! the truth about whether the host now matches the list; with `--notify`, tell what it did or
//! could not fix; with `--metrics-file`, leave what the pass found and did for node_exporter,
//! whether it succeeded or not.

use std::time::Instant;

use anyhow::Result;

use super::pass::{self, Acted, Pass, PassOptions};
use super::{print, Outcome, Settings};
use crate::cli::EnforceArgs;
use crate::engine::Engine;
use crate::ops::log;
use crate::ops::metrics::{self, Metrics, PassFacts};
use crate::plan::{ActionResult, PassEnd, Plan};
use crate::record::state::State;
use crate::{observe, plan, report};

pub async fn run(settings: &Settings, args: EnforceArgs) -> Result<Outcome> {
    let options = PassOptions::from_args(&args.pass, settings.audit_path.clone(), true);
    let notifier = settings.notifier(&args.pass)?;
    let started = Instant::now();
    let mut seen = Seen::default();
    let end = enforce(settings, &options, &mut seen).await;
    // After acting, and whatever it says, the pass's outcome stands.
    let mut failed_notifications = 0;
    if let Some(notifier) = &notifier {
        let (pass, verified) = (seen.pass.as_ref(), seen.verified.as_ref());
        let report = pass::report("enforce", &options, pass, verified, &end, started.elapsed());
        let telling = notifier.tell(&report).await;
        for warning in &telling.warnings {
            log::warning(warning);
        }
        failed_notifications = telling.failed;
    }
    if let Some(path) = &args.metrics_file {
        let ended = end.as_ref().map_or(PassEnd::Error, |end| *end);
        let facts = Written {
            pass: seen.pass.as_ref(),
            ended,
            started,
            failed_notifications,
        };
        if let Err(e) = write_metrics(path, &facts) {
            log::warning(&format!("{e:#}"));
        }
    }
    Ok(Outcome::of(end?, options.dry_run))
}

/// What the pass found (kept for the metrics and the notification even when it fails later),
/// and the drift that the host showed when read again after acting.
#[derive(Default)]
struct Seen {
    pass: Option<Pass>,
    verified: Option<Plan>,
}

/// The pass itself.
async fn enforce(settings: &Settings, options: &PassOptions, seen: &mut Seen) -> Result<PassEnd> {
    // A dry run changes nothing, so it need not wait for a pass in progress.
    let _lock = match options.dry_run {
        true => None,
        false => Some(settings.lock().await?),
    };
    let state = settings.load_state()?;
    let engine = settings.connect_for(&state).await?;
    let pass = pass::run(&engine, &state, &settings.history_path(), options).await?;
    let pass = seen.pass.insert(pass);
    for warning in &pass.warnings {
        log::warning(warning);
    }
    match &pass.acted {
        // In sync, a dry run, or everything left to do held back by the crash-loop backoff.
        Acted::Nothing => print(&report::plan_text(&pass.plan, &pass.held)),
        Acted::Refused { removals, limit } => {
            print(&report::plan_text(&pass.plan, &pass.held));
            log::refusal(
                &pass::refusal(*removals, *limit),
                &format!(
                    "check the plan above, then rerun with --max-removals {removals} if it is \
                     right"
                ),
            );
        }
        Acted::Done(results) => {
            print(&report::results_text(results));
            if results.iter().all(|r| r.outcome.is_ok()) {
                let remaining = verify(&engine, &state, pass, results).await?;
                let end = match remaining.is_empty() {
                    true => PassEnd::InSync,
                    false => PassEnd::Drift,
                };
                seen.verified = Some(remaining);
                return Ok(end);
            }
            for held in &pass.held {
                print(&format!("  {}  {}\n", held.name, report::held_back(held)));
            }
        }
    }
    Ok(pass.end())
}

/// How long `verify` waits before it reads a just-started container that still shows
/// `created` a second time.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Every action succeeded; check that the host really matches the list now (a container can
/// exit right after it started, or be changed by someone else meanwhile). What the pass acted
/// on is read again, and everything else is listed: the list shows what was created, removed,
/// stopped or started meanwhile.
async fn verify(
    engine: &Engine,
    state: &State,
    pass: &Pass,
    results: &[ActionResult],
) -> Result<Plan> {
    let held = &pass.held;
    let acted = results
        .iter()
        .map(|r| r.action.name().to_string())
        .collect();
    let now = observe::again(engine, state, &pass.observed, &acted).await?;
    let mut remaining = plan::plan(state, &now);
    // Docker 28, after a crash, can report a container whose start has just returned as
    // still `created` for a moment: such drift is read once more before it is reported. A
    // container that ran and exited (a crash loop) is reported at once.
    let catching_up = remaining.waves.iter().flatten().any(|a| {
        matches!(a, plan::Action::Start { .. })
            && acted.contains(a.name())
            && now
                .iter()
                .any(|o| o.name == a.name() && o.status == plan::Status::Created)
    });
    if catching_up {
        tokio::time::sleep(SETTLE).await;
        let now = observe::again(engine, state, &pass.observed, &acted).await?;
        remaining = plan::plan(state, &now);
    }
    if !remaining.is_empty() {
        print(&format!(
            "drift remains after the pass:\n{}",
            report::plan_text(&remaining, held)
        ));
    }
    Ok(remaining)
}

/// What the metrics file says of a run.
struct Written<'a> {
    pass: Option<&'a Pass>,
    ended: PassEnd,
    started: Instant,
    failed_notifications: usize,
}

fn write_metrics(path: &std::path::Path, facts: &Written<'_>) -> Result<()> {
    let metrics = Metrics::new(false)?;
    // The last success, and the notifications that failed, survive from run to run: read
    // them back from the previous file.
    let previous = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(at) = metrics::last_success_in(&previous) {
        metrics.set_last_success(at);
    }
    let failed = metrics::notifications_failed_in(&previous) + facts.failed_notifications as u64;
    metrics.count_failed_notifications(failed);
    let pass = facts.pass;
    let results = match pass.map(|p| &p.acted) {
        Some(Acted::Done(results)) => results.as_slice(),
        _ => &[],
    };
    metrics.record(&PassFacts {
        plan: pass.map(|p| &p.plan),
        running: pass.map_or(0, |p| p.running),
        held_back: pass.map_or(0, |p| p.held.len()),
        results,
        ended: facts.ended,
        duration: facts.started.elapsed(),
    });
    metrics.write_file(path)
}
