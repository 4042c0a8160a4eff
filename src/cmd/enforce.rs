//! `guestlist enforce`: one reconciliation pass. Observe, plan, act, then observe again to tell
//! the truth about whether the host now matches the list; with `--metrics-file`, leave what the
//! pass found and did for node_exporter, whether it succeeded or not.

use std::time::Instant;

use anyhow::Result;

use super::pass::{self, Acted, Pass, PassOptions};
use super::{print, Outcome, Settings};
use crate::cli::EnforceArgs;
use crate::engine::Engine;
use crate::ops::metrics::{self, Metrics, PassFacts};
use crate::plan::{ActionResult, PassEnd};
use crate::record::state::State;
use crate::{observe, plan, report};

pub async fn run(settings: &Settings, args: EnforceArgs) -> Result<Outcome> {
    let options = PassOptions::from_args(&args.pass, settings.audit_path.clone(), true);
    let started = Instant::now();
    let mut seen = None;
    let end = enforce(settings, &options, &mut seen).await;
    if let Some(path) = &args.metrics_file {
        let ended = end.as_ref().map_or(PassEnd::Error, |end| *end);
        let written = write_metrics(path, seen.as_ref(), ended, started);
        if let Err(e) = written {
            eprintln!("guestlist: warning: {e:#}");
        }
    }
    Ok(Outcome::of(end?, options.dry_run))
}

/// The pass itself; `seen` keeps what it found for the metrics, even when it fails later.
async fn enforce(
    settings: &Settings,
    options: &PassOptions,
    seen: &mut Option<Pass>,
) -> Result<PassEnd> {
    // A dry run changes nothing, so it need not wait for a pass in progress.
    let _lock = match options.dry_run {
        true => None,
        false => Some(settings.lock().await?),
    };
    let state = settings.load_state()?;
    let engine = settings.connect_for(&state).await?;
    let pass = seen.insert(pass::run(&engine, &state, &settings.history_path(), options).await?);
    for warning in &pass.warnings {
        eprintln!("guestlist: warning: {warning}");
    }
    match &pass.acted {
        // In sync, a dry run, or everything left to do held back by the crash-loop backoff.
        Acted::Nothing => print(&report::plan_text(&pass.plan, &pass.held)),
        Acted::Refused { removals, limit } => {
            print(&report::plan_text(&pass.plan, &pass.held));
            eprintln!(
                "guestlist: {}\nhint: check the plan above, then rerun with --max-removals \
                 {removals} if it is right",
                pass::refusal(*removals, *limit)
            );
        }
        Acted::Done(results) => {
            print(&report::results_text(results));
            if results.iter().all(|r| r.outcome.is_ok()) {
                return verify(&engine, &state, pass, results).await;
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
) -> Result<PassEnd> {
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
    if remaining.is_empty() {
        return Ok(PassEnd::InSync);
    }
    print(&format!(
        "drift remains after the pass:\n{}",
        report::plan_text(&remaining, held)
    ));
    Ok(PassEnd::Drift)
}

fn write_metrics(
    path: &std::path::Path,
    pass: Option<&Pass>,
    ended: PassEnd,
    started: Instant,
) -> Result<()> {
    let metrics = Metrics::new(false)?;
    // The last success survives a failing run: read it back from the previous file.
    if let Some(at) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| metrics::last_success_in(&text))
    {
        metrics.set_last_success(at);
    }
    let results = match pass.map(|p| &p.acted) {
        Some(Acted::Done(results)) => results.as_slice(),
        _ => &[],
    };
    metrics.record(&PassFacts {
        plan: pass.map(|p| &p.plan),
        running: pass.map_or(0, |p| p.running),
        held_back: pass.map_or(0, |p| p.held.len()),
        results,
        ended,
        duration: started.elapsed(),
    });
    metrics.write_file(path)
}
