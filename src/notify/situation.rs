//! Once per situation: what a pass leaves unresolved (a container that keeps failing to be
//! created, one that keeps dying, drift a dry run found, a pass held back by --max-removals, a
//! pass that could not run) is told when it starts, when it changes and when it is resolved,
//! and reminded of at most every `--notify-repeat` while it lasts; never at every pass.
//!
//! A situation changes when its kind does, not its wording: one lasting failure shows as a
//! failed create, then a failed start of the container that create left, then a start held
//! back by the crash-loop backoff (seen on Docker 20.10 with a network that is gone), and that
//! is one situation.
//!
//! Pure: the memory of what was told comes in and goes out as a value, the clock is a
//! parameter. `notify` keeps the memory in a runtime file, so one-shot `enforce` runs from cron
//! share it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ops::backoff::millis;
use crate::plan::{Action, ActionResult, Held, Plan};

/// The key of the pass's own situation (refused, could not run) in the memory. Container names
/// cannot hold parentheses, so it meets no container.
pub const PASS: &str = "(pass)";

/// The condition of a container whose start guestlist keeps repeating.
pub const KEEPS_DYING: &str = "keeps dying";

/// The kind of a container that guestlist tries and fails to fix: a failed action, a crash
/// loop.
pub const FAILING: &str = "failing";

/// What is wrong with a subject: the kind of situation (`failing`, `missing`, `stopped`,
/// `changed`, `extra`; for the pass `refused`, `error`), and how it reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub said: String,
}

impl Condition {
    pub fn new(kind: &'static str, said: impl Into<String>) -> Condition {
        Condition {
            kind,
            said: said.into(),
        }
    }
}

/// What is unresolved after one pass, by subject: a container's name, or `PASS`.
pub type Conditions = BTreeMap<String, Condition>;

/// A situation that was told: its kind and condition, since when it holds, when it was last
/// told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Told {
    pub kind: String,
    pub condition: String,
    pub since_ms: u64,
    pub told_ms: u64,
}

/// A situation seen and not told yet, because no receiver took it: when it began, so that it
/// keeps that beginning until it is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Untold {
    pub kind: String,
    pub since_ms: u64,
}

/// Every situation told and not yet resolved, and those waiting to be told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    #[serde(default)]
    pub situations: BTreeMap<String, Told>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub untold: BTreeMap<String, Untold>,
}

/// Where a situation stands in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Not told before.
    New,
    /// Told before with another condition.
    Changed,
    /// Unchanged, and last told `--notify-repeat` ago or longer: a reminder.
    Ongoing,
    /// Told before and gone now.
    Resolved,
}

impl Stage {
    pub fn word(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Changed => "changed",
            Stage::Ongoing => "ongoing",
            Stage::Resolved => "resolved",
        }
    }
}

/// One situation worth telling now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct News {
    pub subject: String,
    pub stage: Stage,
    pub kind: String,
    /// The condition now; for a resolved situation, the condition it had.
    pub condition: String,
    pub since: SystemTime,
}

/// What to tell after a pass, and the memory to keep once it was told, or if no receiver took
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub news: Vec<News>,
    pub memory: Memory,
    /// What was told before, unchanged, and the news that begin a situation as untold: the
    /// next pass tells them again, from when they began, not from its own time.
    pub untold: Memory,
}

