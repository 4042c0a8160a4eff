//! Safety: a pass never does more harm than the operator allowed, takes turns with other
//! passes, converges after being killed, and re-plans what the engine shows is out of date.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::{docker, Sandbox};

#[test]
fn a_pass_over_the_removal_limit_does_nothing_and_says_how_to_raise_it() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    for extra in ["x1", "x2", "x3"] {
        sb.run(extra, &[], &[]);
    }
    docker(&["rm", "-f", &sb.name("kept")]);
    let (code, stdout, stderr) = sb.gl(&["enforce", "--max-removals", "2", "--stop-timeout", "0"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("would remove or replace 3 containers"),
        "{stderr}"
    );
    assert!(stderr.contains("--max-removals 3"), "{stderr}");
    assert!(
        ["x1", "x2", "x3"].iter().all(|x| sb.exists(x)),
        "an extra was removed"
    );
    assert!(
        !sb.exists("kept"),
        "a container was created although the pass was refused"
    );

    sb.expect(
        &["enforce", "--max-removals", "3", "--stop-timeout", "0"],
        0,
    );
    assert!(["x1", "x2", "x3"].iter().all(|x| !sb.exists(x)));
    assert!(sb.exists("kept"));
}

/// Busybox `sleep` as PID 1 ignores SIGTERM, so stopping it takes the whole grace period: a pass
/// that removes it is slow enough for another to overlap it.
fn slow_to_stop(sb: &Sandbox, short: &str) {
    sb.run(short, &[], &["sleep", "600"]);
}

#[test]
fn overlapping_passes_take_turns_and_both_end_in_sync() {
    let sb = Sandbox::new();
    for short in ["a", "b", "c"] {
        sb.run(short, &[], &[]);
    }
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("a"), &sb.name("b")]);
    slow_to_stop(&sb, "slow-extra");

    let args = ["enforce", "--stop-timeout", "2s"];
    let first = sb.guestlist_process(&args);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = sb.guestlist_process(&args);
    let (first, second) = (first.wait(), second.wait());

    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        second.stderr.contains("waiting for process"),
        "the second pass did not wait: {second:?}"
    );
    assert!(first.stdout.contains("created"), "{first:?}");
    assert!(
        second.stdout.starts_with("in sync"),
        "the second pass acted on what the first had done: {second:?}"
    );
    assert_eq!(sb.names(), [sb.name("a"), sb.name("b"), sb.name("c")]);
}

#[test]
fn a_pass_that_waits_for_the_lock_in_vain_exits_2_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    // Another process holds the state file's lock (as a long pass would) for the whole test.
    let lock = sb.state_path().with_extension("lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("run flock (util-linux)");
    crate::util::watch::eventually(Duration::from_secs(10), "flock holds the lock", || {
        let free = std::process::Command::new("flock")
            .args(["-n"])
            .arg(&lock)
            .arg("true")
            .status()
            .expect("run flock");
        !free.success()
    });

    let (code, stdout, stderr) = sb.gl(&["--lock-timeout", "1s", "enforce"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("still holds"), "{stderr}");
    assert!(stderr.contains("raise --lock-timeout (now 1s)"), "{stderr}");
    assert!(!sb.exists("web"), "a pass acted without the lock");
}

#[test]
fn guestlist_running_in_a_container_in_its_scope_never_removes_that_container() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    sb.run("intruder", &[], &[]);

    let (code, plan) = sb.guestlist_in_container(&[], "looker", &["diff"]);
    assert_eq!(code, "1", "{plan}");
    assert!(
        plan.lines().any(|l| l.contains(&sb.name("looker"))
            && l.contains("tolerated by guestlist itself (it runs in this container)")),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("- {}", sb.name("intruder"))),
        "{plan}"
    );
    docker(&["rm", &sb.name("looker")]);

    let (code, logs) = sb.guestlist_in_container(&[], "guard", &["enforce", "--stop-timeout", "0"]);
    assert_eq!(code, "0", "{logs}");
    assert!(
        sb.exists("guard"),
        "guestlist removed its own container: {logs}"
    );
    assert!(!sb.exists("intruder"), "{logs}");
    assert!(sb.exists("kept"));

    // Seen from outside, the guard is an ordinary extra.
    let plan = sb.expect(&["diff"], 1);
    assert!(plan.contains(&format!("- {}", sb.name("guard"))), "{plan}");
}

