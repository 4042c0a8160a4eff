//! One reconciliation pass, the same for `enforce` and `watch`: observe, plan, hold back the
//! starts of crash-looping containers, check the removal limit, act (keeping every removed
//! container and every result in the audit log), plan again what the engine showed was out of
//! date, and remember the starts. The caller holds the state file's lock.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::cli::PassArgs;
use crate::engine::Engine;
use crate::execute;
use crate::notify;
use crate::observe;
use crate::ops::audit::Audit;
use crate::ops::backoff::{self, Policy};
use crate::plan::{self, Action, ActionResult, Held, Observed, PassEnd, Plan};
use crate::record::state::State;

/// How many containers one pass may remove or replace unless `--max-removals` says otherwise.
const DEFAULT_MAX_REMOVALS: usize = 10;

pub struct PassOptions {
    /// Plan, but change nothing.
    pub dry_run: bool,
    /// `--stop-timeout`: one grace period for every stop; `None`: each container's own.
    pub stop_timeout: Option<Duration>,
    pub max_removals: Option<usize>,
    pub backoff: Policy,
    pub audit_log: PathBuf,
    /// Wait, within the pass, for allowed containers the engine is removing, and create them
    /// once their names are free. `watch` does not: the engine's destroy event starts its next
    /// pass sooner than any polling would.
    pub await_removals: bool,
}

impl PassOptions {
    /// The options `enforce` and `watch` share, from their arguments. `await_removals` is the
    /// command's own policy (see the field).
    pub fn from_args(args: &PassArgs, audit_log: PathBuf, await_removals: bool) -> PassOptions {
        PassOptions {
            audit_log,
            dry_run: args.dry_run,
            stop_timeout: args.stop_timeout,
            max_removals: args.max_removals,
            backoff: Policy::with_max(args.max_backoff),
            await_removals,
        }
    }
}

/// What a pass found and did.
pub struct Pass {
    /// Everything that drifted, held starts included.
    pub plan: Plan,
    /// The host as the pass found it, before acting.
    pub observed: Vec<Observed>,
    /// Starts held back because the container keeps dying.
    pub held: Vec<Held>,
    /// Containers in scope that were running when the pass observed them.
    pub running: usize,
    pub acted: Acted,
    /// Things that did not stop the pass but that the operator should hear about.
    pub warnings: Vec<String>,
    /// Allowed containers guestlist started more than once without their staying up.
    pub dying: BTreeSet<String>,
    /// The names on the list this pass went by.
    pub listed: BTreeSet<String>,
}

pub enum Acted {
    /// A dry run, or nothing could be done now.
    Nothing,
    /// The pass would have removed or replaced more than `limit` containers; nothing was done.
    Refused { removals: usize, limit: usize },
    /// The actions ran, each with its result.
    Done(Vec<ActionResult>),
}

impl Pass {
    /// Whether the host matches the list, as far as this pass saw before acting.
    pub fn in_sync(&self) -> bool {
        self.plan.is_empty()
    }

    /// How the pass ended without reading the host again: a pass whose every action succeeded
    /// and that holds nothing back counts as in sync (`enforce` then checks; `watch` leaves it
    /// to its next pass).
    pub fn end(&self) -> PassEnd {
        match &self.acted {
            Acted::Refused { .. } => PassEnd::Refused,
            Acted::Done(results)
                if results.iter().all(|r| r.outcome.is_ok()) && self.held.is_empty() =>
            {
                PassEnd::InSync
            }
            Acted::Nothing if self.in_sync() => PassEnd::InSync,
            Acted::Done(_) | Acted::Nothing => PassEnd::Drift,
        }
    }
}

