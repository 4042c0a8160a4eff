//! Report: render a plan (what `diff` and `enforce --dry-run` show) or the results of a pass as
//! text or JSON. Pure: returns strings, prints nothing.
//!
//! Text reads like a plan, one line per container: `+` create, `>` start, `~` replace,
//! `-` remove, and two spaces for a tolerated extra. The same words are the JSON keys.

use std::time::Duration;

use serde_json::{json, Value};

use crate::backoff::Held;

use crate::execute::ActionResult;
use crate::plan::{Action, Plan, Reason};

/// `diff` and `enforce --dry-run` as text; starts held back by the crash-loop backoff say so.
pub fn plan_text(plan: &Plan, held: &[Held]) -> String {
    let width = name_width(
        plan.actions()
            .chain(&plan.spared)
            .map(Action::name)
            .chain(plan.removing.iter().map(String::as_str))
            .chain(plan.tolerated.iter().map(|t| t.name.as_str())),
    );
    let mut out = String::new();
    for action in plan.actions().chain(&plan.spared) {
        let then = match held.iter().find(|h| h.name == action.name()) {
            Some(h) => held_back(h),
            None if plan.spared.contains(action) => SPARED.into(),
            None => would(action).into(),
        };
        out += &format!(
            "{} {:width$}  {}: {then}\n",
            action.marker(),
            action.name(),
            condition(action),
        );
    }
    for name in &plan.removing {
        out +=
            &format!("+ {name:width$}  missing (being removed): will be created once it is gone\n");
    }
    for t in &plan.tolerated {
        out += &format!(
            "  {:width$}  tolerated by {} (image {})\n",
            t.name, t.rule, t.image
        );
    }
    out += &summary(plan);
    if !held.is_empty() {
        out += &format!("; {} held back", held.len());
    }
    out.push('\n');
    out
}

/// What is wrong with the container the action is for.
pub fn condition(action: &Action) -> String {
    match action {
        Action::Create { .. } => "missing".into(),
        Action::Start { .. } => "stopped".into(),
        Action::Replace { reason, .. } => why(reason),
        Action::Remove { image, .. } => format!("extra (image {image})"),
    }
}

fn would(action: &Action) -> &'static str {
    match action {
        Action::Create { start: true, .. } => "would be created and started",
        Action::Create { start: false, .. } => "would be created (recorded stopped)",
        Action::Start { .. } => "would be started",
        Action::Replace { .. } => "would be replaced",
        Action::Remove { .. } => "would be removed",
    }
}

/// Why a start waits, and for how long.
pub fn held_back(held: &Held) -> String {
    match &held.behind {
        Some(dep) => format!("held back while {dep}, which it needs, keeps dying"),
        None => format!(
            "keeps dying ({} {} did not stay up): next start in {}",
            held.starts,
            if held.starts == 1 { "start" } else { "starts" },
            whole_seconds(held.wait)
        ),
    }
}

