//! The command-line contract without containers: help, usage errors, missing or malformed state,
//! an engine that does not answer.

use predicates::prelude::*;

use crate::util::Sandbox;

fn guestlist() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("guestlist").expect("guestlist binary");
    cmd.env_remove("GUESTLIST_STATE");
    cmd
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    guestlist()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("snapshot"))
        .stdout(predicate::str::contains("enforce"))
        .stdout(predicate::str::contains("0 in sync, 1 drift, 2 error"));
    guestlist()
        .args(["enforce", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--stop-timeout"))
        .stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn usage_errors_exit_2() {
    guestlist().arg("frobnicate").assert().code(2);
    guestlist()
        .args(["snapshot", "--scope", "team=web"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("label=KEY"));
    guestlist()
        .args(["enforce", "--stop-timeout", "soon"])
        .assert()
        .code(2);
}

#[test]
fn a_missing_state_file_exits_2_and_says_to_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    guestlist()
        .env("XDG_DATA_HOME", dir.path())
        .arg("diff")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "no state file at {}",
            dir.path().join("guestlist/state.json").display()
        )))
        .stderr(predicate::str::contains("hint: run `guestlist snapshot`"));
}

#[test]
fn a_malformed_state_file_exits_2_names_file_and_position_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    let text = "{\n  \"version\": 1,\n  \"containers\": [,]\n}\n";
    std::fs::write(&path, text).expect("write");
    for command in ["diff", "enforce"] {
        guestlist()
            .arg("--state")
            .arg(&path)
            .arg(command)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(path.display().to_string()))
            .stderr(predicate::str::contains("line 3 column"))
            .stderr(predicate::str::contains("hint: fix the file by hand"));
    }
    assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
}

#[test]
fn the_state_path_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("elsewhere.json");
    guestlist()
        .env("GUESTLIST_STATE", &path)
        .arg("diff")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(path.display().to_string()));
}

#[test]
fn an_unreachable_engine_exits_2_and_names_the_endpoint() {
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    for command in ["diff", "enforce"] {
        sb.guestlist()
            .args(["--host", "unix:///nonexistent/docker.sock", command])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "cannot reach Docker at unix:///nonexistent/docker.sock",
            ))
            .stderr(predicate::str::contains("is the daemon running"));
    }
    // DOCKER_HOST is the default endpoint.
    sb.guestlist()
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .arg("diff")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot reach Docker at tcp://127.0.0.1:1",
        ));
}

#[test]
fn a_state_file_another_user_could_write_is_refused_like_an_ssh_key() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    let path = sb.state_path();
    let dir = path.parent().expect("state directory").to_path_buf();
    let chmod = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let refused = |needle: &str| {
        for command in ["diff", "enforce", "watch"] {
            sb.guestlist()
                .arg(command)
                .assert()
                .code(2)
                .stderr(predicate::str::contains("refusing"))
                .stderr(predicate::str::contains(needle));
        }
    };

    chmod(&path, 0o666);
    refused("writable by group and others (mode 666)");
    chmod(&path, 0o600);
    chmod(&dir, 0o770);
    refused(&format!("state directory {}", dir.display()));
    chmod(&dir, 0o700);
    sb.guestlist().arg("diff").assert().code(0);

    // Owned by someone else (the tests run as root, who can hand it over).
    std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
    refused("owned by uid 65534");
    std::os::unix::fs::chown(&path, Some(0), None).expect("chown");
    sb.guestlist().arg("diff").assert().code(0);
}

#[test]
fn a_state_file_from_another_kind_of_engine_is_refused_unless_asked() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let (here, other) = match crate::util::podman() {
        true => ("Podman", "Docker"),
        false => ("Docker", "Podman"),
    };
    sb.edit_state(|state| {
        assert_eq!(state["engine"]["kind"], here);
        state["engine"]["kind"] = other.into();
    });

    for command in [
        &["diff"][..],
        &["enforce"],
        &["watch"],
        &["snapshot", "web"],
    ] {
        sb.guestlist()
            .args(command)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "was taken on {other}, and the engine at"
            )))
            .stderr(predicate::str::contains(format!("is {here}")))
            .stderr(predicate::str::contains("--any-engine"));
    }
    sb.guestlist()
        .args(["--any-engine", "diff"])
        .assert()
        .code(0);
}

