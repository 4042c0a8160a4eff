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