/// Run one pass against `state`, with the restart history kept at `history_path`.
pub async fn run(
    engine: &Engine,
    state: &State,
    history_path: &Path,
    options: &PassOptions,
) -> Result<Pass> {
    let observed = observe::allowed(engine, state).await?;
    let plan = plan::plan(state, &observed);
    let (mut history, warning) = backoff::load(history_path);
    let mut warnings: Vec<String> = warning.into_iter().collect();
    let before = history.clone();

    let allowed: BTreeSet<&str> = state.containers.iter().map(|e| e.name.as_str()).collect();
    let now = SystemTime::now();
    history.forget_stable(&allowed, &observed, &options.backoff, now);
    let (runnable, held) = history.hold(plan.clone(), &options.backoff, now);

    // An allowed container the engine is still removing (a pass killed mid-replacement, a
    // `docker rm -f` under way) is created once its name is free, in this pass.
    let waiting: BTreeSet<String> = match options.await_removals {
        true => plan.removing.iter().cloned().collect(),
        false => BTreeSet::new(),
    };
    let acted = if options.dry_run || (!runnable.has_actions() && waiting.is_empty()) {
        Acted::Nothing
    } else {
        let limit = removal_limit(state, options.max_removals);
        let audit = Audit::new(options.audit_log.clone());
        if runnable.removal_count() > limit {
            let removals = runnable.removal_count();
            if let Err(e) = audit.refused(&refusal(removals, limit)).await {
                warnings.push(format!("{e:#}"));
            }
            Acted::Refused { removals, limit }
        } else {
            let execute_options = execute::ExecuteOptions {
                stop_timeout: options.stop_timeout,
                audit,
                spare_removals: AtomicUsize::new(limit - runnable.removal_count()),
            };
            let mut results = execute::run(engine, &runnable, &execute_options).await;
            let hold = |retry| history.hold(retry, &options.backoff, SystemTime::now()).0;
            retry_outdated(engine, state, &execute_options, &mut results, waiting, hold).await;
            history.record(&results, SystemTime::now());
            Acted::Done(results)
        }
    };
    let dying = history
        .containers
        .iter()
        .filter(|(_, attempts)| attempts.starts > 1)
        .map(|(name, _)| name.clone())
        .collect();
    if !options.dry_run && history != before {
        // Written and synced on the blocking pool, like the audit log: `watch` serves its
        // metrics meanwhile.
        let path = history_path.to_path_buf();
        let saved = tokio::task::spawn_blocking(move || backoff::save(&path, &history)).await;
        if let Err(e) = saved.map_err(anyhow::Error::from).and_then(|r| r) {
            warnings.push(format!("{e:#}; crash loops are not held back across runs"));
        }
    }
    Ok(Pass {
        running: observed.iter().filter(|o| o.running).count(),
        observed,
        plan,
        held,
        acted,
        warnings,
        dying,
        listed: allowed.into_iter().map(String::from).collect(),
    })
}

/// The notification of a pass: `pass` if it ran (with the drift `verified` after acting, if
/// it was read again), and how it ended; a pass that ran and then failed says both.
pub fn report(
    command: &'static str,
    options: &PassOptions,
    pass: Option<&Pass>,
    verified: Option<&Plan>,
    end: &Result<PassEnd>,
    duration: Duration,
) -> notify::Report {
    let Some(pass) = pass else {
        let error = match end {
            Err(e) => e,
            Ok(_) => &anyhow::anyhow!("the pass ended without observing"),
        };
        return notify::Report::could_not_run(command, options.dry_run, error);
    };
    let (results, refused) = match &pass.acted {
        Acted::Done(results) => (results.as_slice(), None),
        Acted::Refused { removals, limit } => (
            &[][..],
            Some(notify::Refused {
                removals: *removals,
                limit: *limit,
                message: refusal(*removals, *limit),
            }),
        ),
        Acted::Nothing => (&[][..], None),
    };
    let seen = notify::PassSeen {
        plan: &pass.plan,
        verified,
        held: &pass.held,
        dying: &pass.dying,
        results,
        refused,
        listed: &pass.listed,
    };
    let ended = end.as_ref().map_or(PassEnd::Error, |end| *end);
    let mut report = notify::Report::of_pass(command, options.dry_run, &seen, ended, duration);
    if let Err(e) = end {
        report.could_not_finish(e);
    }
    report
}