/// What `watch` logs in its first second against an engine that is not there (it logs that it
/// watches, then that it reconnects): `args` go before `watch`.
fn first_second_of_watch(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> String {
    let log = sb.dir().join("watch.log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("guestlist"));
    cmd.env("XDG_DATA_HOME", sb.dir())
        .env_remove("GUESTLIST_STATE")
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .args(args)
        .args(["--host", "unix:///nonexistent/docker.sock", "watch"])
        .stderr(file);
    let mut child = cmd.spawn().expect("start watch");
    std::thread::sleep(std::time::Duration::from_secs(1));
    child.kill().expect("stop watch");
    child.wait().expect("wait for watch");
    std::fs::read_to_string(&log).expect("read the log")
}

#[test]
fn logs_are_plain_text_json_quieter_or_louder_and_unstamped_under_journald() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    let is_stamped = |line: &str| line.starts_with("20") && line.contains('T');

    let text = first_second_of_watch(&sb, &[], &[]);
    let watching = text.lines().find(|l| l.contains("watching")).expect(&text);
    assert!(
        is_stamped(watching) && watching.contains(" INFO "),
        "{text}"
    );
    assert!(
        text.contains(" WARN ") && text.contains("reconnecting"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour in a log that is not a terminal: {text}"
    );
    assert!(!text.contains("DEBUG"), "{text}");

    let json = first_second_of_watch(&sb, &["--log-format", "json"], &[]);
    for line in json.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(
            record["timestamp"].is_string() && record["level"].is_string(),
            "{line}"
        );
        assert!(record["message"].is_string(), "{line}");
    }

    let quiet = first_second_of_watch(&sb, &["-q"], &[]);
    assert!(
        !quiet.contains("watching") && quiet.contains("reconnecting"),
        "{quiet}"
    );
    let verbose = first_second_of_watch(&sb, &["-v"], &[]);
    assert!(verbose.contains("DEBUG"), "{verbose}");

    // systemd's JOURNAL_STREAM names stderr's device and inode: journald stamps each line.
    let log = sb.dir().join("watch.log");
    std::fs::write(&log, "").expect("log file");
    let meta = std::fs::metadata(&log).expect("metadata");
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let journal = first_second_of_watch(&sb, &[], &[("JOURNAL_STREAM", &stream)]);
    let line = journal
        .lines()
        .find(|l| l.contains("watching"))
        .expect(&journal);
    assert!(
        line.starts_with(" INFO") || line.starts_with("INFO"),
        "{journal}"
    );
    // A JOURNAL_STREAM for another stream (stderr redirected by a wrapper) changes nothing.
    let other = first_second_of_watch(&sb, &[], &[("JOURNAL_STREAM", "1:1")]);
    assert!(other.lines().all(is_stamped), "{other}");
}

#[test]
fn completions_and_manual_pages_come_from_the_command_line_definition() {
    let bash = guestlist()
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout).into_owned();
    for command in [
        "snapshot",
        "enforce",
        "watch",
        "restore",
        "list",
        "--max-removals",
    ] {
        assert!(
            script.contains(command),
            "{command} missing from the bash completion"
        );
    }
    let mut check = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    use std::io::Write;
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    assert!(check.wait().expect("bash -n").success(), "bash rejects it");
    guestlist()
        .args(["completions", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("#compdef guestlist"));
    guestlist()
        .args(["completions", "fish"])
        .assert()
        .success()
        .stdout(predicate::str::contains("complete -c guestlist"));

    let dir = tempfile::tempdir().expect("tempdir");
    guestlist()
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
    let enforce = dir.path().join("guestlist-enforce.1");
    for page in ["guestlist.1", "guestlist-watch.1", "guestlist-restore.1"] {
        assert!(dir.path().join(page).exists(), "{page} not written");
    }
    let rendered = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(&enforce)
        .output()
        .expect(
            "groff renders manual pages (Debian package groff-base; .ci/provision installs it)",
        );
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success() && rendered.stderr.is_empty(),
        "{rendered:?}"
    );
    assert!(
        text.contains("--max-removals") && text.contains("Exit codes"),
        "{text}"
    );
}
