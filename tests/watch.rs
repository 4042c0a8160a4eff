//! `guestlist watch` against the real engine, and the crash-loop backoff that `watch` and
//! back-to-back `enforce` runs share.

use std::time::{Duration, Instant};

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::watch::{eventually, SocketProxy, Watcher};
use crate::util::{docker, docker_output, podman, podman_cli, Sandbox};

const WITHIN: Duration = Duration::from_secs(20);

fn running(sb: &Sandbox, short: &str) -> bool {
    sb.exists(short) && sb.inspect(short)["State"]["Running"] == true
}

#[test]
fn an_extra_started_while_watching_is_removed() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    let watch = sb.watch(&["--stop-timeout", "0"]);
    sb.run("intruder", &[], &[]);
    eventually(WITHIN, "the extra is removed", || !sb.exists("intruder"));
    watch.wait_for_log(&format!("- {}: extra", sb.name("intruder")), WITHIN);
    assert!(running(&sb, "kept"));
}

#[test]
fn events_of_other_kinds_leave_the_watch_connected() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    let watch = sb.watch(&["--stop-timeout", "0"]);
    let podman_log = podman_events_log();
    // An extra removed shows that the event stream is up.
    sb.run("first", &[], &[]);
    eventually(WITHIN, "the first extra is removed", || !sb.exists("first"));
    // Network and volume events on any engine; Podman also has pods, whose events a typed
    // reader that took them in would fail to decode and stop on.
    let other = sb.name("other");
    docker(&["network", "create", &other]);
    docker(&["network", "rm", &other]);
    docker(&["volume", "create", &other]);
    docker(&["volume", "rm", &other]);
    if podman() {
        podman_cli(&["pod", "create", "--infra=false", "--name", &other]);
        podman_cli(&["pod", "rm", &other]);
    }
    sb.run("intruder", &[], &[]);
    eventually(WITHIN, "the extra is removed", || !sb.exists("intruder"));
    watch.wait_for_log(&format!("- {}: extra", sb.name("intruder")), WITHIN);
    let log = watch.log();
    // Podman's file event logger ends every reader's stream when it rotates the file (at 1 MB):
    // watch then reconnects and resyncs, as it must, but that is not what this test is about.
    let rotated = podman() && podman_events_log() != podman_log;
    assert!(
        rotated || !log.contains("reconnecting"),
        "the event stream ended:\n{log}"
    );
}

/// The identity (inode) of Podman's event log file, which a rotation replaces.
fn podman_events_log() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/run/libpod/events/events.log")
        .ok()
        .map(|m| m.ino())
}

#[test]
fn a_dry_run_watch_logs_what_it_would_do_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    let watch = sb.watch(&["--dry-run"]);
    sb.run("intruder", &[], &[]);
    let line = watch.wait_for_log(&format!("- {}", sb.name("intruder")), WITHIN);
    assert!(line.contains("would be removed"), "{line}");
    assert!(sb.exists("intruder"), "a dry run removed a container");
}

#[test]
fn a_stopped_container_is_started_in_place_and_a_deleted_one_comes_back() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.run("db", &[], &[]);
    sb.snapshot(&[]);
    let db = sb.id("db");
    let watch = sb.watch(&[]);
    watch.wait_for_log("full pass", WITHIN);
    // Events from before the subscription are replayed and trigger a pass of their own; the
    // stop comes after it, so that only the stop's own event can bring db back this soon (the
    // default resync is minutes away).
    std::thread::sleep(Duration::from_millis(1500));

    // Podman's stop cleans up after the process died, and refuses to when the watch was
    // faster and started the container again in between: the stop itself took effect.
    let stop = docker_output(&["stop", "-t", "0", &sb.name("db")]);
    let refused = String::from_utf8_lossy(&stop.stderr).contains("refusing to clean up");
    assert!(stop.status.success() || podman() && refused, "{stop:?}");
    eventually(WITHIN, "db is running again", || running(&sb, "db"));
    assert_eq!(
        sb.id("db"),
        db,
        "a stopped container is started, not recreated"
    );
    watch.wait_for_log(&format!("> {}: stopped: started", sb.name("db")), WITHIN);

    docker(&["rm", "-f", &sb.name("web")]);
    eventually(WITHIN, "web is running again", || running(&sb, "web"));
    watch.wait_for_log(
        &format!("+ {}: missing: created and started", sb.name("web")),
        WITHIN,
    );
    sb.expect(&["diff"], 0);
}

/// A container that exits at once once /data/crash exists; its named volume survives restarts.
fn crash_looper(sb: &Sandbox) -> String {
    let volume = format!("{}-data:/data", sb.prefix);
    sb.run(
        "loop",
        &["-v", &volume],
        &["sh", "-c", "test -e /data/crash && exit 3; exec sleep 3600"],
    );
    sb.name("loop")
}

