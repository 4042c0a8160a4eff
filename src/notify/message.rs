//! The notification itself: one JSON document, whose `text` is a line a person reads (Slack,
//! Mattermost and Rocket.Chat incoming webhooks show it as it is) and whose other fields are
//! for machines. Pure. The README's schema describes exactly this.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::situation::{News, Stage, KEEPS_DYING, PASS};
use super::{Done, Report};

/// Parts of the text line beyond this many are counted, not written.
const MOST_PARTS: usize = 12;
/// An error longer than this is cut in the text line (the body's `actions` has it whole).
const ERROR_CHARS: usize = 200;

/// Where the notification comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub hostname: String,
    pub endpoint: String,
}

/// Whether a pass with these events and news has anything to tell.
pub fn worth_telling(report: &Report, news: &[News]) -> bool {
    !news.is_empty() || events(report).next().is_some()
}

/// Actions that succeeded and are news of their own: not the restarts of a container that
/// keeps dying, which its situation tells once.
fn events(report: &Report) -> impl Iterator<Item = &Done> {
    report.actions.iter().filter(|d| {
        d.error.is_none()
            && report.conditions.get(&d.container).map(|c| c.said.as_str()) != Some(KEEPS_DYING)
    })
}

pub fn body(host: &Host, report: &Report, news: &[News]) -> Value {
    let actions: Vec<Value> = report
        .actions
        .iter()
        .map(|d| {
            let mut item = json!({
                "action": d.verb,
                "container": d.container,
                "result": if d.error.is_none() { "ok" } else { "failed" },
                "reason": d.reason,
            });
            if let Some(error) = &d.error {
                item["error"] = json!(error);
            }
            item
        })
        .collect();
    let situations: Vec<Value> = news
        .iter()
        .map(|n| {
            json!({
                "container": (n.subject != PASS).then_some(&n.subject),
                "kind": n.kind,
                "condition": n.condition,
                "state": n.stage.word(),
                "since": rfc3339(n.since),
            })
        })
        .collect();
    json!({
        "text": text(host, report, news),
        "host": {"hostname": host.hostname, "endpoint": host.endpoint},
        "pass": {
            "command": report.command,
            "dry_run": report.dry_run,
            "at": rfc3339(report.at),
            "duration_seconds": (report.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            "ended": report.ended_word(),
            "error": report.error,
        },
        "in_sync": report.in_sync(),
        "actions": actions,
        "drift": report.drift,
        "refused": report.refused.as_ref().map(|r| json!({
            "removals": r.removals, "limit": r.limit, "message": r.message,
        })),
        "situations": situations,
    })
}

/// The one line: `guestlist on HOST: intruder removed (extra, image busybox); web: failed to
/// create: No such image: ...`.
pub fn text(host: &Host, report: &Report, news: &[News]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let resolved = |name: &str| {
        news.iter()
            .any(|n| n.subject == name && n.stage == Stage::Resolved)
    };
    for d in events(report) {
        let back = match resolved(&d.container) && d.verb != "remove" {
            true => ", back in sync",
            false => "",
        };
        parts.push(format!("{} {}{back}", d.container, d.done));
    }
    let acted: Vec<&str> = events(report).map(|d| d.container.as_str()).collect();
    for n in news {
        let part = match n.stage {
            Stage::New | Stage::Changed => situation(report, &n.subject, &n.condition),
            Stage::Ongoing => format!(
                "still {} (since {})",
                situation(report, &n.subject, &n.condition),
                ago(n.since, report.at)
            ),
            Stage::Resolved if acted.contains(&n.subject.as_str()) => continue,
            Stage::Resolved => resolution(report, n),
        };
        parts.push(part);
    }
    let more = parts.len().saturating_sub(MOST_PARTS);
    parts.truncate(MOST_PARTS);
    if more > 0 {
        parts.push(format!("and {more} more"));
    }
    let mode = if report.dry_run { " (dry run)" } else { "" };
    format!("guestlist on {}{mode}: {}", host.hostname, parts.join("; "))
}

/// A situation as a person reads it, with the error of a failed action.
fn situation(report: &Report, subject: &str, condition: &str) -> String {
    if subject == PASS {
        return match &report.error {
            Some(error) => format!("{condition}: {}", cut(error)),
            None => condition.to_string(),
        };
    }
    let error = report
        .actions
        .iter()
        .filter(|d| d.container == subject)
        .find_map(|d| d.error.as_deref());
    match error {
        Some(error) => format!("{subject}: {condition}: {}", cut(error)),
        None if report.dry_run => format!("{subject}: {condition} (would be fixed)"),
        None => format!("{subject}: {condition}"),
    }
}

/// How a situation ended, by where its container stands now: on the list (back in sync, or
/// an extra approved with `snapshot NAME`), off it (dropped with `forget`, or an extra gone),
/// or tolerated by an allow rule.
fn resolution(report: &Report, n: &News) -> String {
    let subject = &n.subject;
    if *subject == PASS {
        return format!(
            "passes run and act again (was: {})",
            first_words(&n.condition)
        );
    }
    let listed = report.listed.contains(subject);
    match (n.kind == "extra", listed) {
        (false, true) => format!("{subject} is back in sync"),
        (false, false) => format!("{subject} is no longer on the list"),
        (true, true) => format!("{subject} is on the list now"),
        (true, false) if report.tolerated.contains(subject) => {
            format!("{subject} is tolerated now (an allow rule)")
        }
        (true, false) => format!("{subject} is gone"),
    }
}

/// The start of a pass condition, without the numbers that follow its colon.
fn first_words(condition: &str) -> &str {
    condition.split(':').next().unwrap_or(condition)
}

fn cut(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    match line.chars().count() > ERROR_CHARS {
        true => format!("{}…", line.chars().take(ERROR_CHARS).collect::<String>()),
        false => line.to_string(),
    }
}

/// How long ago, in whole minutes (a situation's age, not a timestamp).
fn ago(since: SystemTime, now: SystemTime) -> String {
    let elapsed = now.duration_since(since).unwrap_or_default();
    let minutes = std::time::Duration::from_secs(elapsed.as_secs() / 60 * 60);
    match minutes.is_zero() {
        true => "less than a minute".into(),
        false => humantime::format_duration(minutes).to_string(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::notify::situation::{Condition, Conditions};
    use crate::notify::Refused;
    use crate::plan::PassEnd;
    use std::time::{Duration, UNIX_EPOCH};

    fn host() -> Host {
        Host {
            hostname: "web-1".into(),
            endpoint: "unix:///var/run/docker.sock".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn done(verb: &'static str, container: &str, done: &str, error: Option<&str>) -> Done {
        Done {
            verb,
            container: container.into(),
            reason: "missing".into(),
            done: done.into(),
            error: error.map(String::from),
        }
    }

    fn report(actions: Vec<Done>, conditions: &[(&str, &str)]) -> Report {
        Report {
            command: "enforce",
            dry_run: false,
            at: at(0),
            duration: Duration::from_millis(1234),
            ended: PassEnd::Drift,
            actions,
            drift: Some(json!({"in_sync": false})),
            refused: None,
            error: None,
            conditions: conditions
                .iter()
                .map(|(s, c)| (s.to_string(), Condition::new("failing", *c)))
                .collect::<Conditions>(),
            listed: ["web", "db"].map(String::from).into(),
            tolerated: Default::default(),
        }
    }

    fn news(subject: &str, stage: Stage, condition: &str, since: u64) -> News {
        News {
            subject: subject.into(),
            stage,
            kind: "failing".into(),
            condition: condition.into(),
            since: at(since),
        }
    }

    #[test]
    fn one_line_names_what_was_done_and_what_failed() {
        let r = report(
            vec![
                done("remove", "intruder", "removed (extra, image busybox)", None),
                done(
                    "create",
                    "web",
                    "created",
                    Some("No such image: img:1\nmore"),
                ),
            ],
            &[("web", "failed to create")],
        );
        let told = [news("web", Stage::New, "failed to create", 0)];
        assert_eq!(
            text(&host(), &r, &told),
            "guestlist on web-1: intruder removed (extra, image busybox); web: failed to create: \
             No such image: img:1"
        );
    }

    #[test]
    fn a_reminder_says_since_when_and_a_resolution_says_back_in_sync() {
        let r = report(vec![], &[("db", KEEPS_DYING)]);
        let told = [
            news("db", Stage::Ongoing, KEEPS_DYING, 0),
            news("web", Stage::Resolved, "failed to create", 0),
            News {
                kind: "extra".into(),
                ..news("intruder", Stage::Resolved, "extra (image busybox)", 0)
            },
        ];
        let r = Report {
            at: at(3 * 3600 + 125),
            ..r
        };
        assert_eq!(
            text(&host(), &r, &told),
            "guestlist on web-1: still db: keeps dying (since 3h 2m); web is back in sync; \
             intruder is gone"
        );
    }

    #[test]
    fn a_resolution_says_where_the_container_stands_now() {
        let r = Report {
            tolerated: ["ci-1".to_string()].into(),
            ..report(vec![], &[])
        };
        let extra = |name| News {
            kind: "extra".into(),
            ..news(name, Stage::Resolved, "extra (image busybox)", 0)
        };
        let told = [
            news("web", Stage::Resolved, "failed to create", 0),
            news("old", Stage::Resolved, "failed to create", 0),
            extra("db"),
            extra("ci-1"),
            extra("intruder"),
        ];
        assert_eq!(
            text(&host(), &r, &told),
            "guestlist on web-1: web is back in sync; old is no longer on the list; db is on \
             the list now; ci-1 is tolerated now (an allow rule); intruder is gone"
        );
    }

    #[test]
    fn a_container_brought_back_says_so_once() {
        let r = report(
            vec![done("create", "web", "created and started", None)],
            &[],
        );
        let told = [news("web", Stage::Resolved, "failed to create", 0)];
        assert_eq!(
            text(&host(), &r, &told),
            "guestlist on web-1: web created and started, back in sync"
        );
    }

    #[test]
    fn the_restarts_of_a_dying_container_are_not_news_of_their_own() {
        let r = report(
            vec![done("start", "db", "started", None)],
            &[("db", KEEPS_DYING)],
        );
        assert!(!worth_telling(&r, &[]));
        let quiet = report(vec![], &[]);
        assert!(!worth_telling(&quiet, &[]));
    }

    #[test]
    fn the_pass_itself_and_a_dry_run_say_what_they_are() {
        let r = Report {
            dry_run: true,
            refused: Some(Refused {
                removals: 12,
                limit: 10,
                message: "refusing".into(),
            }),
            ..report(vec![], &[("intruder", "extra (image busybox)")])
        };
        let told = [
            news(PASS, Stage::New, "over --max-removals: 12 of 10", 0),
            news("intruder", Stage::New, "extra (image busybox)", 0),
        ];
        assert_eq!(
            text(&host(), &r, &told),
            "guestlist on web-1 (dry run): over --max-removals: 12 of 10; intruder: extra \
             (image busybox) (would be fixed)"
        );
        let back = [news(
            PASS,
            Stage::Resolved,
            "over --max-removals: 12 of 10",
            0,
        )];
        assert!(text(&host(), &r, &back)
            .ends_with("passes run and act again (was: over --max-removals)"));
    }

    #[test]
    fn a_long_list_is_counted_not_written() {
        let many: Vec<News> = (0..20)
            .map(|i| news(&format!("c{i}"), Stage::New, "missing", 0))
            .collect();
        let line = text(&host(), &report(vec![], &[]), &many);
        assert!(line.ends_with("c11: missing; and 8 more"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_body_has_every_field_of_the_schema() {
        let r = report(
            vec![done("create", "web", "created", Some("No such image"))],
            &[("web", "failed to create")],
        );
        let told = [news("web", Stage::New, "failed to create", 0)];
        let b = body(&host(), &r, &told);
        assert_eq!(b["host"]["hostname"], "web-1");
        assert_eq!(b["pass"]["command"], "enforce");
        assert_eq!(b["pass"]["duration_seconds"], 1.234);
        assert_eq!(b["pass"]["at"], "2027-01-15T08:00:00Z");
        assert_eq!(b["in_sync"], false);
        assert_eq!(b["actions"][0]["result"], "failed");
        assert_eq!(b["actions"][0]["error"], "No such image");
        assert_eq!(b["situations"][0]["state"], "new");
        assert_eq!(b["situations"][0]["container"], "web");
        assert_eq!(b["refused"], Value::Null);
    }
}
