//! Nothing lost: a removal keeps the volumes, the audit log keeps the container's whole inspect
//! and every action's result, and `guestlist restore` brings a removed container back as it was.

use serde_json::Value;

use crate::fidelity::configuration;
use crate::util::{docker, docker_output, Sandbox};

fn records<'a>(log: &'a [Value], container: &str, result: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["container"] == container && r["result"] == result)
        .collect()
}

/// An inspect with its mounts sorted: the engine lists them in no particular order (a map).
fn mounts_in_order(mut inspect: Value) -> Value {
    if let Some(mounts) = inspect["Mounts"].as_array_mut() {
        mounts.sort_by_key(|m| m["Destination"].as_str().unwrap_or_default().to_string());
    }
    inspect
}

fn volume_exists(name: &str) -> bool {
    docker_output(&["volume", "inspect", name]).status.success()
}

#[test]
fn an_extra_removed_by_mistake_comes_back_from_the_audit_log_with_its_data() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    let data = format!("{}-data", sb.prefix);
    let mount = format!("{data}:/data");
    sb.run(
        "precious",
        &[
            "-v",
            &mount,
            "-v",
            "/cache",
            "-e",
            "TOKEN=s3cret",
            "-p",
            "127.0.0.1::80",
        ],
        &[
            "sh",
            "-c",
            "echo kept > /data/f; echo cached > /cache/f; exec sleep 600",
        ],
    );
    crate::util::watch::eventually(
        std::time::Duration::from_secs(10),
        "precious wrote its files",
        || {
            docker_output(&["exec", &sb.name("precious"), "cat", "/cache/f"])
                .status
                .success()
        },
    );
    let before = sb.inspect("precious");
    let anonymous = before["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["Destination"] == "/cache")
        .and_then(|m| m["Name"].as_str())
        .expect("the anonymous volume")
        .to_string();

    let out = sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    assert!(out.contains(&format!("- {}", sb.name("precious"))), "{out}");
    assert!(!sb.exists("precious"));
    assert!(volume_exists(&data), "the named volume was removed");
    assert!(
        volume_exists(&anonymous),
        "the anonymous volume was removed"
    );

    let name = sb.name("precious");
    let log = sb.audit_log();
    let kept = records(&log, &name, "removing");
    assert_eq!(kept.len(), 1, "{log:?}");
    assert_eq!(
        mounts_in_order(kept[0]["inspect"].clone()),
        mounts_in_order(before.clone()),
        "the audit log holds the full inspect"
    );
    assert_eq!(kept[0]["action"], "remove");
    assert!(kept[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .starts_with("extra"));
    assert_eq!(records(&log, &name, "ok").len(), 1, "{log:?}");

    let listing = sb.expect(&["restore"], 0);
    assert!(listing.contains(&name), "{listing}");
    sb.expect(&["restore", &name], 0);
    let out = sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    assert!(out.contains(&format!("+ {name}")), "{out}");

    let after = sb.inspect("precious");
    assert_eq!(configuration(&before), configuration(&after));
    let read = |path: &str| docker(&["exec", &name, "cat", path]);
    assert_eq!(read("/data/f"), "kept");
    assert_eq!(read("/cache/f"), "cached");
    let log = sb.audit_log();
    assert_eq!(
        records(&log, &name, "ok").len(),
        2,
        "the create is logged too"
    );
    assert!(sb.expect(&["enforce"], 0).starts_with("in sync"));
}

#[test]
fn a_replacement_keeps_the_old_container_in_the_log_and_restore_undoes_it() {
    let sb = Sandbox::new();
    sb.run("app", &["-e", "V=recorded"], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("app")]);
    sb.run("app", &["-e", "V=hotfix"], &[]);
    let hotfix = sb.inspect("app");
    sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    let env = |c: &Value| c["Config"]["Env"].clone();
    assert!(env(&sb.inspect("app")).to_string().contains("V=recorded"));

    let name = sb.name("app");
    let log = sb.audit_log();
    let kept = records(&log, &name, "removing");
    assert_eq!(kept.len(), 1, "{log:?}");
    assert_eq!(kept[0]["action"], "replace");
    assert_eq!(kept[0]["inspect"]["Id"], hotfix["Id"]);

    sb.expect(&["restore", &name], 0);
    sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    assert_eq!(configuration(&sb.inspect("app")), configuration(&hotfix));
}

#[test]
fn a_failed_action_is_in_the_audit_log_with_its_cause() {
    let sb = Sandbox::new();
    let tag = sb.image("vanishing:1");
    sb.run_image("lost", &tag);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("lost")]);
    docker(&["rmi", &tag]);
    sb.expect(&["enforce"], 1);
    let log = sb.audit_log();
    let failed = records(&log, &sb.name("lost"), "failed");
    assert_eq!(failed.len(), 1, "{log:?}");
    assert_eq!(failed[0]["action"], "create");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&tag),
        "{failed:?}"
    );
}

#[test]
fn restore_of_a_name_never_removed_changes_nothing_and_says_how_to_list() {
    let sb = Sandbox::new();
    sb.run("x", &[], &[]);
    sb.snapshot(&[]);
    let (code, _, stderr) = sb.gl(&["restore", "nobody"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no audit log"), "{stderr}");
    sb.run("extra", &[], &[]);
    sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    let state = std::fs::read(sb.state_path()).expect("state");
    let (code, _, stderr) = sb.gl(&["restore", "nobody"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no removal of nobody"), "{stderr}");
    assert!(
        stderr.contains("hint: `guestlist restore` without names"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(sb.state_path()).expect("state"), state);
}