/// The `next start in Ns` waits a watch log announced, in order.
fn announced_waits(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.split("next start in ").nth(1))
        .filter_map(|w| w.trim_end_matches('s').parse().ok())
        .collect()
}

#[test]
fn a_crash_looping_container_is_restarted_after_growing_delays() {
    let sb = Sandbox::new();
    let name = crash_looper(&sb);
    sb.snapshot(&[]);
    let watch = sb.watch(&[]);
    docker(&["exec", &name, "touch", "/data/crash"]);
    docker(&["kill", &name]);

    watch.wait_for_log("(3 starts did not stay up)", WITHIN);
    let log = watch.log();
    let waits = announced_waits(&log);
    assert!(
        waits.len() >= 3 && waits.windows(2).all(|w| w[0] < w[1]),
        "waits do not grow: {waits:?}\n{log}"
    );
    assert_eq!(waits[..3], [1, 2, 4], "{log}");
    let starts = log.matches(&format!("> {name}: stopped: started")).count();
    assert!((3..=4).contains(&starts), "{starts} starts:\n{log}");

    // It stays up once the cause is gone.
    let volume = format!("{}-data:/data", sb.prefix);
    let image = crate::util::image::test_image();
    let mut args = vec!["run", "--rm", "-v", &volume];
    args.extend(crate::util::engine_options(&[]));
    args.extend([image.as_str(), "busybox", "rm", "/data/crash"]);
    docker(&args);
    eventually(Duration::from_secs(40), "the container runs again", || {
        running(&sb, "loop")
    });
    // Once it has stayed up 10 s the history is forgotten: its next death is restarted at
    // once, with no wait announced, as a first crash would be.
    std::thread::sleep(Duration::from_secs(11));
    let before = watch.log().len();
    let starts_before = watch
        .log()
        .matches(&format!("> {name}: stopped: started"))
        .count();
    docker(&["kill", &name]);
    eventually(WITHIN, "the container is started again", || {
        watch
            .log()
            .matches(&format!("> {name}: stopped: started"))
            .count()
            > starts_before
    });
    let after = watch.log()[before..].to_string();
    assert!(
        !after.contains("keeps dying"),
        "the history was not forgotten after 10 s up:\n{after}"
    );
    assert!(running(&sb, "loop"), "{after}");
}

#[test]
fn back_to_back_enforce_runs_respect_the_backoff() {
    let sb = Sandbox::new();
    let name = crash_looper(&sb);
    sb.snapshot(&[]);
    docker(&["exec", &name, "touch", "/data/crash"]);
    docker(&["kill", &name]);

    // Run after run, as a tight cron would, until three of them started the container: the
    // first at once, then each after a wait that doubles. Every run in between says it holds
    // the start back.
    let started_line = format!("> {name}  started");
    let started = Instant::now();
    let mut runs: Vec<(Duration, Duration, String)> = Vec::new();
    while runs.iter().filter(|r| r.2.contains(&started_line)).count() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "three starts did not happen: {runs:#?}"
        );
        let begun = started.elapsed();
        let (code, stdout, stderr) = sb.gl(&["enforce"]);
        assert!(code < 2, "{stdout}{stderr}");
        runs.push((begun, started.elapsed(), stdout));
    }
    let starts: Vec<&(Duration, Duration, String)> = runs
        .iter()
        .filter(|(_, _, out)| out.contains(&started_line))
        .collect();
    // A start happens within its run, so from the earlier run's beginning to the later run's
    // end is at least the wait between them: 1 s, then 2 s.
    for (pair, delay) in starts.windows(2).zip([1, 2]) {
        let spacing = pair[1].1 - pair[0].0;
        assert!(
            spacing >= Duration::from_secs(delay),
            "starts {spacing:?} apart, not {delay} s: {runs:#?}"
        );
    }
    // And they were held back, not merely slow: the runs in between said so, with the wait.
    let held: Vec<u64> = runs
        .iter()
        .filter_map(|(_, _, out)| out.split("keeps dying (").nth(1))
        .filter_map(|rest| rest.split("next start in ").nth(1))
        .filter_map(|w| w.split('s').next()?.parse().ok())
        .collect();
    // Each says what is left of its wait: at most 1 s after the first start, at most 2 s after
    // the second (on a loaded engine a run takes a second, and only "1s" may be left to say).
    let after_second = runs
        .iter()
        .skip_while(|(_, _, out)| !out.contains(&started_line))
        .skip(1)
        .skip_while(|(_, _, out)| !out.contains(&started_line))
        .filter_map(|(_, _, out)| out.split("keeps dying (2 starts").nth(1))
        .count();
    assert!(
        held.contains(&1) && held.iter().all(|w| (1..=2).contains(w)) && after_second > 0,
        "the runs between the starts did not announce waits of at most 1 s, then 2 s: \
         {held:?} {runs:#?}"
    );
}

