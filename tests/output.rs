//! Output a machine can trust: with `--log-format json` every line on stderr is a JSON object,
//! `check` says what the commands that act would say, and each refusal names its real cause
//! and the next step.

use serde_json::Value;

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::receiver::{Answer, Receiver};
use crate::util::Sandbox;

/// Every line of `stderr` parsed as one JSON object with a timestamp, a level and a message.
fn json_lines(stderr: &str) -> Vec<Value> {
    assert!(!stderr.trim().is_empty(), "nothing on stderr");
    stderr
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nin\n{stderr}"));
            for field in ["timestamp", "level", "message"] {
                assert!(value[field].is_string(), "no {field} in {line}");
            }
            value
        })
        .collect()
}

/// The one line of `level` whose message contains `text`.
fn line_with<'a>(lines: &'a [Value], level: &str, text: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["level"] == level && l["message"].as_str().unwrap_or("").contains(text))
        .unwrap_or_else(|| panic!("no {level} line with {text:?} in {lines:#?}"))
}

#[test]
fn with_json_logs_every_line_on_stderr_is_one_json_object() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    sb.run("intruder", &[], &[]);

    // A usage error, wherever --log-format is on the line, keeps clap's exit code.
    for args in [
        &["--log-format", "json", "enforce", "--bogus"][..],
        &["enforce", "--bogus", "--log-format=json"],
        &["--log-format", "json", "frobnicate"],
        &["--log-format", "json"],
    ] {
        let (code, _, stderr) = sb.gl(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        let lines = json_lines(&stderr);
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert_eq!(lines[0]["level"], "ERROR", "{stderr}");
    }
    let (_, _, stderr) = sb.gl(&["--log-format", "json", "enforce", "--bogus"]);
    line_with(
        &json_lines(&stderr),
        "ERROR",
        "unexpected argument '--bogus'",
    );

    // A fatal error keeps its next step as a field of its own.
    let missing = sb.dir().join("nowhere.json");
    let missing = missing.to_str().unwrap();
    let (code, _, stderr) = sb.gl(&["--log-format", "json", "--state", missing, "diff"]);
    assert_eq!(code, 2, "{stderr}");
    let lines = json_lines(&stderr);
    let fatal = line_with(&lines, "ERROR", "no state file at");
    assert!(
        fatal["hint"]
            .as_str()
            .unwrap_or("")
            .contains("guestlist snapshot"),
        "{fatal}"
    );

    // A pass held back by --max-removals, a receiver that does not take the notification, a
    // metrics file that cannot be written: warnings and a refusal among the log lines.
    let receiver = Receiver::start(Answer::Fail);
    let url = receiver.url();
    let metrics = sb.dir().join("no-such-directory").join("guestlist.prom");
    let (code, stdout, stderr) = sb.gl(&[
        "--log-format",
        "json",
        "enforce",
        "--max-removals",
        "0",
        "--notify",
        &url,
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines = json_lines(&stderr);
    let refused = line_with(&lines, "ERROR", "--max-removals");
    assert!(
        refused["hint"]
            .as_str()
            .unwrap_or("")
            .contains("rerun with"),
        "{refused}"
    );
    line_with(&lines, "WARN", "cannot notify");
    line_with(&lines, "WARN", "guestlist.prom");
    assert!(stdout.contains(&sb.name("intruder")), "the plan: {stdout}");

    // `restore` skipping audit lines it cannot read.
    let audit = sb.dir().join("guestlist").join("audit.jsonl");
    std::fs::write(&audit, "not json\n").unwrap();
    let (code, _, stderr) = sb.gl(&["--log-format", "json", "restore"]);
    assert_eq!(code, 0, "{stderr}");
    line_with(&json_lines(&stderr), "WARN", "unreadable lines");

    // -qq is errors only: the warnings are left out, in either shape.
    let (_, _, stderr) = sb.gl(&["--log-format", "json", "-qq", "restore"]);
    assert!(stderr.is_empty(), "{stderr}");
    let (_, _, stderr) = sb.gl(&["-qq", "restore"]);
    assert!(stderr.is_empty(), "{stderr}");
}

/// Change a file's or a directory's mode.
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `guestlist --state PATH COMMAND`: exit code and stderr.
fn on_state(sb: &Sandbox, path: &std::path::Path, command: &str) -> (i32, String) {
    let (code, _, stderr) = sb.gl(&["--state", path.to_str().unwrap(), command]);
    (code, stderr)
}

#[test]
fn check_refuses_what_the_commands_that_act_refuse() {
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    let path = sb.state_path();
    let dir = path.parent().unwrap().to_path_buf();
    let (code, stdout, _) = sb.gl(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("valid: "), "{stdout}");

    // A link to a list in a directory anyone can write: the link's own directory is fine.
    let open = sb.dir().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::copy(&path, open.join("state.json")).unwrap();
    chmod(&open, 0o777);
    let link = dir.join("linked.json");
    std::os::unix::fs::symlink(open.join("state.json"), &link).unwrap();

    for (what, target, mode, refused) in [
        ("a file of mode 0666", &path, 0o666, "refusing state file"),
        (
            "a directory of mode 0777",
            &dir,
            0o777,
            "refusing state directory",
        ),
    ] {
        let before = chmod_back(target, mode);
        let (code, said) = on_state(&sb, &path, "check");
        assert_eq!(code, 2, "{what}: check called it valid: {said}");
        assert!(
            said.contains(refused) && said.contains("chmod go-w"),
            "{what}: {said}"
        );
        for command in ["list", "diff"] {
            let (code, they_say) = on_state(&sb, &path, command);
            assert_eq!(code, 2, "{what}: {command}: {they_say}");
            assert_eq!(said, they_say, "{what}: check and {command} disagree");
        }
        chmod(target, before);
    }
    let (code, said) = on_state(&sb, &link, "check");
    assert_eq!(
        code, 2,
        "check called a link into an open directory valid: {said}"
    );
    assert!(
        said.contains(&format!("{} is a symlink to", link.display()))
            && said.contains(&format!("refusing state directory {}", open.display())),
        "{said}"
    );
    assert_eq!(said, on_state(&sb, &link, "list").1);
}

/// Set `path`'s mode to `mode`; returns the mode it had.
fn chmod_back(path: &std::path::Path, mode: u32) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let before = std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    chmod(path, mode);
    before
}

#[test]
fn a_state_file_that_is_no_state_names_its_real_cause() {
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    let good = std::fs::read(sb.state_path()).unwrap();
    let mut value: Value = serde_json::from_slice(&good).unwrap();
    let entry =
        serde_json::json!({"name": "web", "spec": {"image": "busybox", "image_id": "sha256:1"}});
    let mut other = entry.clone();
    other["name"] = "db".into();
    let mut slashed = entry.clone();
    slashed["name"] = "/web".into();
    value["containers"] = serde_json::json!([entry, other, slashed]);
    let duplicated = serde_json::to_vec_pretty(&value).unwrap();
    let web_lines: Vec<usize> = String::from_utf8_lossy(&duplicated)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(r#""name": "web""#) || l.contains(r#""name": "/web""#))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(web_lines.len(), 2);
    let duplicate = format!(
        "container web is listed twice (line {} and line {})",
        web_lines[0], web_lines[1]
    );

    let bom = [&[0xEF, 0xBB, 0xBF][..], &good].concat();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            String::from_utf8_lossy(&good)
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    let cases: [(&str, Vec<u8>, &[&str]); 6] = [
        (
            "bom",
            bom,
            &["UTF-8 byte order mark", "without a byte order mark"],
        ),
        ("utf16", utf16, &["UTF-16", "save it as UTF-8"]),
        (
            "array",
            b"[]\n".to_vec(),
            &["the whole file is a JSON array", "one JSON object"],
        ),
        (
            "empty",
            Vec::new(),
            &["the file is empty", "guestlist snapshot"],
        ),
        ("duplicate", duplicated, &[&duplicate, "keep one entry"]),
        (
            "null",
            b"null".to_vec(),
            &["a single JSON value", "one JSON object"],
        ),
    ];
    for (short, bytes, causes) in cases {
        let path = sb.dir().join(format!("{short}.json"));
        std::fs::write(&path, &bytes).unwrap();
        chmod(&path, 0o600);
        for command in ["check", "list", "diff"] {
            let (code, said) = on_state(&sb, &path, command);
            assert_eq!(code, 2, "{short}: {command}: {said}");
            for cause in causes {
                assert!(
                    said.contains(cause),
                    "{short}: {command}: no {cause:?} in {said}"
                );
            }
            assert!(
                !said.contains("expected value"),
                "{short}: serde's words: {said}"
            );
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{short} was modified");
    }
}

#[test]
fn a_symlinked_state_file_is_read_and_written_through_and_named_when_it_leads_nowhere() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let real = sb.state_path();
    let link = sb.dir().join("guestlist").join("current.json");
    std::os::unix::fs::symlink("state.json", &link).unwrap();
    let at_link = link.to_str().unwrap();

    // Written through: the link stays a link, and the file it points to holds the change.
    sb.expect(&["--state", at_link, "forget", &sb.name("web")], 0);
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "forget replaced the link with a file"
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    assert_eq!(kept["containers"], serde_json::json!([]), "{kept}");
    sb.expect(&["--state", at_link, "snapshot", &sb.name("web")], 0);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains(&sb.name("web")));

    // A link to nothing is not "no state file, take a snapshot": the snapshot would replace it.
    let dangling = sb.dir().join("guestlist").join("dangling.json");
    std::os::unix::fs::symlink("gone.json", &dangling).unwrap();
    for command in ["check", "diff", "enforce", "list"] {
        let (code, said) = on_state(&sb, &dangling, command);
        assert_eq!(code, 2, "{command}: {said}");
        assert!(
            said.contains(&format!("{} is a symlink to", dangling.display()))
                && said.contains("gone.json, which does not exist"),
            "{command}: {said}"
        );
        assert!(!said.contains("guestlist snapshot"), "{command}: {said}");
    }
    let scope = sb.scope();
    let at_dangling = dangling.to_str().unwrap();
    let (code, _, said) = sb.gl(&["--state", at_dangling, "snapshot", "--scope", &scope]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("which does not exist"), "{said}");
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn an_engine_that_answers_with_an_error_is_not_asked_whether_it_runs() {
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    for (status, said, next) in [
        (500, "answered 500 Internal Server Error", "daemon's log"),
        (503, "answered 503 Service Unavailable", "daemon's log"),
        (
            301,
            "with a redirect (301 Moved Permanently)",
            "the engine's socket or port",
        ),
        (
            307,
            "with a redirect (307 Temporary Redirect)",
            "the engine's socket or port",
        ),
        (
            403,
            "refused this client (403 Forbidden)",
            "ask whoever runs the engine",
        ),
    ] {
        let socket = sb.dir().join(format!("answers-{status}.sock"));
        let proxy = HookProxy::start(&socket, move |_, _| Verdict::Answer(status));
        let (code, _, stderr) = sb.gl(&["--host", &proxy.url(), "diff"]);
        assert_eq!(code, 2, "{status}: {stderr}");
        assert!(stderr.contains(said), "{status}: {stderr}");
        assert!(
            stderr.contains("answered by the test proxy"),
            "{status}: {stderr}"
        );
        assert!(
            stderr.contains("hint: ") && stderr.contains(next),
            "{status}: {stderr}"
        );
        assert!(
            !stderr.contains("is the daemon running"),
            "{status}: {stderr}"
        );
    }
}

#[test]
fn permission_denied_on_the_socket_says_so_and_who_may_use_it() {
    let sb = Sandbox::new();
    sb.snapshot(&[]);
    // A directory and a state file the other user can read, owned by root (trusted).
    let shared = tempfile::tempdir().unwrap();
    chmod(shared.path(), 0o755);
    let state = shared.path().join("state.json");
    std::fs::copy(sb.state_path(), &state).unwrap();
    chmod(&state, 0o644);
    // The engine's socket as root keeps it: only its owner may connect.
    let socket = shared.path().join("engine.sock");
    let proxy = HookProxy::start(&socket, |_, _| Verdict::Forward);
    chmod(&socket, 0o600);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "4242", "--regid", "4242", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("guestlist"))
        .args([
            "--state",
            state.to_str().unwrap(),
            "--host",
            &proxy.url(),
            "diff",
        ])
        .env_remove("GUESTLIST_STATE")
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "permission denied on the socket {}",
            socket.display()
        )) && stderr.contains("owner root")
            && stderr.contains("mode 600")
            && stderr.contains("uid 4242"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: run guestlist as root or as a member of group"),
        "{stderr}"
    );
    assert!(
        proxy.seen().is_empty(),
        "the proxy was reached: {:?}",
        proxy.seen()
    );
}

