//! Crash-loop backoff: an allowed container that keeps dying is restarted after growing delays
//! (1 s, 2 s, 4 s, ... up to a cap), never in a tight loop. Its history is forgotten once it has
//! stayed up for `RESET_AFTER`.
//!
//! The history lives in a small runtime file beside the state, not in the state itself (which
//! only `snapshot` and `forget` write), so back-to-back `enforce` runs from cron respect it as
//! much as `watch` does. Decisions are pure functions of the history, the plan and an injected
//! clock; only `load` and `save` touch the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::plan::{Action, ActionResult, Held, Observed, Plan};
use crate::record::spec;

/// The wait before the second start of a container that died after the first one.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);

/// A container that stayed up this long is no longer crash-looping; Docker's restart policy
/// uses the same threshold, so operators meet one rule, not two.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// When to start a container again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub first: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Policy {
    pub fn with_max(max: Duration) -> Policy {
        Policy {
            first: FIRST_DELAY,
            max,
            reset_after: RESET_AFTER,
        }
    }

    /// The wait after `starts` starts that did not last: none before the first, then `first`,
    /// doubling, capped at `max`.
    pub fn delay(&self, starts: u32) -> Duration {
        if starts == 0 {
            return Duration::ZERO;
        }
        let doublings = (starts - 1).min(31);
        self.first
            .checked_mul(1 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// The restart attempts guestlist made for one container since it last stayed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempts {
    pub starts: u32,
    /// When the last start was attempted, in milliseconds since the Unix epoch.
    pub last_ms: u64,
}

/// The attempt history of every allowed container that recently needed restarting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    #[serde(default)]
    pub containers: BTreeMap<String, Attempts>,
}

/// Read the history; none yet is an empty one. A damaged file is reported and replaced rather
/// than stopping enforcement: the worst it costs is one restart that is not held back.
pub fn load(path: &Path) -> (History, Option<String>) {
    let read = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (History::default(), None),
        read => read.map_err(|e| e.to_string()),
    };
    match read.and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string())) {
        Ok(history) => (history, None),
        Err(e) => (
            History::default(),
            Some(format!(
                "ignoring unreadable restart history {}: {e}",
                path.display()
            )),
        ),
    }
}

pub fn save(path: &Path, history: &History) -> Result<()> {
    let json = serde_json::to_vec_pretty(history)?;
    crate::ops::files::write_private(path, &json)
        .with_context(|| format!("cannot write restart history {}", path.display()))
}

/// Milliseconds since the epoch, as the run directory's files keep time.
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// Whether an action restarts a container that died: starting a stopped one, or creating an
/// `--rm` one again (it removed itself when it died). Creating a container someone deleted,
/// or replacing a changed one, is never held back: deletion is not a crash, and those are
/// exactly the actions an operator expects at once.
fn restarts(action: &Action) -> bool {
    match action {
        Action::Start { .. } => true,
        Action::Create {
            spec, start: true, ..
        } => spec.host_config.get("AutoRemove") == Some(&serde_json::Value::Bool(true)),
        _ => false,
    }
}

impl History {
    /// Forget containers that proved stable (up, or their last run lasted, `reset_after`) and
    /// containers no longer on the list.
    pub fn forget_stable(
        &mut self,
        allowed: &BTreeSet<&str>,
        observed: &[Observed],
        policy: &Policy,
        now: SystemTime,
    ) {
        self.containers
            .retain(|name, _| allowed.contains(name.as_str()));
        for o in observed {
            if !self.containers.contains_key(&o.name) {
                continue;
            }
            let Some(started) = o.last_run.started else {
                continue;
            };
            let end = if o.running {
                Some(now)
            } else {
                o.last_run.finished
            };
            if end.is_some_and(|end| since(started, end) >= policy.reset_after) {
                self.containers.remove(&o.name);
            }
        }
    }

