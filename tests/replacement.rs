//! A replacement never leaves less running than before: the old container is stopped and set
//! aside, not removed, until its replacement runs, and a failure at any step puts it back. A
//! pass killed in the middle of replacements converges within the default limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::receiver::{Answer, Receiver};
use crate::util::{docker, Sandbox};

/// Which request (method, path) a test proxy fails.
type Matcher = dyn Fn(&str, &str) -> bool + Send + Sync;

/// `web` recorded with MODE=recorded, running now with MODE=drifted: enforce replaces it.
/// Returns the drifted container's id.
fn drifted_web(sb: &Sandbox) -> String {
    sb.run("web", &["-e", "MODE=recorded"], &["sleep", "600"]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    sb.run("web", &["-e", "MODE=drifted"], &["sleep", "600"])
}

/// The host as a failed replacement must leave it: `web` is the drifted container, running,
/// under its name, and nothing of the attempt is left.
fn put_back(sb: &Sandbox, drifted: &str, context: &str) {
    let web = sb.inspect("web");
    assert_eq!(web["Id"], drifted, "{context}");
    assert_eq!(web["State"]["Status"], "running", "{context}");
    assert!(
        web["Config"]["Env"].to_string().contains("MODE=drifted"),
        "{context}"
    );
    let names = sb.names();
    assert!(
        names.iter().all(|n| !n.contains("-guestlist-")),
        "{context}: {names:?}"
    );
}

/// Each step after the old container stopped, failed by the engine in front of guestlist
/// (a test proxy answers that one request with an error): the old container is back, running,
/// the pass exits 1 and says so. The step before (the stop) fails with nothing changed.
#[test]
fn a_replacement_that_fails_at_any_step_puts_the_old_container_back() {
    let sb = Sandbox::new();
    let drifted = drifted_web(&sb);
    let web = sb.name("web");
    let aside = format!("{web}-guestlist-old");
    // Which request to fail; each is failed once, its first time.
    let steps: [(&str, Box<Matcher>); 4] = [
        ("the stop of the old container", {
            let old = drifted.clone();
            Box::new(move |m, p| m == "POST" && p.contains(&format!("/containers/{old}/stop")))
        }),
        ("the rename of the old container aside", {
            let to = format!("/rename?name={aside}");
            Box::new(move |m, p| m == "POST" && p.ends_with(&to))
        }),
        ("the rename of the new container to the name", {
            let to = format!("/rename?name={web}");
            Box::new(move |m, p| m == "POST" && p.ends_with(&to))
        }),
        ("the start of the new container", {
            let old = drifted.clone();
            Box::new(move |m, p| m == "POST" && p.ends_with("/start") && !p.contains(&old))
        }),
    ];
    for (step, (what, matches)) in steps.into_iter().enumerate() {
        let failed = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&failed);
        let socket = sb.dir().join(format!("engine-{step}.sock"));
        let proxy = HookProxy::start(&socket, move |method, path| {
            if matches(method, path) && count.fetch_add(1, Ordering::SeqCst) == 0 {
                return Verdict::Refuse;
            }
            Verdict::Forward
        });
        let (code, stdout, stderr) =
            sb.gl(&["--host", &proxy.url(), "enforce", "--stop-timeout", "1s"]);
        let context = format!("failing {what}:\n{stdout}{stderr}");
        assert!(failed.load(Ordering::SeqCst) > 0, "{context}");
        assert_eq!(code, 1, "{context}");
        assert!(stdout.contains("failed to replace"), "{context}");
        if step > 0 {
            assert!(
                stdout.contains("the old container was put back and runs again"),
                "{context}"
            );
        }
        put_back(&sb, &drifted, &context);
    }
    // Without a failure, the same pass replaces it, and nothing is left aside.
    let out = sb.expect(&["enforce", "--stop-timeout", "1s"], 0);
    let web = sb.inspect("web");
    assert_ne!(web["Id"], drifted.as_str(), "{out}");
    assert!(web["Config"]["Env"].to_string().contains("MODE=recorded"));
    assert!(sb.names().iter().all(|n| !n.contains("-guestlist-")));
}