/// Waits before planning outdated actions again. A removal in progress frees its name within
/// about 100 ms (`docker rm -f`: die, then destroy), and a container deleted by hand should be
/// back as fast as `watch` would bring it back from the destroy event; a container that
/// vanished is recreated on the first retry.
const RETRY_WAITS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// Plan again, from a fresh observation, the actions the engine showed were planned from a
/// view that changed meanwhile: a container to start that vanished is created instead, a name
/// still held by a container being removed is tried again once it is free. `waiting` are
/// allowed containers the engine was removing when the pass observed them: they are created
/// once gone. Only creations and starts are retried, and only those `hold` lets through (a
/// crash-looping `--rm` container waits its turn here too): anything that would remove waits
/// for the next pass and its limits. What is still outdated after the last retry stays a
/// failure.
async fn retry_outdated(
    engine: &Engine,
    state: &State,
    options: &execute::ExecuteOptions,
    results: &mut Vec<ActionResult>,
    mut waiting: BTreeSet<String>,
    hold: impl Fn(Plan) -> Plan,
) {
    for wait in RETRY_WAITS {
        let outdated: BTreeSet<String> = results
            .iter()
            .filter(|r| r.outdated)
            .map(|r| r.action.name().to_string())
            .chain(waiting.iter().cloned())
            .collect();
        if outdated.is_empty() {
            return;
        }
        tokio::time::sleep(wait).await;
        // A failed observation ends the retries; the outdated results stand as failures.
        let Ok(observed) = observe::allowed(engine, state).await else {
            return;
        };
        let fresh = plan::plan(state, &observed);
        let retry = hold(Plan {
            waves: fresh
                .waves
                .iter()
                .map(|wave| {
                    wave.iter()
                        .filter(|a| outdated.contains(a.name()))
                        .filter(|a| matches!(a, Action::Create { .. } | Action::Start { .. }))
                        .cloned()
                        .collect()
                })
                .collect(),
            ..Plan::default()
        });
        let retried = execute::run(engine, &retry, options).await;
        // Replaced by its retry, or done by someone else meanwhile: either way not a failure.
        let superseded: BTreeSet<&str> = retried
            .iter()
            .map(|r| r.action.name())
            .chain(fresh.in_sync.iter().map(String::as_str))
            .collect();
        results.retain(|r| !(r.outdated && superseded.contains(r.action.name())));
        waiting.retain(|name| !superseded.contains(name.as_str()));
        results.extend(retried);
    }
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

/// The refusal of an over-limit pass, with what to do about it.
pub fn refusal(removals: usize, limit: usize) -> String {
    format!(
        "refusing to act: this pass would remove or replace {removals} containers, more than \
         --max-removals {limit}; nothing was changed"
    )
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
        let entry = r#"{"name": "N", "spec": {"image": "i", "image_id": "sha256:1111111111111111111111111111111111111111111111111111111111111111"}}"#;
        let entries: Vec<String> = (0..containers)
            .map(|i| entry.replace('N', &format!("c{i}")))
            .collect();
        let text = format!(
            r#"{{"version": 1, "taken_at": "", "engine": {{"endpoint": "", "id": "", "kind": "",
               "version": "", "api_version": "", "hostname": ""}},
               "scope": {scope}, "containers": [{}]}}"#,
            entries.join(",")
        );
        crate::record::state::parse(&text).unwrap()
    }

    #[test]
    fn an_empty_list_without_scope_allows_no_removals_unless_asked() {
        assert_eq!(removal_limit(&state(0, false), None), 0);
        assert_eq!(removal_limit(&state(0, false), Some(3)), 3);
        assert_eq!(removal_limit(&state(0, true), None), DEFAULT_MAX_REMOVALS);
        assert_eq!(removal_limit(&state(2, false), None), DEFAULT_MAX_REMOVALS);
    }
}