    /// Split `plan` into what may run now and the starts held back by the backoff. A held
    /// container also holds the containers that need it (they would be created pointing at
    /// nothing).
    pub fn hold(&self, plan: Plan, policy: &Policy, now: SystemTime) -> (Plan, Vec<Held>) {
        let mut held: Vec<Held> = Vec::new();
        let mut waves = Vec::with_capacity(plan.waves.len());
        for wave in plan.waves {
            let mut kept = Vec::with_capacity(wave.len());
            for action in wave {
                match self.held_back(&action, &held, policy, now) {
                    Some(h) => held.push(h),
                    None => kept.push(action),
                }
            }
            waves.push(kept);
        }
        (Plan { waves, ..plan }, held)
    }

    fn held_back(
        &self,
        action: &Action,
        held: &[Held],
        policy: &Policy,
        now: SystemTime,
    ) -> Option<Held> {
        let name = action.name().to_string();
        if let Action::Create { spec, .. } | Action::Replace { spec, .. } = action {
            let waiting_for = spec::dependencies(spec)
                .into_iter()
                .find_map(|(dep, _)| held.iter().find(|h| h.name == dep));
            if let Some(dep) = waiting_for {
                return Some(Held {
                    name,
                    starts: 0,
                    wait: dep.wait,
                    behind: Some(dep.name.clone()),
                });
            }
        }
        if !restarts(action) {
            return None;
        }
        let attempts = self.containers.get(&name)?;
        let last = UNIX_EPOCH + Duration::from_millis(attempts.last_ms);
        let due = last + policy.delay(attempts.starts);
        let wait = due.duration_since(now).ok().filter(|w| !w.is_zero())?;
        Some(Held {
            name,
            starts: attempts.starts,
            wait,
            behind: None,
        })
    }

