//! `guestlist enforce`: one reconciliation pass. Observe, plan, act, then observe again to tell
//! the truth about whether the host now matches the list.

use anyhow::Result;

use super::pass::{self, Acted};
use super::{print, Outcome, Settings};
use crate::backoff::Held;
use crate::cli::EnforceArgs;
use crate::engine::Engine;
use crate::state::State;
use crate::{observe, plan, report};

pub async fn run(settings: &Settings, args: EnforceArgs) -> Result<Outcome> {
    let options = args.pass.options(settings.audit_path.clone());
    // A dry run changes nothing, so it need not wait for a pass in progress.
    let _lock = match options.dry_run {
        true => None,
        false => Some(settings.lock().await?),
    };
    let state = settings.load_state()?;
    let engine = settings.connect(options.stop_timeout).await?;
    let pass = pass::run(&engine, &state, &settings.state_path, &options).await?;
    for warning in &pass.warnings {
        eprintln!("guestlist: warning: {warning}");
    }
    match &pass.acted {
        Acted::Nothing => {
            print(&report::plan_text(&pass.plan, &pass.held));
            Ok(match (pass.in_sync(), options.dry_run) {
                (true, _) => Outcome::Clean,
                (false, true) => Outcome::Drift,
                // Everything left to do is held back by the crash-loop backoff.
                (false, false) => Outcome::Failed,
            })
        }
        Acted::Refused { removals, limit } => {
            print(&report::plan_text(&pass.plan, &pass.held));
            eprintln!(
                "guestlist: {}\nhint: check the plan above, then rerun with --max-removals \
                 {removals} if it is right",
                pass::refusal(*removals, *limit)
            );
            Ok(Outcome::Failed)
        }
        Acted::Done(results) => {
            print(&report::results_text(results));
            if results.iter().any(|r| r.outcome.is_err()) {
                for held in &pass.held {
                    print(&format!("  {}  {}\n", held.name, report::held_back(held)));
                }
                return Ok(Outcome::Failed);
            }
            verify(&engine, &state, &pass.held).await
        }
    }
}

/// Every action succeeded; check that the host really matches the list now (a container can
/// exit right after it started, or be changed by someone else meanwhile).
async fn verify(engine: &Engine, state: &State, held: &[Held]) -> Result<Outcome> {
    let remaining = plan::plan(state, &observe::allowed(engine, state).await?);
    if remaining.is_empty() {
        return Ok(Outcome::Clean);
    }
    print(&format!(
        "drift remains after the pass:\n{}",
        report::plan_text(&remaining, held)
    ));
    Ok(Outcome::Failed)
}