#[test]
fn a_read_only_state_directory_suggests_a_run_dir() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    let config = sb.dir().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::copy(sb.state_path(), config.join("state.json")).unwrap();
    let read_only = format!("{}:/etc/guestlist:ro", config.display());
    let args = ["--state", "/etc/guestlist/state.json", "enforce"];
    let (code, logs) = sb.guestlist_in_container(&["-v", &read_only], "ro", &args);
    assert_eq!(code, "2", "{logs}");
    assert!(
        logs.contains("/etc/guestlist is on a read-only file system"),
        "{logs}"
    );
    assert!(logs.contains("hint: pass --run-dir DIR"), "{logs}");
}

/// A sandbox whose list holds `web`, which cannot be created: its network is gone.
fn failing_to_create() -> Sandbox {
    let sb = Sandbox::new();
    let net = sb.network("net", &[]);
    sb.run("web", &["--network", &net], &[]);
    sb.snapshot(&[]);
    crate::util::docker(&["rm", "-f", &sb.name("web")]);
    crate::util::docker(&["network", "rm", &net]);
    sb
}

fn text(body: &Value) -> &str {
    body["text"].as_str().expect("a text line")
}

#[test]
fn a_container_dropped_from_the_list_is_told_as_such_not_as_back_in_sync() {
    // Its image is gone: each create fails at once and leaves nothing behind.
    let sb = Sandbox::new();
    let image = sb.image("img");
    sb.run_image("web", &image);
    sb.snapshot(&[]);
    crate::util::docker(&["rm", "-f", &sb.name("web")]);
    crate::util::docker(&["rmi", &image]);
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();
    let web = sb.name("web");
    sb.expect(&["enforce", "--notify", &url], 1);
    assert_eq!(receiver.bodies().len(), 1, "{:#?}", receiver.bodies());

    sb.expect(&["forget", &web], 0);
    sb.expect(&["enforce", "--notify", &url], 0);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let told = &bodies[1];
    assert!(
        text(told).contains(&format!("{web} is no longer on the list")),
        "{told:#}"
    );
    assert!(!text(told).contains("back in sync"), "{told:#}");
    assert_eq!(told["situations"][0]["state"], "resolved", "{told:#}");
}

#[test]
fn a_situation_no_receiver_took_keeps_when_it_began() {
    let sb = failing_to_create();
    let down = Receiver::start(Answer::Fail);
    let began = std::time::SystemTime::now();
    sb.expect(&["enforce", "--notify", &down.url()], 1);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = std::time::SystemTime::now();
    sb.expect(&["enforce", "--notify", &down.url()], 1);
    assert!(down.requests() >= 2, "the receiver was not asked");

    let up = Receiver::start(Answer::Take);
    sb.expect(&["enforce", "--notify", &up.url()], 1);
    let bodies = up.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let situation = &bodies[0]["situations"][0];
    assert_eq!(situation["state"], "new", "{situation}");
    let since = humantime::parse_rfc3339(situation["since"].as_str().unwrap()).unwrap();
    // `since` is in whole seconds: the first pass's second, not the second pass's.
    assert!(
        since + std::time::Duration::from_secs(1) > began && since < second,
        "since {situation} restarted: the first pass began at {}",
        humantime::format_rfc3339_seconds(began)
    );
}