/// Failures the engine finds itself: a command the image does not have (every engine finds it
/// at start) and a network that does not exist (Docker 20.10 finds it only at start, the
/// others at create). The old container keeps running through two passes, and a
/// notification says the replacement failed.
#[test]
fn a_replacement_the_engine_cannot_start_leaves_the_old_container_running() {
    let receiver = Receiver::start(Answer::Take);
    for broken in ["command", "network"] {
        let sb = Sandbox::new();
        let drifted = drifted_web(&sb);
        sb.edit_state(|state| {
            let spec = &mut state["containers"][0]["spec"];
            match broken {
                "command" => spec["config"]["Cmd"] = json!(["/no/such/command"]),
                _ => {
                    let missing = format!("{}-no-such-network", sb.prefix);
                    spec["host_config"]["NetworkMode"] = json!(missing);
                    spec["networks"] = json!({ missing: {} });
                }
            }
        });
        for pass in 0..2 {
            let (code, stdout, stderr) = sb.gl(&[
                "enforce",
                "--notify",
                &receiver.url(),
                "--stop-timeout",
                "1s",
            ]);
            let context = format!("{broken}, pass {pass}:\n{stdout}{stderr}");
            assert_eq!(code, 1, "{context}");
            assert!(stdout.contains("failed to replace"), "{context}");
            put_back(&sb, &drifted, &context);
        }
    }
    let said: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        said.iter().any(|t| t.contains("failed to replace")),
        "{said:#?}"
    );
}

/// The new container runs but the old one cannot be removed: the pass succeeds and says the
/// old one stays aside; the next pass removes it without counting it as a removal.
#[test]
fn an_old_container_that_cannot_be_removed_stays_aside_and_goes_next_pass_uncounted() {
    let sb = Sandbox::new();
    let drifted = drifted_web(&sb);
    let old = drifted.clone();
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        match method == "DELETE" && path.contains(&old) {
            true => Verdict::Refuse,
            false => Verdict::Forward,
        }
    });
    // Replaced; what is left aside is drift that remains.
    let out = sb.expect(
        &["--host", &proxy.url(), "enforce", "--stop-timeout", "1s"],
        1,
    );
    assert!(out.contains("stays stopped as"), "{out}");
    assert_eq!(sb.inspect("web")["State"]["Status"], "running");
    let aside = sb.inspect("web-guestlist-old");
    assert_eq!(aside["Id"], drifted.as_str());
    assert_eq!(aside["State"]["Running"], false);
    let out = sb.expect(&["enforce", "--max-removals", "0"], 0);
    assert!(out.contains("set aside by a replacement"), "{out}");
    assert!(!sb.exists("web-guestlist-old"), "{out}");
    sb.expect(&["diff"], 0);
}

/// `kill -9` of a pass replacing seven containers slow to stop, at two moments: once every old
/// container is being stopped (the replacements wait under their temporary names), and once
/// some have been set aside. The next pass converges with the default limits: what the killed
/// pass left is cleared without counting as removals of the host's containers.
#[test]
fn a_pass_killed_while_replacing_many_converges_within_the_default_limits() {
    const MANY: usize = 7;
    let sb = Sandbox::new();
    let shorts: Vec<String> = (0..MANY).map(|i| format!("s{i}")).collect();
    for short in &shorts {
        // Busybox `sleep` as PID 1 ignores SIGTERM: each stop takes its whole grace period.
        sb.run(short, &["-e", "MODE=recorded"], &["sleep", "600"]);
    }
    sb.snapshot(&[]);
    let aside_marker = "-guestlist-old";
    for (moment, needle, seen_enough) in [
        ("all stops sent", "/stop", MANY),
        ("some set aside", aside_marker, 2),
    ] {
        for short in &shorts {
            docker(&["rm", "-f", &sb.name(short)]);
            sb.run(short, &["-e", "MODE=drifted"], &["sleep", "600"]);
        }
        let (tell, told) = mpsc::channel();
        let tell = Mutex::new(tell);
        let seen = AtomicUsize::new(0);
        let socket = sb.dir().join(format!("engine-{}.sock", needle.len()));
        let proxy = HookProxy::start(&socket, move |method, path| {
            if method == "POST"
                && path.contains(needle)
                && seen.fetch_add(1, Ordering::SeqCst) + 1 == seen_enough
            {
                let _ = tell.lock().unwrap().send(());
            }
            Verdict::Forward
        });
        let args = ["--host", &proxy.url(), "enforce", "--stop-timeout", "3s"];
        let mut pass = sb.guestlist_process(&args);
        told.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{moment}: the pass never got there"));
        pass.child.kill().expect("SIGKILL the pass");
        let killed = pass.wait();
        let left = sb.names();
        let out = sb.expect(&["enforce", "--stop-timeout", "1s"], 0);
        let context = format!("killed when {moment} ({killed:?}), leaving {left:?}; then:\n{out}");
        assert!(
            sb.names().iter().all(|n| !n.contains("-guestlist-")),
            "{context}"
        );
        for short in &shorts {
            let env = sb.inspect(short)["Config"]["Env"].to_string();
            assert!(env.contains("MODE=recorded"), "{short}: {context}");
        }
        assert!(sb.expect(&["diff"], 0).starts_with("in sync"), "{context}");
    }
}