    /// Count the starts attempted in a pass, failed ones too: a start that fails every time
    /// must not be retried in a tight loop either.
    pub fn record(&mut self, results: &[ActionResult], now: SystemTime) {
        for r in results.iter().filter(|r| restarts(&r.action)) {
            let attempts = self
                .containers
                .entry(r.action.name().to_string())
                .or_insert(Attempts {
                    starts: 0,
                    last_ms: 0,
                });
            attempts.starts = attempts.starts.saturating_add(1);
            attempts.last_ms = millis(now);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::{LastRun, Status};
    use crate::record::spec::ContainerSpec;
    use std::collections::HashMap;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> Policy {
        Policy::with_max(Duration::from_secs(300))
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn start(name: &str) -> Action {
        Action::Start {
            name: name.into(),
            id: format!("id-{name}"),
            spec: serde_json::from_str::<crate::record::spec::ContainerSpec>(
                r#"{"image":"i","image_id":"s"}"#,
            )
            .unwrap(),
        }
    }

    fn done(action: Action) -> ActionResult {
        ActionResult {
            action,
            outcome: Ok(Vec::new()),
            outdated: false,
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            waves: vec![actions],
            ..Plan::default()
        }
    }

    fn observed(name: &str, running: bool, started: u64, finished: Option<u64>) -> Observed {
        Observed {
            id: format!("id-{name}"),
            name: name.into(),
            image: "img".into(),
            running,
            status: if running {
                Status::Running
            } else {
                Status::Exited
            },
            labels: HashMap::new(),
            spec: None,
            last_run: LastRun {
                started: Some(at(started)),
                finished: finished.map(at),
            },
            runs_guestlist: false,
            origin: None,
            managed: None,
        }
    }

    #[test]
    fn delays_double_from_one_second_up_to_the_cap() {
        let p = policy();
        let delays: Vec<u64> = (0..12).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(300));
        let short = Policy::with_max(Duration::from_secs(3));
        assert_eq!(short.delay(3), Duration::from_secs(3));
    }

    #[test]
    fn a_container_that_keeps_dying_is_held_for_growing_delays() {
        let p = policy();
        let mut history = History::default();
        let mut t = 0;
        let mut starts_at = Vec::new();
        // A pass every 100 ms for two minutes; the container dies at once after every start.
        while t < 120_000 {
            let now = UNIX_EPOCH + Duration::from_millis(1_000_000_000 + t);
            let (runnable, _) = history.hold(plan(vec![start("web")]), &p, now);
            if !runnable.is_empty() {
                history.record(&[done(start("web"))], now);
                starts_at.push(t / 1000);
            }
            t += 100;
        }
        assert_eq!(starts_at, [0, 1, 3, 7, 15, 31, 63]);
    }

    #[test]
    fn the_first_start_is_never_held() {
        let (runnable, held) = History::default().hold(plan(vec![start("web")]), &policy(), at(0));
        assert_eq!(runnable.actions().count(), 1);
        assert!(held.is_empty());
    }

    #[test]
    fn a_held_start_says_how_long_it_waits() {
        let mut history = History::default();
        history.record(&[done(start("web"))], at(0));
        history.record(&[done(start("web"))], at(1));
        history.record(&[done(start("web"))], at(3));
        let (runnable, held) = history.hold(plan(vec![start("web")]), &policy(), at(4));
        assert!(runnable.is_empty());
        assert_eq!(
            held,
            [Held {
                name: "web".into(),
                starts: 3,
                wait: 3 * S,
                behind: None
            }]
        );
        let (runnable, _) = history.hold(plan(vec![start("web")]), &policy(), at(7));
        assert_eq!(runnable.actions().count(), 1);
    }

    #[test]
    fn removals_and_other_containers_are_not_held() {
        let mut history = History::default();
        history.record(&[done(start("web"))], at(0));
        history.record(&[done(start("web"))], at(0));
        let remove = Action::Remove {
            name: "web".into(),
            id: "x".into(),
            image: "i".into(),
            leftover: None,
        };
        let (runnable, held) = history.hold(
            plan(vec![remove, start("db"), start("web")]),
            &policy(),
            at(1),
        );
        let names: Vec<&str> = runnable.actions().map(Action::name).collect();
        assert_eq!(names, ["web", "db"]);
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn a_container_recorded_stopped_is_not_a_start() {
        let mut history = History::default();
        let create = Action::Create {
            name: "job".into(),
            spec: serde_json::from_str::<ContainerSpec>(r#"{"image":"i","image_id":"s"}"#).unwrap(),
            start: false,
        };
        history.record(&[done(create)], at(0));
        assert!(history.containers.is_empty());
    }

    #[test]
    fn containers_that_need_a_held_one_are_held_behind_it() {
        let mut history = History::default();
        history.record(&[done(start("db"))], at(0));
        history.record(&[done(start("db"))], at(0));
        let app: ContainerSpec = serde_json::from_value(serde_json::json!({
            "image": "i", "image_id": "s", "host_config": {"NetworkMode": "container:db"}
        }))
        .unwrap();
        let waves = Plan {
            waves: vec![
                vec![start("db")],
                vec![Action::Create {
                    name: "app".into(),
                    spec: app,
                    start: true,
                }],
            ],
            ..Plan::default()
        };
        let (runnable, held) = history.hold(waves, &policy(), at(1));
        assert!(runnable.is_empty());
        assert_eq!(held[1].behind.as_deref(), Some("db"));
        assert_eq!(held[1].wait, S);
    }

    #[test]
    fn history_is_forgotten_once_the_container_stayed_up() {
        let p = policy();
        let allowed: BTreeSet<&str> = ["a", "b", "c", "d"].into();
        let mut history = History::default();
        for name in ["a", "b", "c", "d", "gone"] {
            history.record(&[done(start(name))], at(0));
        }
        let observed = vec![
            observed("a", true, 0, None),      // up 10 s: stable
            observed("b", true, 5, None),      // up 5 s: not yet
            observed("c", false, 0, Some(12)), // ran 12 s, then stopped: stable
            observed("d", false, 0, Some(1)),  // died after 1 s
        ];
        history.forget_stable(&allowed, &observed, &p, at(10));
        let left: Vec<&str> = history.containers.keys().map(String::as_str).collect();
        assert_eq!(left, ["b", "d"]);
    }

    #[test]
    fn the_history_file_survives_a_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.restarts.json");
        assert_eq!(load(&path), (History::default(), None));
        let mut history = History::default();
        history.record(&[done(start("web"))], at(0));
        save(&path, &history).unwrap();
        assert_eq!(load(&path), (history, None));
        std::fs::write(&path, "{broken").unwrap();
        let (empty, warning) = load(&path);
        assert_eq!(empty, History::default());
        assert!(warning.unwrap().contains("web.restarts.json"));
    }
}