/// Compare what is unresolved now with what was told. `observed`: whether the pass saw the
/// containers; a pass that could not run knows nothing about them, so their situations are
/// neither resolved nor renewed by it.
pub fn review(
    told: &Memory,
    now: &Conditions,
    observed: bool,
    at: SystemTime,
    repeat: Duration,
) -> Review {
    let at_ms = millis(at);
    let mut news = Vec::new();
    let mut memory = Memory::default();
    let mut untold = Memory {
        situations: told.situations.clone(),
        untold: BTreeMap::new(),
    };
    for (subject, condition) in now {
        // Seen by an earlier pass whose notification no receiver took: it began then.
        let began = match told.untold.get(subject) {
            Some(u) if u.kind == condition.kind => u.since_ms,
            _ => at_ms,
        };
        let (stage, since_ms, told_ms) = match told.situations.get(subject) {
            None => (Some(Stage::New), began, at_ms),
            Some(t) if t.kind != condition.kind => (Some(Stage::Changed), began, at_ms),
            Some(t) if at_ms.saturating_sub(t.told_ms) >= millis_of(repeat) => {
                (Some(Stage::Ongoing), t.since_ms, at_ms)
            }
            Some(t) => (None, t.since_ms, t.told_ms),
        };
        if matches!(stage, Some(Stage::New | Stage::Changed)) {
            let waiting = Untold {
                kind: condition.kind.to_string(),
                since_ms,
            };
            untold.untold.insert(subject.clone(), waiting);
        }
        if let Some(stage) = stage {
            news.push(News {
                subject: subject.clone(),
                stage,
                kind: condition.kind.to_string(),
                condition: condition.said.clone(),
                since: time_of(since_ms),
            });
        }
        memory.situations.insert(
            subject.clone(),
            Told {
                kind: condition.kind.to_string(),
                condition: condition.said.clone(),
                since_ms,
                told_ms,
            },
        );
    }
    for (subject, t) in &told.situations {
        if now.contains_key(subject) {
            continue;
        }
        if !observed && subject != PASS {
            memory.situations.insert(subject.clone(), t.clone());
            continue;
        }
        news.push(News {
            subject: subject.clone(),
            stage: Stage::Resolved,
            kind: t.kind.clone(),
            condition: t.condition.clone(),
            since: time_of(t.since_ms),
        });
    }
    Review {
        news,
        memory,
        untold,
    }
}

/// What one pass leaves unresolved, by container: a failed action (`failed to create`), a
/// container that keeps dying (its start held back, or repeated: `dying` are the containers
/// guestlist started again without their staying up), else the drift that remains (`missing`,
/// `stopped`, `changed Image`, `extra (image x)`). The error's text is not part of the
/// condition: it can change from pass to pass (ids, times) while the situation does not.
pub fn conditions(
    remaining: &Plan,
    results: &[ActionResult],
    held: &[Held],
    dying: &BTreeSet<String>,
) -> Conditions {
    let mut found = Conditions::new();
    for action in remaining.actions().chain(&remaining.spared) {
        let said = match remaining.spared.contains(action) {
            true => format!("{}, not replaced: guestlist runs in it", action.condition()),
            false => action.condition(),
        };
        let kind = match action {
            Action::Create { .. } => "missing",
            Action::Start { .. } | Action::PutBack { .. } => "stopped",
            Action::Replace { .. } | Action::Finish { .. } => "changed",
            Action::Remove { .. } => "extra",
        };
        found.insert(action.name().to_string(), Condition::new(kind, said));
    }
    let restarted = results
        .iter()
        .filter(|r| r.outcome.is_ok() && dying.contains(r.action.name()))
        .map(|r| r.action.name());
    for name in held.iter().map(|h| h.name.as_str()).chain(restarted) {
        found.insert(name.to_string(), Condition::new(FAILING, KEEPS_DYING));
    }
    for r in results.iter().filter(|r| r.outcome.is_err()) {
        let said = format!("failed to {}", r.action.verb());
        found.insert(r.action.name().to_string(), Condition::new(FAILING, said));
    }
    found
}

