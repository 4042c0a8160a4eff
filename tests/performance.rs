//! What the performance goals rely on, seen through a proxy in front of the engine: which
//! requests a pass sends and how many are in flight together. Never timed: speed is measured
//! by contrib/bench/perf.py.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::{docker, Sandbox};

#[test]
fn extras_slow_to_stop_are_stopped_all_at_once_not_in_turns() {
    const SLOW: usize = 6;
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    for i in 0..SLOW {
        // Busybox `sleep` as PID 1 ignores SIGTERM: each stop waits out the whole grace period.
        sb.run(&format!("slow{i}"), &[], &["sleep", "600"]);
    }
    // Each stop request is held at the proxy until all of them have arrived; a pass that stops
    // them in turns never gets there, and the proxy lets its stops through after a while.
    let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
    let together = Arc::new(Mutex::new(Vec::new()));
    let (gate, seen) = (Arc::clone(&arrived), Arc::clone(&together));
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        if method == "POST" && path.contains("/stop") {
            let (count, all_here) = &*gate;
            let mut count = count.lock().unwrap();
            *count += 1;
            all_here.notify_all();
            let (count, _) = all_here
                .wait_timeout_while(count, Duration::from_secs(20), |n| *n < SLOW)
                .unwrap();
            seen.lock().unwrap().push(*count);
        }
        Verdict::Forward
    });

    let out = sb.expect(
        &["--host", &proxy.url(), "enforce", "--stop-timeout", "1s"],
        0,
    );
    assert_eq!(
        *together.lock().unwrap(),
        vec![SLOW; SLOW],
        "each stop went on with fewer than {SLOW} in flight: {out}"
    );
    assert_eq!(sb.names(), [sb.name("kept")]);
}

#[test]
fn containers_of_one_missing_image_resolve_it_once_and_pull_it_once() {
    let sb = Sandbox::new();
    let tag = sb.image("shared:1");
    let users = ["a", "b", "c"];
    for short in users {
        sb.run_image(short, &tag);
    }
    sb.snapshot(&[]);
    let names: Vec<String> = users.iter().map(|u| sb.name(u)).collect();
    docker(
        &[
            &["rm", "-f"][..],
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    docker(&["rmi", &tag]);
    // No registry answers here: refusing the pull at the proxy says the same, at once.
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), |method, path| {
        match method == "POST" && path.starts_with("/images/create") {
            true => Verdict::Refuse,
            false => Verdict::Forward,
        }
    });

    let out = sb.expect(&["--host", &proxy.url(), "enforce"], 1);
    for name in &names {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("! {name}")) && l.contains(&tag)),
            "{name} did not fail naming the image: {out}"
        );
    }
    let seen = proxy.seen();
    let pulls = seen
        .iter()
        .filter(|r| r.starts_with("POST /images/create"))
        .count();
    assert_eq!(pulls, 1, "{seen:#?}");
    let by_reference = seen
        .iter()
        .filter(|r| {
            let reported = crate::util::image::as_reported(&tag);
            r.starts_with(&format!("GET /images/{reported}/json"))
        })
        .count();
    assert_eq!(by_reference, 1, "{seen:#?}");
}
