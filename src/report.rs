//! Report: render a plan (what `diff` and `enforce --dry-run` show) or the results of a pass as
//! text or JSON. Pure: returns strings, prints nothing.
//!
//! Text reads like a plan, one line per container: `+` create, `>` start, `~` replace,
//! `-` remove, and two spaces for a tolerated extra. The same words are the JSON keys.

use std::time::Duration;

use serde_json::{json, Value};

use crate::plan::{Action, ActionResult, Held, Leftover, Managed, Plan, Reason};
use crate::record::change::Change;
use crate::record::spec::short_id;

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
            action.condition(),
        );
        out += &change_lines(action);
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
    out += &managed_lines(plan);
    out += &summary(plan);
    if !held.is_empty() {
        out += &format!("; {} held back", held.len());
    }
    out.push('\n');
    out
}

fn would(action: &Action) -> &'static str {
    match action {
        Action::Create { start: true, .. } => "would be created and started",
        Action::Create { start: false, .. } => "would be created (recorded stopped)",
        Action::Start { .. } => "would be started",
        Action::Replace { .. } => "would be replaced",
        Action::Remove { .. } => "would be removed",
        Action::PutBack { .. } => "would get its name back (set aside by an interrupted pass)",
        Action::Finish { .. } => "would be started, and the old container set aside removed",
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

/// Why a changed container is left as it is.
const SPARED: &str =
    "not replaced: guestlist runs in it (replace it by hand, or approve it with `guestlist snapshot NAME`)";

fn summary(plan: &Plan) -> String {
    let count =
        |f: fn(&Action) -> bool| plan.actions().chain(&plan.spared).filter(|a| f(a)).count();
    let missing = count(|a| matches!(a, Action::Create { .. })) + plan.removing.len();
    let stopped = count(|a| matches!(a, Action::Start { .. } | Action::PutBack { .. }));
    let changed = count(|a| matches!(a, Action::Replace { .. } | Action::Finish { .. }));
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
            Action::Start { name, id, .. } => stopped.push(json!({"name": name, "id": id})),
            Action::Replace {
                name, id, reason, ..
            } => changed.push({
                let mut item = match reason {
                    Reason::Changed(changes) | Reason::Redeployed(changes) => json!({
                        "name": name, "id": id,
                        "fields": changes.iter().map(|c| &c.field).collect::<Vec<_>>(),
                        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
                    }),
                    Reason::Dependency(owner) => {
                        json!({"name": name, "id": id, "fields": [], "namespace_owner": owner})
                    }
                };
                if plan.spared.contains(action) {
                    item["not_replaced"] = json!("guestlist runs in it");
                }
                if matches!(reason, Reason::Redeployed(_)) {
                    item["redeployed_by"] = json!("compose");
                    item["accept_with"] = json!(format!("guestlist snapshot {name}"));
                }
                item
            }),
            Action::Remove {
                name,
                id,
                image,
                leftover,
            } => {
                let mut item = json!({"name": name, "id": id, "image": image});
                if let Some(leftover) = leftover {
                    item["left_by_interrupted_pass"] = json!(match leftover {
                        Leftover::Unstarted => "unstarted replacement",
                        Leftover::SetAside => "set aside",
                    });
                }
                extra.push(item)
            }
            Action::Finish {
                name, id, aside, ..
            } => changed.push(json!({
                "name": name, "id": id, "fields": [], "set_aside": aside,
            })),
            Action::PutBack { name, id, .. } => {
                stopped.push(json!({"name": name, "id": id, "set_aside": true}))
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
    let managed: Vec<Value> = plan
        .managed
        .iter()
        .map(|m| json!({"name": m.name, "by": m.by.name(), "listed": m.listed}))
        .collect();
    json!({
        "in_sync": plan.is_empty(),
        "missing": missing,
        "stopped": stopped,
        "changed": changed,
        "extra": extra,
        "tolerated": tolerated,
        "managed": managed,
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
                out += &change_lines(&r.action);
                for note in notes {
                    out += &format!("  {:width$}  note: {note}\n", "");
                }
            }
            Err(cause) => {
                out += &format!(
                    "! {name:width$}  failed to {}: {cause:#}\n",
                    r.action.verb()
                )
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
    let (marker, name, condition) = (r.action.marker(), r.action.name(), r.action.condition());
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
            "! {name}: {condition}: failed to {}: {cause:#}",
            r.action.verb()
        ),
    }
}

/// One line per orchestrator whose containers are left to it: `  managed by swarm: 2 (web.1.x,
/// web.2.y)`, and what to do about those still on the list.
fn managed_lines(plan: &Plan) -> String {
    let mut out = String::new();
    let mut by: Vec<_> = plan.managed.iter().map(|m| m.by).collect();
    by.dedup();
    for orchestrator in by {
        let of: Vec<&Managed> = plan
            .managed
            .iter()
            .filter(|m| m.by == orchestrator)
            .collect();
        let names: Vec<&str> = of.iter().map(|m| m.name.as_str()).collect();
        out += &format!(
            "  managed by {}: {} ({}), left to it\n",
            orchestrator.name(),
            of.len(),
            names.join(", ")
        );
        let listed: Vec<&str> = of
            .iter()
            .filter(|m| m.listed)
            .map(|m| m.name.as_str())
            .collect();
        if !listed.is_empty() {
            out += &format!(
                "    on the list but never acted on: `guestlist forget {}`\n",
                listed.join(" ")
            );
        }
    }
    out
}

/// One indented line per changed field of a replacement, with both values as a person reads
/// them: `    host_config.Memory: 64 MiB -> 128 MiB`; for a compose deploy, how to keep it.
fn change_lines(action: &Action) -> String {
    let Action::Replace { reason, name, .. } = action else {
        return String::new();
    };
    let (Reason::Changed(changes) | Reason::Redeployed(changes)) = reason else {
        return String::new();
    };
    let mut out = String::new();
    if matches!(reason, Reason::Redeployed(_)) {
        out += &format!(
            "    a compose deploy: replacing {name} undoes it, and the next `docker compose up` \
             redoes it; to keep it: guestlist snapshot {name}\n"
        );
    }
    out + &changes
        .iter()
        .map(|c| match &c.summary {
            Some(summary) => format!("    {}: {summary}\n", c.field),
            None => format!(
                "    {}: {} -> {}\n",
                c.field,
                shown(&c.field, &c.recorded),
                shown(&c.field, &c.live)
            ),
        })
        .collect::<String>()
}

fn change_json(change: &Change) -> Value {
    let mut item = json!({"field": change.field, "recorded": change.recorded, "live": change.live});
    if let Some(summary) = &change.summary {
        item["summary"] = json!(summary);
    }
    item
}

/// The longest value shown in full on a change line; longer ones are cut in the middle.
const SHORT: usize = 60;

/// A value of `field` as a person reads it: sizes in MiB, CPUs as CPUs, ports as bindings,
/// an image as its reference and short id; anything long cut short.
fn shown(field: &str, value: &Value) -> String {
    let key = field.rsplit('.').next().unwrap_or(field);
    let text = match (key, value) {
        (_, Value::Null) => "(none)".to_string(),
        ("image", v) => format!(
            "{} ({})",
            v["image"].as_str().unwrap_or_default(),
            short_id(v["image_id"].as_str().unwrap_or_default())
        ),
        ("Memory" | "MemorySwap" | "MemoryReservation" | "ShmSize" | "KernelMemory", v) => {
            match v.as_i64() {
                Some(-1) => "unlimited".to_string(),
                Some(bytes) => human_bytes(bytes),
                None => compact(v),
            }
        }
        ("NanoCpus", v) => match v.as_i64() {
            Some(nano) => format!("{} CPUs", nano as f64 / 1e9),
            None => compact(v),
        },
        ("PortBindings", Value::Object(ports)) => {
            let bindings: Vec<String> = ports
                .iter()
                .flat_map(|(port, list)| {
                    let list = list.as_array().cloned().unwrap_or_default();
                    list.iter()
                        .map(|b| {
                            let ip = b["HostIp"].as_str().unwrap_or_default();
                            let host = b["HostPort"].as_str().unwrap_or_default();
                            let host = if host.is_empty() { "(any)" } else { host };
                            format!("{port} {ip}:{host}")
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            bindings.join(", ")
        }
        (_, Value::String(text)) => text.clone(),
        (_, v) => compact(v),
    };
    cut(&text)
}

fn compact(value: &Value) -> String {
    value.to_string()
}

/// `text` as it is, or its start and end around an ellipsis when it is longer than `SHORT`.
fn cut(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= SHORT {
        return text.to_string();
    }
    let head: String = chars[..SHORT - 15].iter().collect();
    let tail: String = chars[chars.len() - 12..].iter().collect();
    format!("{head}…{tail}")
}

fn human_bytes(bytes: i64) -> String {
    const UNITS: [(&str, i64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return match bytes % size == 0 {
                true => format!("{} {unit}", bytes / size),
                false => format!("{value:.1} {unit}"),
            };
        }
    }
    format!("{bytes} B")
}

pub(crate) fn done(action: &Action) -> String {
    match action {
        Action::Create { start: true, .. } => "created and started".into(),
        Action::Create { start: false, .. } => "created".into(),
        Action::Start { .. } => "started".into(),
        Action::Replace { reason, .. } => format!("replaced ({})", reason),
        Action::Remove {
            leftover: Some(_), ..
        } => format!("removed ({}; volumes kept)", action.condition()),
        Action::Remove { image, .. } => format!("removed (image {image}; volumes kept)"),
        Action::PutBack { start: true, .. } => "given its name back and started".into(),
        Action::Finish { .. } => "replaced (an interrupted replacement finished)".into(),
        Action::PutBack { start: false, .. } => "given its name back".into(),
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
    use crate::record::spec::ContainerSpec;

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
                    leftover: None,
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
                        spec: spec(),
                    },
                    Action::Replace {
                        name: "api".into(),
                        id: "a1".into(),
                        spec: spec(),
                        start: true,
                        reason: Reason::Changed(vec![
                            Change {
                                field: "image".into(),
                                recorded: json!({"image": "img:1", "image_id": "sha256:6ede1234abcdef"}),
                                live: json!({"image": "img:2", "image_id": "sha256:1f3a5678abcdef"}),
                                summary: None,
                            },
                            Change {
                                field: "config.Env".into(),
                                recorded: json!(["PASSWORD=<hidden>"]),
                                live: json!(["DEBUG=<hidden>", "PASSWORD=<hidden>"]),
                                summary: Some("PASSWORD changed, DEBUG added".into()),
                            },
                        ]),
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
            managed: vec![
                Managed {
                    name: "web.1.x".into(),
                    by: crate::record::rules::Orchestrator::Swarm,
                    listed: false,
                },
                Managed {
                    name: "web.2.y".into(),
                    by: crate::record::rules::Orchestrator::Swarm,
                    listed: true,
                },
            ],
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
             \x20   image: img:1 (6ede1234abcd) -> img:2 (1f3a5678abcd)\n\
             \x20   config.Env: PASSWORD changed, DEBUG added\n\
             \x20 ci-1      tolerated by name=ci-* (image runner:2)\n\
             \x20 managed by swarm: 2 (web.1.x, web.2.y), left to it\n\
             \x20   on the list but never acted on: `guestlist forget web.2.y`\n\
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
    fn values_read_in_the_units_a_person_reads() {
        let mib = |n: i64| json!(n * 1024 * 1024);
        assert_eq!(shown("host_config.Memory", &mib(64)), "64 MiB");
        assert_eq!(
            shown("host_config.ShmSize", &json!(1536 * 1024 * 1024)),
            "1.5 GiB"
        );
        assert_eq!(shown("host_config.MemorySwap", &json!(-1)), "unlimited");
        assert_eq!(
            shown("host_config.NanoCpus", &json!(500_000_000)),
            "0.5 CPUs"
        );
        assert_eq!(shown("host_config.Memory", &Value::Null), "(none)");
        let ports = json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                                      {"HostIp": "", "HostPort": ""}]});
        assert_eq!(
            shown("host_config.PortBindings", &ports),
            "80/tcp 127.0.0.1:8080, 80/tcp :(any)"
        );
        let long = json!(["sh", "-c", "x".repeat(100)]);
        let text = shown("config.Cmd", &long);
        assert_eq!(text.chars().count(), SHORT - 2);
        assert!(
            text.starts_with("[\"sh\",\"-c\",\"xxx") && text.contains('…'),
            "{text}"
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
        let changes = &json["changed"][0]["changes"];
        assert_eq!(changes[0]["field"], json!("image"));
        assert_eq!(changes[0]["live"]["image"], json!("img:2"));
        assert_eq!(
            changes[1]["summary"],
            json!("PASSWORD changed, DEBUG added")
        );
        assert_eq!(changes[1]["recorded"], json!(["PASSWORD=<hidden>"]));
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
                    spec: spec(),
                },
                outcome: Err(anyhow::anyhow!("cannot start: boom")),
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
