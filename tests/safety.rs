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