#[test]
fn sigterm_stops_watch_with_exit_0() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let mut watch = sb.watch(&[]);
    // Signalled once it watches: a signal before that ends it before it has anything to say.
    watch.wait_for_log("watching", WITHIN);
    let status = watch.terminate();
    assert_eq!(status.code(), Some(0), "{}", watch.log());
    assert!(watch.log().contains("stopped"), "{}", watch.log());

    let mut watch = sb.watch(&[]);
    let status = watch.signal("-INT");
    assert_eq!(status.code(), Some(0), "{}", watch.log());
}

#[test]
fn the_resync_catches_what_no_event_announces_and_reads_the_list_again() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.run("old", &[], &[]);
    sb.snapshot(&[]);
    let watch = sb.watch(&["--resync", "1s", "--stop-timeout", "0"]);
    watch.wait_for_log("full pass", WITHIN);
    // Forgetting changes only the state file: no engine event, so only the resync sees it.
    sb.expect(&["forget", &sb.name("old")], 0);
    eventually(WITHIN, "the forgotten container is removed", || {
        !sb.exists("old")
    });
    watch.wait_for_log(&format!("- {}: extra", sb.name("old")), WITHIN);
    assert!(running(&sb, "web"));
}

#[test]
fn watch_without_a_valid_state_file_exits_2_and_says_why() {
    let sb = Sandbox::new();
    let out = sb.watch_command(&[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no state file at"), "{stderr}");
    assert!(stderr.contains("guestlist snapshot"), "{stderr}");

    std::fs::create_dir_all(sb.state_path().parent().unwrap()).unwrap();
    std::fs::write(sb.state_path(), "{\"version\": 1,").unwrap();
    let out = sb.watch_command(&[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn losing_the_engine_and_getting_it_back_resumes_enforcement() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let mut proxy = SocketProxy::start(&sb.dir().join("engine.sock"));
    let mut command = sb.watch_command(&[]);
    command.env("DOCKER_HOST", proxy.url());
    let watch = Watcher::spawn(command);
    watch.wait_for_log("full pass", WITHIN);

    proxy.cut();
    watch.wait_for_log("reconnecting until the engine answers", WITHIN);
    docker(&["rm", "-f", &sb.name("web")]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!sb.exists("web"), "acted without an engine connection?");

    proxy.restore();
    watch.wait_for_log("answers again", WITHIN);
    eventually(WITHIN, "web is back after the reconnect", || {
        running(&sb, "web")
    });
}

/// A pass that fails while the engine answers is not a lost engine: the watch stays connected,
/// says the pass failed, and tries again until a pass succeeds.
#[test]
fn a_pass_that_fails_while_the_engine_answers_is_retried_without_reconnecting() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let refusing = Arc::new(AtomicBool::new(false));
    let refuse = Arc::clone(&refusing);
    // The list of containers is refused; pings, events and everything else go through.
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        match method == "GET"
            && path.starts_with("/containers/json")
            && refuse.load(Ordering::SeqCst)
        {
            true => Verdict::Refuse,
            false => Verdict::Forward,
        }
    });
    let mut command = sb.watch_command(&[]);
    command.env("DOCKER_HOST", proxy.url());
    let watch = Watcher::spawn(command);
    watch.wait_for_log("full pass", WITHIN);

    refusing.store(true, Ordering::SeqCst);
    docker(&["rm", "-f", &sb.name("web")]);
    let line = watch.wait_for_log("the pass failed", WITHIN);
    assert!(line.contains("the engine answers"), "{line}");
    std::thread::sleep(Duration::from_millis(1500));
    let log = watch.log();
    assert!(!log.contains("reconnecting"), "{log}");
    assert!(!sb.exists("web"), "acted without seeing the host?\n{log}");

    refusing.store(false, Ordering::SeqCst);
    watch.wait_for_log("a pass succeeded again", WITHIN);
    eventually(WITHIN, "web is back once a pass succeeds", || {
        running(&sb, "web")
    });
}

#[test]
fn watch_honours_the_removal_limit_and_a_manual_enforce_takes_its_turn() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    sb.run("x1", &[], &[]);
    sb.run("x2", &[], &[]);
    let watch = sb.watch(&["--stop-timeout", "0", "--max-removals", "1"]);
    let line = watch.wait_for_log("refusing to act", WITHIN);
    assert!(
        line.contains("would remove or replace 2 containers"),
        "{line}"
    );
    assert!(sb.exists("x1") && sb.exists("x2"), "{}", watch.log());

    // The operator checks and raises the limit for one pass while watch keeps running.
    sb.expect(
        &["enforce", "--stop-timeout", "0", "--max-removals", "2"],
        0,
    );
    assert!(!sb.exists("x1") && !sb.exists("x2"));
    assert!(running(&sb, "kept"));
}
