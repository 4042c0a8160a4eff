//! `guestlist enforce`: one reconciliation pass. Observe, plan, act, then observe again to tell
//! the truth about whether the host now matches the list.

use anyhow::Result;

use super::{print, Outcome, Settings};
use crate::cli::EnforceArgs;
use crate::engine::Engine;
use crate::execute::{self, Options};
use crate::state::State;
use crate::{observe, plan, report};

/// How many containers one pass may remove or replace unless `--max-removals` says otherwise.
const DEFAULT_MAX_REMOVALS: usize = 10;

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
    let limit = removal_limit(&state, args.max_removals);
    if plan.removal_count() > limit {
        print(&report::plan_text(&plan));
        eprintln!(
            "guestlist: refusing to act: this pass would remove or replace {} containers, more \
             than --max-removals {limit}; nothing was changed\nhint: check the plan above, then \
             rerun with --max-removals {} if it is right",
            plan.removal_count(),
            plan.removal_count()
        );
        return Ok(Outcome::Failed);
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

/// Removals allowed in one pass. A list with no containers and no scope would remove every
/// container on the host, so it allows none unless the operator asked for it explicitly.
fn removal_limit(state: &State, asked: Option<usize>) -> usize {
    match asked {
        Some(n) => n,
        None if state.containers.is_empty() && state.scope.is_empty() => 0,
        None => DEFAULT_MAX_REMOVALS,
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn state(containers: usize, scoped: bool) -> State {
        let scope = if scoped {
            r#"["label=team=web"]"#
        } else {
            "[]"
        };
        let entry = r#"{"name": "N", "spec": {"image": "i", "image_id": "sha256:1"}}"#;
        let entries: Vec<String> = (0..containers)
            .map(|i| entry.replace('N', &format!("c{i}")))
            .collect();
        let text = format!(
            r#"{{"version": 1, "taken_at": "", "engine": {{"endpoint": "", "id": "", "kind": "",
               "version": "", "api_version": "", "hostname": ""}},
               "scope": {scope}, "containers": [{}]}}"#,
            entries.join(",")
        );
        crate::state::parse(&text).unwrap()
    }

    #[test]
    fn an_empty_list_without_scope_allows_no_removals_unless_asked() {
        assert_eq!(removal_limit(&state(0, false), None), 0);
        assert_eq!(removal_limit(&state(0, false), Some(3)), 3);
        assert_eq!(removal_limit(&state(0, true), None), DEFAULT_MAX_REMOVALS);
        assert_eq!(removal_limit(&state(2, false), None), DEFAULT_MAX_REMOVALS);
    }
}
