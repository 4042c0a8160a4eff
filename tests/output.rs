//! Output a machine can trust: with `--log-format json` every line on stderr is a JSON object,
//! `check` says what the commands that act would say, and each refusal names its real cause
//! and the next step.

use serde_json::Value;

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
