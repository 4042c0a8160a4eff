//! The metrics of passes, outages and notifications, as the text file and the endpoint carry
//! them.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::plan::Tolerated;

fn plan() -> Plan {
    Plan {
        waves: vec![vec![
            Action::Remove {
                name: "x".into(),
                id: "1".into(),
                image: "i".into(),
                leftover: None,
            },
            Action::Start {
                name: "db".into(),
                id: "2".into(),
                spec: serde_json::from_str::<crate::record::spec::ContainerSpec>(
                    r#"{"image":"i","image_id":"s"}"#,
                )
                .unwrap(),
            },
        ]],
        tolerated: vec![Tolerated {
            name: "ci".into(),
            image: "i".into(),
            rule: "name=ci".into(),
        }],
        in_sync: vec!["web".into()],
        removing: vec!["cache".into()],
        spared: Vec::new(),
        managed: Vec::new(),
    }
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_pass_becomes_gauges_by_state_and_action() {
    let metrics = Metrics::new(false).unwrap();
    let plan = plan();
    let results = vec![ActionResult {
        action: plan.waves[0][0].clone(),
        outcome: Ok(Vec::new()),
        outdated: false,
    }];
    metrics.record(&PassFacts {
        plan: Some(&plan),
        running: 4,
        held_back: 1,
        results: &results,
        ended: PassEnd::Drift,
        duration: Duration::from_millis(250),
    });
    let text = metrics.render().unwrap();
    assert_eq!(
        value(&text, r#"guestlist_containers{state="allowed"}"#),
        3.0
    );
    assert_eq!(
        value(&text, r#"guestlist_containers{state="missing"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"guestlist_containers{state="stopped"}"#),
        1.0
    );
    assert_eq!(value(&text, r#"guestlist_containers{state="extra"}"#), 1.0);
    assert_eq!(
        value(&text, r#"guestlist_containers{state="running"}"#),
        4.0
    );
    assert_eq!(
        value(&text, r#"guestlist_containers{state="tolerated"}"#),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"guestlist_last_pass_actions{kind="remove",result="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"guestlist_last_pass_actions{kind="start",result="failed"}"#
        ),
        0.0
    );
    assert_eq!(value(&text, "guestlist_held_back"), 1.0);
    assert_eq!(value(&text, "guestlist_pass_duration_seconds"), 0.25);
    assert_eq!(value(&text, "guestlist_last_pass_success"), 0.0);
    let totals: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("_total"))
        .collect();
    assert_eq!(
        totals,
        ["guestlist_notifications_failed_total 0"],
        "a one-shot run exports no counters but the one it carries over"
    );
    assert_eq!(last_success_in(&text), None);
}

#[test]
fn failed_notifications_are_carried_over_from_run_to_run() {
    let first = Metrics::new(false).unwrap();
    first.count_failed_notifications(notifications_failed_in("") + 2);
    let text = first.render().unwrap();
    assert_eq!(notifications_failed_in(&text), 2);
    let second = Metrics::new(false).unwrap();
    second.count_failed_notifications(notifications_failed_in(&text) + 1);
    assert_eq!(notifications_failed_in(&second.render().unwrap()), 3);
}

/// Every `guestlist_*` name in `text`.
fn names_used(text: &str) -> std::collections::BTreeSet<String> {
    text.match_indices("guestlist_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

fn exported() -> std::collections::BTreeSet<String> {
    let text = Metrics::new(true).unwrap().render().unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let text = include_str!("../../../contrib/grafana/guestlist.json");
    let dashboard: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut queries = String::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries += target["expr"].as_str().unwrap();
            queries.push('\n');
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        queries += variable["definition"].as_str().unwrap_or_default();
    }
    let used = names_used(&queries);
    assert!(used.len() >= 6, "{used:?}");
    let exported = exported();
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "the dashboard queries {unknown:?}");
}

#[test]
fn the_alerts_use_only_exported_metrics() {
    let used = names_used(include_str!("../../../contrib/prometheus/alerts.yml"));
    assert!(used.len() >= 4, "{used:?}");
    let exported = exported();
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "the alerts use {unknown:?}");
}

#[test]
fn a_long_running_process_also_counts_and_remembers_its_last_success() {
    let metrics = Metrics::new(true).unwrap();
    let plan = plan();
    let facts = |ended| PassFacts {
        plan: Some(&plan),
        running: 0,
        held_back: 0,
        results: &[],
        ended,
        duration: Duration::ZERO,
    };
    metrics.record(&facts(PassEnd::InSync));
    metrics.record(&facts(PassEnd::Error));
    metrics.record(&facts(PassEnd::InSync));
    let text = metrics.render().unwrap();
    assert_eq!(
        value(&text, r#"guestlist_passes_total{result="in_sync"}"#),
        2.0
    );
    assert_eq!(
        value(&text, r#"guestlist_passes_total{result="error"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"guestlist_passes_total{result="refused"}"#),
        0.0
    );
    assert_eq!(
        value(
            &text,
            r#"guestlist_actions_total{kind="create",result="ok"}"#
        ),
        0.0
    );
    assert!(last_success_in(&text).unwrap() > 1.7e9);
}

/// One GET of /metrics on a fresh connection; `None` if no answer comes within `within`.
async fn scrape(address: std::net::SocketAddr, within: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        Some(answer)
    };
    tokio::time::timeout(within, exchange).await.ok().flatten()
}

#[tokio::test]
async fn scrapes_beyond_the_bound_wait_for_a_free_slot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        std::sync::Arc::new(Metrics::new(true).unwrap()),
    ));
    let answered = scrape(address, Duration::from_secs(5)).await.unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // Clients that connect and send nothing hold every slot.
    let mut idle = Vec::new();
    for _ in 0..SCRAPES_AT_ONCE {
        idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(scrape(address, Duration::from_millis(500)).await, None);

    // One of them goes away: its slot serves the next scrape.
    idle.pop();
    let answered = scrape(address, Duration::from_secs(5)).await.unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}
