//! A container's own shutdown is honoured: without `--stop-timeout`, guestlist stops each
//! container as `docker stop` without `-t` does (its own stop signal, its own grace period), for
//! extras and for the old container of a replacement alike; and the grace periods of one pass
//! overlap. Shown by what the engine reports (its events, the requests it got), never by timing
//! guestlist. See: issue 13.

use serde_json::{json, Value};

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::{podman, Sandbox, LABEL};

/// A container that stops cleanly only if it is given its own signal (USR1) and more than the
/// engine's default 10 s: on USR1 it takes 11 s to shut down, then exits 0. Killed earlier, it
/// would die with 137.
const SLOW_SHUTDOWN: [&str; 3] = [
    "sh",
    "-c",
    "trap 'sleep 11; exit 0' USR1; while :; do sleep 1; done",
];

/// The engine's events about a sandbox's containers, streamed from the moment it is started
/// (asking afterwards with `--since` would depend on the engine's ring of its last 256 events,
/// which the other tests running meanwhile overflow).
struct Events {
    child: Option<std::process::Child>,
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Events {
    fn start(sb: &Sandbox) -> Events {
        let filter = format!("label={LABEL}={}", sb.prefix);
        let since = now().to_string();
        let child = std::process::Command::new("docker")
            .args(["events", "--since", &since, "--filter", &filter])
            .args(["--filter", "type=container", "--format", "{{json .}}"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("docker events");
        // Subscribed before anything happens: `--since` covers the moment it takes.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Events { child: Some(child) }
    }

    /// `(container, action, attributes and time)` in the engine's order, up to now.
    fn stop(mut self) -> Vec<(String, String, Value)> {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut child = self.child.take().expect("started");
        let _ = child.kill();
        let out = child.wait_with_output().expect("docker events output");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let event: Value = serde_json::from_str(line).expect("an event is JSON");
                let mut attributes = event["Actor"]["Attributes"].clone();
                attributes["time"] = event["time"].clone();
                let name = attributes["name"].as_str().unwrap_or_default().to_string();
                let action = event["Action"].as_str().unwrap_or_default().to_string();
                (name, action, attributes)
            })
            .collect()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The signals the engine sent `name` (its `kill` events), in order.
fn signals(events: &[(String, String, Value)], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(n, action, _)| n == name && action == "kill")
        .map(|(_, _, a)| a["signal"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The exit code `name` died with (Podman names the attribute otherwise).
fn exit_code(events: &[(String, String, Value)], name: &str) -> Option<String> {
    events
        .iter()
        .find(|(n, action, _)| n == name && action == "die")
        .map(|(_, _, a)| {
            let code = a.get("exitCode").or(a.get("containerExitCode"));
            code.and_then(Value::as_str).unwrap_or_default().to_string()
        })
}

/// Where in `events` `name` first did `action`.
fn position(events: &[(String, String, Value)], name: &str, action: &str) -> usize {
    events
        .iter()
        .position(|(n, a, _)| n == name && a == action)
        .unwrap_or_else(|| panic!("{name} did not {action}: {events:#?}"))
}

/// Make the recorded `short` differ from the live one (label `changed=value`), so that a pass
/// replaces it.
fn change_record(sb: &Sandbox, short: &str, value: &str) {
    let name = sb.name(short);
    sb.edit_state(|state| {
        for entry in state["containers"].as_array_mut().expect("containers") {
            if entry["name"] == json!(name) {
                entry["spec"]["config"]["Labels"]["changed"] = json!(value);
            }
        }
    });
}

#[test]
fn extras_and_replaced_containers_get_their_own_signal_and_grace_period_side_by_side() {
    let sb = Sandbox::new();
    let own = ["--stop-signal", "USR1", "--stop-timeout", "20"];
    sb.run("web", &own, &SLOW_SHUTDOWN);
    sb.snapshot(&[]);
    change_record(&sb, "web", "by hand");
    sb.run("extra", &own, &SLOW_SHUTDOWN);
    let events = Events::start(&sb);

    let out = sb.expect(&["enforce"], 0);
    assert!(out.contains(&format!("- {}", sb.name("extra"))), "{out}");
    assert!(out.contains(&format!("~ {}", sb.name("web"))), "{out}");
    let events = events.stop();
    let (extra, web) = (sb.name("extra"), sb.name("web"));
    for name in [&extra, &web] {
        // A clean exit after the 11 s it needed: not killed at the default 10 s.
        assert_eq!(
            exit_code(&events, name).as_deref(),
            Some("0"),
            "{events:#?}"
        );
    }
    let replacement_created = position(&events, &format!("{web}-guestlist-new"), "create");
    let extra_died = position(&events, &extra, "die");
    if podman() {
        // Podman reports no `kill` event for a stop: the replacement's work began while the
        // extra was still shutting down, and the two deaths came together, not 11 s apart.
        assert!(replacement_created < extra_died, "{events:#?}");
        let time = |i: usize| events[i].2["time"].as_i64().unwrap_or_default();
        let web_died = position(&events, &web, "die");
        assert!((time(web_died) - time(extra_died)).abs() < 5, "{events:#?}");
    } else {
        for name in [&extra, &web] {
            // USR1 is 10; never SIGKILL (9).
            assert_eq!(signals(&events, name), ["10"], "{name}: {events:#?}");
        }
        // The two grace periods overlapped: both stops began before either container died.
        let first_death = extra_died.min(position(&events, &web, "die"));
        let kills_before: Vec<&String> = events[..first_death]
            .iter()
            .filter(|(_, a, _)| a == "kill")
            .map(|(n, _, _)| n)
            .collect();
        assert!(
            kills_before.contains(&&extra) && kills_before.contains(&&web),
            "one stop waited for the other: {events:#?}"
        );
    }
    // The replacement started only once the extra was gone (Podman says `remove`).
    let gone = if podman() { "remove" } else { "destroy" };
    let extra_gone = position(&events, &extra, gone);
    let web_started = events
        .iter()
        .rposition(|(n, a, _)| n == &web && a == "start")
        .expect("the replacement started");
    assert!(extra_gone < web_started, "{events:#?}");
    sb.expect(&["diff"], 0);
}

#[test]
fn without_stop_timeout_the_stop_request_leaves_the_grace_period_to_the_container() {
    let sb = Sandbox::new();
    // Busybox `sleep` as PID 1 ignores SIGTERM: it is killed when its own 1 s are up.
    let short = ["--stop-timeout", "1"];
    sb.run("web", &short, &["sleep", "600"]);
    sb.snapshot(&[]);
    change_record(&sb, "web", "by hand");
    sb.run("extra", &short, &["sleep", "600"]);
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), |_, _| Verdict::Forward);
    let events = Events::start(&sb);

    sb.expect(&["--host", &proxy.url(), "enforce"], 0);
    let stops: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.starts_with("POST") && r.contains("/stop"))
        .collect();
    assert_eq!(stops.len(), 2, "{stops:#?}");
    assert!(
        stops.iter().all(|r| !r.contains("t=")),
        "a stop overrode the container's own grace period: {stops:#?}"
    );
    let events = events.stop();
    if !podman() {
        for name in [sb.name("extra"), sb.name("web")] {
            assert_eq!(signals(&events, &name), ["15", "9"], "{events:#?}");
        }
    }
    sb.expect(&["diff"], 0);

    // --stop-timeout overrides it for every stop.
    change_record(&sb, "web", "again");
    sb.run("extra2", &short, &["sleep", "600"]);
    sb.expect(
        &["--host", &proxy.url(), "enforce", "--stop-timeout", "2s"],
        0,
    );
    let overridden = proxy
        .seen()
        .into_iter()
        .filter(|r| r.starts_with("POST") && r.contains("/stop"))
        .filter(|r| r.contains("t=2"))
        .count();
    assert_eq!(overridden, 2, "{:#?}", proxy.seen());
}

#[test]
fn watch_stops_an_extra_with_its_own_signal_and_grace_period_too() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    // Running before the watch starts: its first pass removes it (an extra started while
    // watching may be removed before `docker run` has started it).
    let own = ["--stop-signal", "USR1", "--stop-timeout", "20"];
    sb.run("extra", &own, &SLOW_SHUTDOWN);
    let extra = sb.name("extra");
    let events = Events::start(&sb);
    let watch = sb.watch(&[]);
    watch.wait_for_log(
        &format!("- {extra}: extra"),
        std::time::Duration::from_secs(40),
    );
    let events = events.stop();
    // A clean exit after the 11 s it needed, from its own signal.
    assert_eq!(
        exit_code(&events, &extra).as_deref(),
        Some("0"),
        "{events:#?}"
    );
    if !podman() {
        assert_eq!(signals(&events, &extra), ["10"], "{events:#?}");
    }
}