/// The drift that remains after acting, as far as the pass knows without reading the host
/// again: what it planned, less what succeeded.
pub fn remaining(plan: &Plan, results: &[ActionResult]) -> Plan {
    let done: BTreeSet<&str> = results
        .iter()
        .filter(|r| r.outcome.is_ok())
        .map(|r| r.action.name())
        .collect();
    let undone = |a: &&Action| !done.contains(a.name());
    let mut in_sync = plan.in_sync.clone();
    in_sync.extend(
        plan.actions()
            .filter(|a| done.contains(a.name()) && !matches!(a, Action::Remove { .. }))
            .map(|a| a.name().to_string()),
    );
    Plan {
        waves: plan
            .waves
            .iter()
            .map(|wave| wave.iter().filter(undone).cloned().collect())
            .collect(),
        removing: plan
            .removing
            .iter()
            .filter(|n| !done.contains(n.as_str()))
            .cloned()
            .collect(),
        in_sync,
        ..plan.clone()
    }
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::Reason;
    use crate::record::spec::ContainerSpec;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    /// Conditions from (subject, said) pairs; the kind is the first word of what is said,
    /// `failing` for failures and crash loops, as `conditions` makes them.
    fn conditions_of(pairs: &[(&str, &str)]) -> Conditions {
        pairs
            .iter()
            .map(|(s, c)| (s.to_string(), condition(c)))
            .collect()
    }

    fn condition(said: &str) -> Condition {
        let kind = match said.split([' ', ',', ':']).next().unwrap_or_default() {
            _ if said.starts_with("failed") || said == KEEPS_DYING => FAILING,
            "missing" => "missing",
            "stopped" => "stopped",
            "extra" => "extra",
            "refused" => "refused",
            "could" => "error",
            _ => "changed",
        };
        Condition::new(kind, said)
    }

    fn stages(review: &Review) -> Vec<(String, Stage)> {
        review
            .news
            .iter()
            .map(|n| (n.subject.clone(), n.stage))
            .collect()
    }

    /// Passes one after another, each from the memory the one before left.
    fn passes(steps: &[(u64, &[(&str, &str)])]) -> Vec<Vec<(String, Stage)>> {
        let mut memory = Memory::default();
        steps
            .iter()
            .map(|(secs, now)| {
                let review = review(&memory, &conditions_of(now), true, at(*secs), HOUR);
                memory = review.memory.clone();
                stages(&review)
            })
            .collect()
    }

    #[test]
    fn a_failure_that_persists_is_told_once_then_reminded_hourly_then_resolved() {
        let failing: &[(&str, &str)] = &[("web", "failed to create")];
        let told = passes(&[
            (0, failing),
            (60, failing),
            (120, failing),
            (3599, failing),
            (3600, failing),
            (3660, failing),
            (3720, &[]),
            (3780, &[]),
        ]);
        let web = |stage| vec![("web".to_string(), stage)];
        assert_eq!(
            told,
            [
                web(Stage::New),
                vec![],
                vec![],
                vec![],
                web(Stage::Ongoing),
                vec![],
                web(Stage::Resolved),
                vec![],
            ]
        );
    }

    #[test]
    fn one_lasting_failure_in_other_words_is_not_told_again() {
        let told = passes(&[
            (0, &[("web", "failed to create")]),
            (60, &[("web", "failed to start")]),
            (120, &[("web", KEEPS_DYING)]),
            (180, &[("web", "failed to start")]),
        ]);
        assert_eq!(
            told,
            [vec![("web".into(), Stage::New)], vec![], vec![], vec![]]
        );
    }

    #[test]
    fn a_changed_condition_is_told_and_starts_its_own_clock() {
        let mut memory = Memory::default();
        let first = review(
            &memory,
            &conditions_of(&[("web", "stopped")]),
            true,
            at(0),
            HOUR,
        );
        memory = first.memory;
        let second = review(
            &memory,
            &conditions_of(&[("web", "missing")]),
            true,
            at(30),
            HOUR,
        );
        assert_eq!(stages(&second), [("web".into(), Stage::Changed)]);
        assert_eq!(second.news[0].since, at(30));
        assert_eq!(second.memory.situations["web"].since_ms, millis(at(30)));
    }

    #[test]
    fn a_situation_no_receiver_took_keeps_when_it_began_until_it_is_told() {
        let failing = conditions_of(&[("web", "failed to create")]);
        let first = review(&Memory::default(), &failing, true, at(0), HOUR);
        assert_eq!(stages(&first), [("web".into(), Stage::New)]);
        // Nobody took it: the next passes tell it again, as new, from when it began.
        let mut memory = first.untold;
        for secs in [60, 120] {
            let again = review(&memory, &failing, true, at(secs), HOUR);
            assert_eq!(stages(&again), [("web".into(), Stage::New)]);
            assert_eq!(again.news[0].since, at(0));
            memory = again.untold;
        }
        let told = review(&memory, &failing, true, at(180), HOUR);
        assert_eq!(told.news[0].since, at(0));
        assert_eq!(told.memory.situations["web"].since_ms, millis(at(0)));
        assert!(told.memory.untold.is_empty());
        // A change no one heard of keeps its own beginning; a resolution no one heard of is
        // told again.
        let missing = conditions_of(&[("web", "missing")]);
        let changed = review(&told.memory, &missing, true, at(240), HOUR);
        assert_eq!(stages(&changed), [("web".into(), Stage::Changed)]);
        let again = review(&changed.untold, &missing, true, at(300), HOUR);
        assert_eq!(stages(&again), [("web".into(), Stage::Changed)]);
        assert_eq!(again.news[0].since, at(240));
        let gone = review(&again.memory, &Conditions::new(), true, at(360), HOUR);
        let still = review(&gone.untold, &Conditions::new(), true, at(420), HOUR);
        assert_eq!(stages(&still), [("web".into(), Stage::Resolved)]);
        // What began and ended while no receiver took anything is forgotten.
        let brief = review(&Memory::default(), &failing, true, at(0), HOUR).untold;
        let over = review(&brief, &Conditions::new(), true, at(60), HOUR);
        assert!(over.news.is_empty());
        assert_eq!(over.memory, Memory::default());
    }

    #[test]
    fn a_reminder_keeps_when_the_situation_began() {
        let mut memory = Memory::default();
        let now = conditions_of(&[(PASS, "refused: over --max-removals")]);
        memory = review(&memory, &now, true, at(0), HOUR).memory;
        let reminder = review(&memory, &now, true, at(7200), HOUR);
        assert_eq!(reminder.news[0].stage, Stage::Ongoing);
        assert_eq!(reminder.news[0].since, at(0));
        assert_eq!(reminder.memory.situations[PASS].told_ms, millis(at(7200)));
    }

    #[test]
    fn a_pass_that_could_not_run_resolves_nothing_about_the_containers() {
        let mut memory = Memory::default();
        memory = review(
            &memory,
            &conditions_of(&[("web", "failed to create")]),
            true,
            at(0),
            HOUR,
        )
        .memory;
        let down = review(
            &memory,
            &conditions_of(&[(PASS, "could not run")]),
            false,
            at(60),
            HOUR,
        );
        assert_eq!(stages(&down), [(PASS.into(), Stage::New)]);
        assert!(down.memory.situations.contains_key("web"));
        let back = review(&down.memory, &Conditions::new(), true, at(120), HOUR);
        let mut resolved = stages(&back);
        resolved.sort();
        assert_eq!(
            resolved,
            [
                (PASS.into(), Stage::Resolved),
                ("web".into(), Stage::Resolved)
            ]
        );
        assert!(back.memory.situations.is_empty());
    }

    #[test]
    fn nothing_unresolved_and_nothing_told_is_quiet() {
        let quiet = review(&Memory::default(), &Conditions::new(), true, at(0), HOUR);
        assert!(quiet.news.is_empty());
        assert_eq!(quiet.memory, Memory::default());
    }

    #[test]
    fn a_clock_that_went_back_neither_reminds_nor_panics() {
        let mut memory = Memory::default();
        let now = conditions_of(&[("web", "stopped")]);
        memory = review(&memory, &now, true, at(7200), HOUR).memory;
        assert!(review(&memory, &now, true, at(0), HOUR).news.is_empty());
    }

    fn spec() -> ContainerSpec {
        serde_json::from_value(serde_json::json!({"image": "img:1", "image_id": "sha256:1"}))
            .unwrap()
    }

    fn create(name: &str) -> Action {
        Action::Create {
            name: name.into(),
            spec: spec(),
            start: true,
        }
    }

    fn start(name: &str) -> Action {
        Action::Start {
            name: name.into(),
            id: format!("{name}-id"),
            spec: spec(),
        }
    }

    fn remove(name: &str) -> Action {
        Action::Remove {
            name: name.into(),
            id: format!("{name}-id"),
            image: "busybox".into(),
            leftover: None,
        }
    }

    fn ok(action: Action) -> ActionResult {
        ActionResult {
            action,
            outcome: Ok(vec![]),
            outdated: false,
        }
    }

    fn failed(action: Action) -> ActionResult {
        ActionResult {
            action,
            outcome: Err(anyhow::anyhow!("No such image: img:1 (sha256:1)")),
            outdated: false,
        }
    }

    #[test]
    fn what_succeeded_leaves_the_drift_and_what_failed_stays() {
        let plan = Plan {
            waves: vec![vec![remove("intruder")], vec![create("web"), create("db")]],
            in_sync: vec!["cache".into()],
            ..Plan::default()
        };
        let results = [
            ok(remove("intruder")),
            ok(create("db")),
            failed(create("web")),
        ];
        let left = remaining(&plan, &results);
        let names: Vec<&str> = left.actions().map(Action::name).collect();
        assert_eq!(names, ["web"]);
        assert_eq!(left.in_sync, ["cache", "db"]);
        let found = conditions(&left, &results, &[], &BTreeSet::new());
        assert_eq!(found, conditions_of(&[("web", "failed to create")]));
    }

    #[test]
    fn a_container_started_again_and_again_keeps_dying_whether_started_or_held() {
        let plan = Plan {
            waves: vec![vec![start("db"), start("web")]],
            ..Plan::default()
        };
        let dying: BTreeSet<String> = ["db".to_string()].into();
        let results = [ok(start("db")), ok(start("web"))];
        let started = conditions(&remaining(&plan, &results), &results, &[], &dying);
        assert_eq!(started, conditions_of(&[("db", KEEPS_DYING)]));

        let held = [Held {
            name: "db".into(),
            starts: 3,
            wait: Duration::from_secs(4),
            behind: None,
        }];
        let waiting = conditions(&remaining(&plan, &[]), &[], &held, &dying);
        assert_eq!(
            waiting,
            conditions_of(&[("db", KEEPS_DYING), ("web", "stopped")])
        );
    }

    #[test]
    fn drift_found_is_named_by_its_condition() {
        let replace = Action::Replace {
            name: "api".into(),
            id: "api-id".into(),
            spec: spec(),
            start: true,
            reason: Reason::Dependency("db".into()),
        };
        let plan = Plan {
            waves: vec![
                vec![remove("intruder")],
                vec![create("web"), replace.clone()],
            ],
            spared: vec![Action::Replace {
                name: "me".into(),
                id: "me-id".into(),
                spec: spec(),
                start: true,
                reason: Reason::Dependency("db".into()),
            }],
            ..Plan::default()
        };
        let found = conditions(&plan, &[], &[], &BTreeSet::new());
        assert_eq!(
            found,
            conditions_of(&[
                ("api", "shares a namespace with db, which is recreated"),
                ("intruder", "extra (image busybox)"),
                (
                    "me",
                    "shares a namespace with db, which is recreated, not replaced: guestlist \
                     runs in it"
                ),
                ("web", "missing"),
            ])
        );
    }
}
