//! Safety: a pass never does more harm than the operator allowed.

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
    let names = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={}={}", crate::util::LABEL, sb.prefix),
        "--format",
        "{{.Names}}",
    ]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, [sb.name("a"), sb.name("b"), sb.name("c")]);
}

/// Run guestlist with `args` in container `short` of the sandbox; wait for it to end and
/// return its exit code and output.
fn guestlist_in_container(sb: &Sandbox, short: &str, args: &[&str]) -> (String, String) {
    let options = sb.guestlist_in_container();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    sb.run(short, &options, args);
    let code = docker(&["wait", &sb.name(short)]);
    let logs = crate::util::docker_output(&["logs", &sb.name(short)]);
    let logs =
        String::from_utf8_lossy(&logs.stdout).into_owned() + &String::from_utf8_lossy(&logs.stderr);
    (code, logs)
}

#[test]
fn guestlist_running_in_a_container_in_its_scope_never_removes_that_container() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    sb.run("intruder", &[], &[]);

    let (code, plan) = guestlist_in_container(&sb, "looker", &["diff"]);
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

    let (code, logs) = guestlist_in_container(&sb, "guard", &["enforce", "--stop-timeout", "0"]);
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