/// A wait rounded up to whole seconds: "next start in 0s" would be a lie.
fn whole_seconds(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn why(reason: &Reason) -> String {
    match reason {
        Reason::Changed(fields) => format!("changed {}", fields.join(", ")),
        Reason::Dependency(owner) => format!("shares a namespace with {owner}, which is recreated"),
    }
}

/// Why a changed container is left as it is.
const SPARED: &str =
    "not replaced: guestlist runs in it (replace it by hand, or approve it with `guestlist snapshot NAME`)";

fn summary(plan: &Plan) -> String {
    let count =
        |f: fn(&Action) -> bool| plan.actions().chain(&plan.spared).filter(|a| f(a)).count();
    let missing = count(|a| matches!(a, Action::Create { .. })) + plan.removing.len();
    let stopped = count(|a| matches!(a, Action::Start { .. }));
    let changed = count(|a| matches!(a, Action::Replace { .. }));
    let extra = count(|a| matches!(a, Action::Remove { .. }));
    let allowed = plan.in_sync.len() + missing + stopped + changed;
    let tolerated = plan.tolerated.len();
    if plan.is_empty() {
        format!("in sync: {allowed} allowed, {tolerated} tolerated")
    } else {
        format!(
            "drift: {missing} missing, {stopped} stopped, {changed} changed, {extra} extra \
             ({allowed} allowed, {tolerated} tolerated)"
        )
    }
}

/// `diff --format json`: one object with the arrays `missing`, `stopped`, `changed`, `extra`
/// and `tolerated`, each item an object with at least `name`.
pub fn plan_json(plan: &Plan) -> Value {
    let mut missing = Vec::new();
    let mut stopped = Vec::new();
    let mut changed = Vec::new();
    let mut extra = Vec::new();
    for action in plan.actions().chain(&plan.spared) {
        match action {
            Action::Create { name, spec, start } => missing.push(json!({
                "name": name, "image": spec.image, "image_id": spec.image_id, "start": start,
            })),
            Action::Start { name, id } => stopped.push(json!({"name": name, "id": id})),
            Action::Replace {
                name, id, reason, ..
            } => changed.push({
                let mut item = match reason {
                    Reason::Changed(fields) => json!({"name": name, "id": id, "fields": fields}),
                    Reason::Dependency(owner) => {
                        json!({"name": name, "id": id, "fields": [], "namespace_owner": owner})
                    }
                };
                if plan.spared.contains(action) {
                    item["not_replaced"] = json!("guestlist runs in it");
                }
                item
            }),
            Action::Remove { name, id, image } => {
                extra.push(json!({"name": name, "id": id, "image": image}))
            }
        }
    }
    for name in &plan.removing {
        missing.push(json!({"name": name, "being_removed": true}));
    }
    let tolerated: Vec<Value> = plan
        .tolerated
        .iter()
        .map(|t| json!({"name": t.name, "image": t.image, "rule": t.rule}))
        .collect();
    json!({
        "in_sync": plan.is_empty(),
        "missing": missing,
        "stopped": stopped,
        "changed": changed,
        "extra": extra,
        "tolerated": tolerated,
        "allowed_in_sync": plan.in_sync,
    })
}

/// The results of an `enforce` pass as text: one line per action, notes indented below it,
/// then a summary.
pub fn results_text(results: &[ActionResult]) -> String {
    let width = name_width(results.iter().map(|r| r.action.name()));
    let mut out = String::new();
    for r in results {
        let (marker, name) = (r.action.marker(), r.action.name());
        match &r.outcome {
            Ok(notes) => {
                out += &format!("{marker} {name:width$}  {}\n", done(&r.action));
                for note in notes {
                    out += &format!("  {:width$}  note: {note}\n", "");
                }
            }
            Err(cause) => {
                out += &format!("! {name:width$}  failed to {}: {cause}\n", verb(&r.action))
            }
        }
    }
    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    out += &format!(
        "enforce: {} actions, {} done, {failed} failed\n",
        results.len(),
        results.len() - failed
    );
    out
}

/// One action's result as a log line: what was wrong, what was done about it, and any notes.
pub fn result_line(r: &ActionResult) -> String {
    let (marker, name, condition) = (r.action.marker(), r.action.name(), condition(&r.action));
    // The condition already says why it was replaced, and what image an extra ran.
    let done = match &r.action {
        Action::Replace { .. } => "replaced".into(),
        Action::Remove { .. } => "removed (volumes kept)".into(),
        other => done(other),
    };
    match &r.outcome {
        Ok(notes) if notes.is_empty() => format!("{marker} {name}: {condition}: {done}"),
        Ok(notes) => format!(
            "{marker} {name}: {condition}: {done} (note: {})",
            notes.join("; note: ")
        ),
        Err(cause) => format!(
            "! {name}: {condition}: failed to {}: {cause}",
            verb(&r.action)
        ),
    }
}

fn done(action: &Action) -> String {
    match action {
        Action::Create { start: true, .. } => "created and started".into(),
        Action::Create { start: false, .. } => "created".into(),
        Action::Start { .. } => "started".into(),
        Action::Replace { reason, .. } => format!("replaced ({})", why(reason)),
        Action::Remove { image, .. } => format!("removed (image {image}; volumes kept)"),
    }
}

/// The action as a verb: create, start, replace, remove.
pub fn verb(action: &Action) -> &'static str {
    match action {
        Action::Create { .. } => "create",
        Action::Start { .. } => "start",
        Action::Replace { .. } => "replace",
        Action::Remove { .. } => "remove",
    }
}

