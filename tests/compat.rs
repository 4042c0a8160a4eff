//! Files written by an earlier version are read as that version read them. The fixtures under
//! `tests/fixtures/previous` were written by guestlist at 6cf99c1 (before the restructuring of
//! issue 15), with the outputs that version printed for them: a state file (scope, allow rule,
//! a port, a volume, a memory limit, a namespace sharer) and the audit log of a pass that
//! removed an extra and replaced two containers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::Sandbox;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/previous");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).expect("a fixture")
}

/// The two files in a directory of their own, with the modes guestlist trusts.
fn copied(sb: &Sandbox) -> (PathBuf, String, String) {
    let dir = sb.dir().join("previous");
    std::fs::create_dir(&dir).expect("a directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for file in ["state.json", "audit.jsonl"] {
        let to = dir.join(file);
        std::fs::copy(Path::new(FIXTURES).join(file), &to).expect("copy a fixture");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let state = dir.join("state.json").display().to_string();
    let audit = dir.join("audit.jsonl").display().to_string();
    (dir, state, audit)
}

#[test]
fn a_state_file_and_audit_log_of_the_previous_version_read_as_they_did() {
    let sb = Sandbox::new();
    let (dir, state, audit) = copied(&sb);
    // The files were written on Docker: on Podman the commands that ask the engine are told
    // to use them anyway, as an operator moving to Podman would.
    let run = |args: &[&str], code: i32| {
        let mut all = vec![args[0], "--state", &state];
        if crate::util::podman() {
            all.push("--any-engine");
        }
        all.extend_from_slice(&args[1..]);
        sb.expect(&all, code)
    };

    assert_eq!(run(&["list"], 0), fixture("list.txt"));
    assert_eq!(
        run(&["show", "glfx-side", "glfx-web"], 0),
        fixture("show.txt")
    );
    assert_eq!(
        run(&["show", "glfx-side", "glfx-web", "--format", "compose"], 0),
        fixture("show-compose.yaml")
    );
    assert_eq!(
        run(&["show", "glfx-web", "--format", "json"], 0),
        fixture("show-web.json")
    );
    // Nothing with this scope's label runs on a test engine: both are missing.
    assert_eq!(run(&["diff"], 1), fixture("diff.txt"));
    assert_eq!(run(&["diff", "--format", "json"], 1), fixture("diff.json"));
    assert_eq!(
        run(&["enforce", "--dry-run", "--audit-log", &audit], 1),
        fixture("enforce-dry-run.txt")
    );

    assert_eq!(
        run(&["restore", "--audit-log", &audit], 0),
        fixture("restore-listing.txt")
    );
    let restored = run(&["restore", "--audit-log", &audit, "glfx-extra"], 0);
    let expected = fixture("restore-extra.txt").replace("{dir}", &dir.display().to_string());
    assert_eq!(restored, expected);
    assert_eq!(run(&["list"], 0), fixture("list-after-restore.txt"));
    // Restoring captures the removed container again, subtracting what its image supplied.
    // Where that image is present (the engine the files were written on), the entry is the one
    // the previous version restored; where it is not, nothing can be told to be the image's,
    // so the entry keeps all of it: everything the previous version restored, and more.
    let shown = run(&["show", "glfx-extra"], 0);
    let expected = fixture("show-restored-extra.txt");
    let recorded_image = "sha256:a250325457974496944fd3cca4402bbe310477205930147587d19b687ec741ff";
    if crate::util::docker_output(&["image", "inspect", recorded_image])
        .status
        .success()
    {
        assert_eq!(shown, expected);
    } else {
        let words =
            |text: &str| -> Vec<String> { text.split_whitespace().map(String::from).collect() };
        let have = words(&shown);
        let missing: Vec<String> = words(&expected)
            .into_iter()
            .filter(|w| !have.contains(w))
            .collect();
        assert!(missing.is_empty(), "lost {missing:?}:\n{shown}");
    }
}