#[test]
fn an_empty_list_without_scope_removes_nothing_unless_the_limit_is_raised() {
    let sb = Sandbox::new();
    sb.run("bystander", &[], &[]);
    sb.snapshot(&[]);
    // The same file, allowing nothing on the whole host: every container is an extra.
    sb.edit_state(|state| {
        state["scope"] = serde_json::json!([]);
        state["containers"] = serde_json::json!([]);
    });
    // Through a read-only view of the engine: if this test fails, it fails without removing
    // the other tests' containers.
    let proxy = HookProxy::read_only(&sb.dir().join("engine.sock"));
    let host = proxy.url();

    let (code, stdout, stderr) = sb.gl(&["--host", &host, "enforce", "--stop-timeout", "0"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("more than --max-removals 0"), "{stderr}");
    let writes: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|r| !r.starts_with("GET "))
        .collect();
    assert!(writes.is_empty(), "the refused pass wrote: {writes:?}");
    assert!(sb.exists("bystander"));
    assert!(sb
        .audit_log()
        .iter()
        .any(|r| r["action"] == "pass" && r["result"] == "refused"));

    // Raised explicitly, the limit lets the pass act (the proxy refuses the removals here).
    let (code, _, _) = sb.gl(&[
        "--host",
        &host,
        "enforce",
        "--stop-timeout",
        "0",
        "--max-removals",
        "100000",
    ]);
    assert_eq!(code, 1);
    assert!(proxy
        .seen()
        .iter()
        .any(|r| r.starts_with("DELETE /containers/")));
    assert!(sb.exists("bystander"));
}

#[test]
fn a_container_that_vanishes_between_observing_and_starting_is_created_instead() {
    let sb = Sandbox::new();
    let id = sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    docker(&["stop", "-t", "0", &id]);
    let start = format!("/containers/{id}/start");
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        if method == "POST" && path.starts_with(&start) {
            docker(&["rm", "-f", &id]);
        }
        Verdict::Forward
    });

    let out = sb.expect(&["--host", &proxy.url(), "enforce"], 0);
    assert!(!out.lines().any(|l| l.starts_with("! ")), "{out}");
    assert!(out.contains(&format!("+ {}", sb.name("web"))), "{out}");
    assert_eq!(sb.inspect("web")["State"]["Status"], "running");
    let results: Vec<String> = sb
        .audit_log()
        .iter()
        .map(|r| format!("{} {}", r["action"], r["result"]).replace('"', ""))
        .collect();
    assert_eq!(results, ["start outdated", "create ok"]);
}

#[test]
fn a_name_still_held_while_a_container_is_removed_is_retried_not_failed() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    let name = sb.name("web");
    // 0: waiting for guestlist's create; 1: the name was taken just before it reached the
    // engine; 2: guestlist asked something after its create failed, and the name is freed.
    let step = std::sync::atomic::AtomicU8::new(0);
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        let create = method == "POST" && path.starts_with("/containers/create?");
        if create
            && path.contains(&name)
            && step
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            // Outside the scope, so guestlist does not see it.
            let image = crate::util::image::test_image();
            let mut args = vec!["create", "--name", &name];
            args.extend(crate::util::engine_options(&[]));
            args.push(&image);
            docker(&args);
        } else if step
            .compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let name = name.clone();
            std::thread::spawn(move || docker(&["rm", "-f", &name]));
        }
        Verdict::Forward
    });

    let out = sb.expect(&["--host", &proxy.url(), "enforce"], 0);
    assert!(!out.lines().any(|l| l.starts_with("! ")), "{out}");
    let web = sb.inspect("web");
    assert_eq!(web["State"]["Status"], "running");
    assert_eq!(
        web["Config"]["Labels"][crate::util::LABEL],
        sb.prefix.as_str()
    );
    let creates = proxy
        .seen()
        .iter()
        .filter(|r| r.starts_with("POST /containers/create?"))
        .count();
    assert!(
        creates >= 2,
        "the create was not retried: {:?}",
        proxy.seen()
    );
}

