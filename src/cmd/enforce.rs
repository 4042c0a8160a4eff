//! `guestlist enforce`: one reconciliation pass. Observe, plan, act, then observe again to tell
//! the truth about whether the host now matches the list.

use anyhow::Result;

use super::{print, Outcome, Settings};
use crate::cli::EnforceArgs;
use crate::engine::Engine;
use crate::execute::{self, Options};
use crate::state::State;
use crate::{observe, plan, report};

pub async fn run(settings: &Settings, args: EnforceArgs) -> Result<Outcome> {
    let state = settings.load_state()?;
    let engine = settings.connect(args.stop_timeout).await?;
    let plan = plan::plan(&state, &observe::allowed(&engine, &state).await?);
    if args.dry_run || plan.is_empty() {
        print(&report::plan_text(&plan));
        return Ok(if plan.is_empty() {
            Outcome::Clean
        } else {
            Outcome::Drift
        });
    }
    let options = Options {
        stop_timeout: args.stop_timeout,
    };
    let results = execute::run(&engine, &plan, &options).await;
    print(&report::results_text(&results));
    if results.iter().any(|r| r.outcome.is_err()) {
        return Ok(Outcome::Failed);
    }
    verify(&engine, &state).await
}

/// Every action succeeded; check that the host really matches the list now (a container can
/// exit right after it started, or be changed by someone else meanwhile).
async fn verify(engine: &Engine, state: &State) -> Result<Outcome> {
    let remaining = plan::plan(state, &observe::allowed(engine, state).await?);
    if remaining.is_empty() {
        return Ok(Outcome::Clean);
    }
    print(&format!(
        "drift remains after the pass:\n{}",
        report::plan_text(&remaining)
    ));
    Ok(Outcome::Failed)
}