fn name_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::Tolerated;
    use crate::spec::ContainerSpec;

    fn spec() -> ContainerSpec {
        serde_json::from_value(json!({"image": "img:1", "image_id": "sha256:1"})).unwrap()
    }

    fn drifted() -> Plan {
        Plan {
            waves: vec![
                vec![Action::Remove {
                    name: "intruder".into(),
                    id: "i1".into(),
                    image: "evil:1".into(),
                }],
                vec![
                    Action::Create {
                        name: "web".into(),
                        spec: spec(),
                        start: true,
                    },
                    Action::Start {
                        name: "db".into(),
                        id: "d1".into(),
                    },
                    Action::Replace {
                        name: "api".into(),
                        id: "a1".into(),
                        spec: spec(),
                        start: true,
                        reason: Reason::Changed(vec!["image".into(), "config.Env".into()]),
                    },
                ],
            ],
            tolerated: vec![Tolerated {
                name: "ci-1".into(),
                image: "runner:2".into(),
                rule: "name=ci-*".into(),
            }],
            in_sync: vec!["cache".into()],
            removing: Vec::new(),
            spared: Vec::new(),
        }
    }

    #[test]
    fn plan_text_has_one_marked_line_per_container_and_a_summary() {
        let text = plan_text(&drifted(), &[]);
        assert_eq!(
            text,
            "- intruder  extra (image evil:1): would be removed\n\
             + web       missing: would be created and started\n\
             > db        stopped: would be started\n\
             ~ api       changed image, config.Env: would be replaced\n\
             \x20 ci-1      tolerated by name=ci-* (image runner:2)\n\
             drift: 1 missing, 1 stopped, 1 changed, 1 extra (4 allowed, 1 tolerated)\n"
        );
    }

    #[test]
    fn held_starts_say_how_long_they_wait_and_log_lines_say_why() {
        let held = [Held {
            name: "db".into(),
            starts: 3,
            wait: Duration::from_millis(3200),
            behind: None,
        }];
        let text = plan_text(&drifted(), &held);
        assert!(
            text.contains(
                "> db        stopped: keeps dying (3 starts did not stay up): next start in 4s\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("tolerated); 1 held back\n"), "{text}");
        let removed = ActionResult {
            action: drifted().waves[0][0].clone(),
            outcome: Ok(Vec::new()),
            outdated: false,
        };
        assert_eq!(
            result_line(&removed),
            "- intruder: extra (image evil:1): removed (volumes kept)"
        );
    }

    #[test]
    fn in_sync_text_is_one_line() {
        let plan = Plan {
            in_sync: vec!["web".into()],
            ..Plan::default()
        };
        assert_eq!(plan_text(&plan, &[]), "in sync: 1 allowed, 0 tolerated\n");
    }

    #[test]
    fn plan_json_groups_containers_by_kind() {
        let json = plan_json(&drifted());
        assert_eq!(json["in_sync"], json!(false));
        assert_eq!(json["missing"][0]["name"], json!("web"));
        assert_eq!(json["stopped"][0]["name"], json!("db"));
        assert_eq!(json["changed"][0]["fields"], json!(["image", "config.Env"]));
        assert_eq!(json["extra"][0]["image"], json!("evil:1"));
        assert_eq!(json["tolerated"][0]["rule"], json!("name=ci-*"));
    }

    #[test]
    fn results_text_reports_notes_and_failures() {
        let results = vec![
            ActionResult {
                action: Action::Create {
                    name: "web".into(),
                    spec: spec(),
                    start: true,
                },
                outcome: Ok(vec!["img:1 moved".into()]),
                outdated: false,
            },
            ActionResult {
                action: Action::Start {
                    name: "db".into(),
                    id: "d1".into(),
                },
                outcome: Err("cannot start: boom".into()),
                outdated: false,
            },
        ];
        assert_eq!(
            results_text(&results),
            "+ web  created and started\n\
             \x20      note: img:1 moved\n\
             ! db   failed to start: cannot start: boom\n\
             enforce: 2 actions, 1 done, 1 failed\n"
        );
    }
}