/// A pass killed just after sending the create of a replacement: the engine finishes that
/// create after the next pass observed, so the next pass finds the temporary name taken by a
/// container its plan does not know. One that never ran is guestlist's own and is removed
/// (audited); one that has run is someone else's and stays.
#[test]
fn a_replacement_left_under_its_temporary_name_after_observing_is_cleared_not_a_failure() {
    let sb = Sandbox::new();
    sb.run("web", &["-e", "MODE=recorded"], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    sb.run("web", &["-e", "MODE=drifted"], &[]);
    let temporary = sb.name("web-guestlist-new");
    let label = format!("{}={}", crate::util::LABEL, sb.prefix);
    // 0: the next replacement create finds a container that has run; 1: one that never ran.
    let round = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let turn = std::sync::Arc::clone(&round);
    let creates = format!("/containers/create?name={temporary}");
    let holder = temporary.clone();
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        if method == "POST" && path.starts_with(&creates) {
            let image = crate::util::image::test_image();
            let verb = match turn.fetch_add(1, Ordering::SeqCst) {
                0 => "run",
                2 => "create",
                _ => return Verdict::Forward,
            };
            let mut args = vec![verb, "--name", &holder, "--label", &label];
            if verb == "run" {
                args.push("-d");
            }
            args.extend(crate::util::engine_options(&[]));
            args.push(&image);
            docker(&args);
        }
        Verdict::Forward
    });
    let host = proxy.url();

    let out = sb.expect(&["--host", &host, "enforce"], 1);
    assert!(out.contains("has run"), "{out}");
    assert_eq!(
        sb.inspect("web-guestlist-new")["State"]["Status"],
        "running"
    );
    assert!(sb.inspect("web")["Config"]["Env"]
        .to_string()
        .contains("MODE=drifted"));
    docker(&["rm", "-f", &temporary]);

    // The second round's first create is the one that finds the name taken.
    round.store(2, Ordering::SeqCst);
    let out = sb.expect(&["--host", &host, "enforce"], 0);
    assert!(
        out.contains("interrupted pass had created and never started"),
        "{out}"
    );
    assert!(!sb.exists("web-guestlist-new"), "{out}");
    let web = sb.inspect("web");
    assert_eq!(web["State"]["Status"], "running");
    assert!(web["Config"]["Env"].to_string().contains("MODE=recorded"));
    let removed: Vec<String> = sb
        .audit_log()
        .iter()
        .filter(|r| r["container"] == temporary.as_str())
        .map(|r| format!("{} {}", r["action"], r["result"]).replace('"', ""))
        .collect();
    assert_eq!(removed, ["remove removing", "remove ok"]);
    sb.expect(&["diff"], 0);
}

/// Drift of every kind at once: deleted, stopped, changed, half-networked, and extras.
fn drift(sb: &Sandbox, round: usize) {
    // c is stopped again seconds after a pass started it, which is what a crash loop looks
    // like; this test is about convergence, so the restart history starts afresh each round.
    let _ = std::fs::remove_file(sb.state_path().with_extension("restarts.json"));
    docker(&["rm", "-f", &sb.name("a"), &sb.name("b"), &sb.name("e")]);
    docker(&["stop", "-t", "0", &sb.name("c")]);
    sb.run("e", &["-e", "V=drifted"], &[]);
    for extra in ["x1", "x2"] {
        sb.run(&format!("{extra}-{round}"), &[], &[]);
    }
}

#[test]
fn a_pass_killed_at_any_moment_leaves_nothing_the_next_pass_cannot_converge() {
    let sb = Sandbox::new();
    let first = sb.network("n1", &[]);
    let second = sb.network("n2", &[]);
    for short in ["a", "b", "c", "e"] {
        sb.run(short, &[], &[]);
    }
    sb.run("f", &["--network", &first], &[]);
    docker(&["network", "connect", &second, &sb.name("f")]);
    sb.snapshot(&[]);
    let allowed = sb.names();
    let args = ["enforce", "--stop-timeout", "0"];

    // How long an uninterrupted pass over this drift takes, to spread the kills over it.
    drift(&sb, 0);
    let started = Instant::now();
    sb.expect(&args, 0);
    let whole = started.elapsed();

    // Pseudo-random offsets within each slice of the pass; the seed is printed for a rerun.
    let mut seed = u64::from(std::process::id()) | 1;
    println!("kill offsets seed {seed}, uninterrupted pass {whole:?}");
    const KILLS: u32 = 8;
    for round in 1..=KILLS as usize {
        drift(&sb, round);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let slice = whole / KILLS;
        let at = slice * (round as u32 - 1) + slice.mul_f64((seed % 1000) as f64 / 1000.0);
        let mut pass = sb.guestlist_process(&args);
        std::thread::sleep(at);
        pass.child.kill().expect("SIGKILL the pass");
        let killed = pass.wait();

        let out = sb.expect(&args, 0);
        let context = format!("killed after {at:?} ({killed:?}); then:\n{out}");
        assert_eq!(sb.names(), allowed, "{context}");
        assert!(sb.expect(&["diff"], 0).starts_with("in sync"), "{context}");
        let f = sb.inspect("f");
        assert_eq!(
            f["NetworkSettings"]["Networks"]
                .as_object()
                .map(|n| n.len()),
            Some(2),
            "{context}"
        );
    }
    let log = sb.audit_log();
    assert!(log.iter().all(|r| r["result"] != "failed"), "{log:?}");
}
