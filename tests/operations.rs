//! Running guestlist in operations: metrics for Prometheus, and the files in contrib/ checked
//! by the tools that will read them.

use std::path::Path;
use std::process::Command;

use crate::util::{docker, Sandbox};

/// The value of one series in a metrics text.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
        .parse()
        .expect("a number")
}

/// `promtool check metrics` accepts the file (Debian package prometheus; .ci/provision installs
/// it).
fn promtool_accepts(path: &Path) {
    let file = std::fs::File::open(path).expect("metrics file");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .expect("promtool (Debian package prometheus; .ci/provision installs it)");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn enforce_leaves_metrics_for_the_textfile_collector_even_when_it_fails() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.run("db", &[], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    sb.run("intruder", &[], &[]);
    let path = sb.dir().join("guestlist.prom");
    let file = path.to_str().expect("path");

    sb.expect(
        &["enforce", "--stop-timeout", "0", "--metrics-file", file],
        0,
    );
    let text = std::fs::read_to_string(&path).expect("metrics file");
    promtool_accepts(&path);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("metadata").permissions(),
    );
    assert_eq!(mode & 0o777, 0o644, "node_exporter must be able to read it");
    assert_eq!(
        value(&text, r#"guestlist_containers{state="allowed"}"#),
        2.0
    );
    assert_eq!(
        value(&text, r#"guestlist_containers{state="missing"}"#),
        1.0
    );
    assert_eq!(value(&text, r#"guestlist_containers{state="extra"}"#), 1.0);
    assert_eq!(
        value(
            &text,
            r#"guestlist_last_pass_actions{kind="create",result="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"guestlist_last_pass_actions{kind="remove",result="ok"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "guestlist_last_pass_success"), 1.0);
    let succeeded = value(&text, "guestlist_last_success_timestamp_seconds");
    assert!(succeeded > 1.7e9, "{text}");

    // The engine is gone: the pass fails, and the file says so but keeps the last success.
    let (code, _, _) = sb.gl(&[
        "--host",
        "unix:///nonexistent.sock",
        "enforce",
        "--metrics-file",
        file,
    ]);
    assert_eq!(code, 2);
    let text = std::fs::read_to_string(&path).expect("metrics file");
    promtool_accepts(&path);
    assert_eq!(value(&text, "guestlist_last_pass_success"), 0.0);
    assert_eq!(
        value(&text, "guestlist_last_success_timestamp_seconds"),
        succeeded
    );
    assert!(value(&text, "guestlist_last_pass_timestamp_seconds") >= succeeded);
}
