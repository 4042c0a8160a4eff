//! snapshot, diff, enforce and forget end to end through the binary, each test in its own scope.

use std::os::unix::fs::PermissionsExt;

use serde::Deserialize;
use serde_json::Value;

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::{docker, docker_output, Sandbox};

/// `diff --format json`, as a script would read it.
#[derive(Debug, Deserialize)]
struct DiffJson {
    in_sync: bool,
    missing: Vec<Item>,
    stopped: Vec<Item>,
    changed: Vec<Changed>,
    extra: Vec<Item>,
    tolerated: Vec<Tolerated>,
}

#[derive(Debug, Deserialize)]
struct Item {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Changed {
    name: String,
    fields: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Tolerated {
    name: String,
    rule: String,
}

fn names(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn snapshot_writes_a_private_state_file_under_xdg_data_home_and_refuses_to_overwrite_it() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.run("job", &[], &["true"]);
    docker(&["wait", &sb.name("job")]);
    let out = sb.expect(&["snapshot", "--scope", &sb.scope()], 0);
    assert!(
        out.contains(&format!("recorded {}", sb.name("web"))),
        "{out}"
    );
    assert!(
        !out.contains(&sb.name("job")),
        "a stopped container was recorded: {out}"
    );

    let path = sb.state_path();
    let mode = std::fs::metadata(&path)
        .expect("state file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(state["version"], 1);
    assert_eq!(state["scope"][0], sb.scope());
    let kind = if crate::util::podman() {
        "Podman"
    } else {
        "Docker"
    };
    assert_eq!(state["engine"]["kind"], kind);
    assert!(state["engine"]["api_version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(
        state["containers"][0]["spec"]["image"],
        crate::util::image::as_reported("guestlist-test:1")
    );
    assert!(state["containers"][0]["spec"]["image_id"]
        .as_str()
        .is_some_and(|i| i.starts_with("sha256:")));

    let (code, _, stderr) = sb.gl(&["snapshot", "--scope", &sb.scope()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );

    let out = sb.expect(&["snapshot", "--scope", &sb.scope(), "--all", "--force"], 0);
    assert!(
        out.contains(&format!(
            "recorded {} (image {}, stopped)",
            sb.name("job"),
            crate::util::image::as_reported("guestlist-test:1")
        )),
        "{out}"
    );
    // Recorded stopped: deleted, it is recreated but not started.
    docker(&["rm", &sb.name("job")]);
    sb.expect(&["enforce"], 0);
    assert_eq!(sb.inspect("job")["State"]["Status"], "created");
    assert!(sb.expect(&["enforce"], 0).starts_with("in sync"));
}

/// A host with one container of each kind of drift, plus a tolerated one and one outside the
/// scope. Returns the name of the outsider, which the caller must remove.
fn drifted(sb: &Sandbox) -> String {
    sb.run("gone", &[], &[]);
    sb.run("stopped", &[], &[]);
    sb.run("changed", &["-e", "MODE=recorded"], &[]);
    sb.run("quiet", &[], &[]);
    sb.snapshot(&["--allow", "name=*-tool"]);
    docker(&["rm", "-f", &sb.name("gone")]);
    docker(&["stop", "-t", "0", &sb.name("stopped")]);
    docker(&["rm", "-f", &sb.name("changed")]);
    sb.run("changed", &["-e", "MODE=drifted"], &[]);
    let volume = format!("{}:/data", sb.name("extra-data"));
    sb.run("extra", &["-v", &volume, "--restart", "always"], &[]);
    sb.run("debug-tool", &[], &[]);
    let outsider = format!("{}-outsider", sb.prefix);
    let image = crate::util::image::test_image();
    let mut args = vec!["run", "-d", "--name", &outsider];
    args.extend(crate::util::engine_options(&[]));
    args.push(&image);
    docker(&args);
    outsider
}

#[test]
fn diff_reports_each_kind_of_drift_and_exits_1() {
    let sb = Sandbox::new();
    let outsider = drifted(&sb);
    let text = sb.expect(&["diff"], 1);
    for line in [
        format!("- {}", sb.name("extra")),
        format!("+ {}", sb.name("gone")),
        format!("> {}", sb.name("stopped")),
        format!("~ {}", sb.name("changed")),
    ] {
        assert!(text.contains(&line), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains("changed config.Env"), "{text}");
    assert!(
        text.contains("drift: 1 missing, 1 stopped, 1 changed, 1 extra (4 allowed, 1 tolerated)"),
        "{text}"
    );
    assert!(!text.contains(&outsider));

    let json: DiffJson =
        serde_json::from_str(&sb.expect(&["diff", "--format", "json"], 1)).expect("diff JSON");
    assert!(!json.in_sync);
    assert_eq!(names(&json.missing), [sb.name("gone")]);
    assert_eq!(names(&json.stopped), [sb.name("stopped")]);
    assert_eq!(names(&json.extra), [sb.name("extra")]);
    assert_eq!(json.changed[0].name, sb.name("changed"));
    assert_eq!(json.changed[0].fields, ["config.Env"]);
    assert_eq!(json.tolerated[0].name, sb.name("debug-tool"));
    assert_eq!(json.tolerated[0].rule, "name=*-tool");
    docker(&["rm", "-f", &outsider]);
}

#[test]
fn enforce_repairs_every_kind_of_drift_and_touches_nothing_else() {
    let sb = Sandbox::new();
    let outsider = drifted(&sb);
    let quiet = sb.id("quiet");
    let stopped = sb.id("stopped");

    let dry = sb.expect(&["enforce", "--dry-run"], 1);
    assert!(dry.contains(&format!("- {}", sb.name("extra"))), "{dry}");
    assert!(
        sb.exists("extra") && !sb.exists("gone"),
        "--dry-run changed something"
    );

    let out = sb.expect(&["enforce", "--stop-timeout", "1s"], 0);
    assert!(
        out.contains("enforce: 4 actions, 4 done, 0 failed"),
        "{out}"
    );
    for short in ["gone", "stopped", "changed", "quiet", "debug-tool"] {
        assert_eq!(sb.inspect(short)["State"]["Status"], "running", "{short}");
    }
    let env = sb.inspect("changed")["Config"]["Env"].clone();
    assert!(
        env.as_array()
            .expect("env")
            .contains(&Value::from("MODE=recorded")),
        "{env}"
    );
    assert!(!sb.exists("extra"), "the extra container is still there");
    docker(&["volume", "inspect", &sb.name("extra-data")]);
    assert_eq!(sb.id("quiet"), quiet, "an in-sync container was touched");
    assert_eq!(
        sb.id("stopped"),
        stopped,
        "a stopped container was recreated, not started"
    );
    assert!(
        docker_output(&["inspect", &outsider]).status.success(),
        "a container outside the scope was touched"
    );
    docker(&["rm", "-f", &outsider]);

    let second = sb.expect(&["enforce"], 0);
    assert!(
        second
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("in sync")),
        "{second}"
    );
    sb.expect(&["diff"], 0);
}

#[test]
fn snapshot_with_names_approves_a_change_and_forget_makes_an_extra() {
    let sb = Sandbox::new();
    sb.run("web", &["-e", "V=1"], &[]);
    sb.run("db", &[], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    sb.run("web", &["-e", "V=2"], &[]);
    sb.expect(&["diff"], 1);
    let out = sb.expect(&["snapshot", &sb.name("web")], 0);
    assert!(
        out.contains(&format!("recorded {}", sb.name("web"))),
        "{out}"
    );
    sb.expect(&["diff"], 0);

    let (code, _, stderr) = sb.gl(&["snapshot", "nonexistent"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no container named nonexistent within the scope"),
        "{stderr}"
    );

    sb.expect(&["forget", &sb.name("db")], 0);
    let json: DiffJson =
        serde_json::from_str(&sb.expect(&["diff", "--format", "json"], 1)).expect("json");
    assert_eq!(names(&json.extra), [sb.name("db")]);
    let (code, _, stderr) = sb.gl(&["forget", "nonexistent"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not on the list"), "{stderr}");
}

#[test]
fn snapshot_with_names_needs_an_existing_state() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    let (code, _, stderr) = sb.gl(&["snapshot", &sb.name("web")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("guestlist: no state file at"), "{stderr}");
    assert!(
        stderr.contains("hint: run `guestlist snapshot` without names first"),
        "{stderr}"
    );
}

#[test]
fn a_moved_tag_recreates_from_the_recorded_image_and_never_loops() {
    let sb = Sandbox::new();
    let tag = sb.image("app:1");
    sb.run_image("app", &tag);
    let recorded = sb.inspect("app")["Image"].clone();
    sb.snapshot(&[]);
    sb.image("app:1");
    // The running container still runs the recorded image: that is no drift.
    sb.expect(&["diff"], 0);
    docker(&["rm", "-f", &sb.name("app")]);
    let out = sb.expect(&["enforce"], 0);
    assert!(
        out.contains("now names image") && out.contains("guestlist snapshot"),
        "{out}"
    );
    assert_eq!(sb.inspect("app")["Image"], recorded);
    let id = sb.id("app");
    assert!(sb.expect(&["enforce"], 0).starts_with("in sync"));
    assert_eq!(sb.id("app"), id);
}

#[test]
fn a_container_on_another_image_is_replaced_by_the_recorded_one() {
    let sb = Sandbox::new();
    let tag = sb.image("app:1");
    sb.run_image("app", &tag);
    let recorded = sb.inspect("app")["Image"].clone();
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("app")]);
    let other = sb.image("other:1");
    sb.run_image("app", &other);
    let json: DiffJson =
        serde_json::from_str(&sb.expect(&["diff", "--format", "json"], 1)).expect("json");
    assert_eq!(json.changed[0].fields, ["image"]);
    sb.expect(&["enforce"], 0);
    assert_eq!(sb.inspect("app")["Image"], recorded);
    assert!(sb.expect(&["enforce"], 0).starts_with("in sync"));
}

#[test]
fn an_image_that_is_gone_fails_its_action_by_name_and_the_others_still_run() {
    let sb = Sandbox::new();
    let tag = sb.image("vanishing:1");
    sb.run_image("lost", &tag);
    sb.run("fine", &[], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("lost"), &sb.name("fine")]);
    docker(&["rmi", &tag]);
    let out = sb.expect(&["enforce"], 1);
    assert!(
        out.contains(&format!("! {}", sb.name("lost")))
            && out.contains(&format!("image {}", crate::util::image::as_reported(&tag))),
        "{out}"
    );
    assert!(out.contains("is not present and cannot be pulled"), "{out}");
    assert!(out.contains("load it (docker load)"), "{out}");
    assert_eq!(sb.inspect("fine")["State"]["Status"], "running");
    assert!(!sb.exists("lost"));
}

#[test]
fn a_changed_auto_remove_container_is_replaced_although_it_removes_itself() {
    let sb = Sandbox::new();
    sb.run("ephemeral", &["--rm", "-e", "V=recorded"], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("ephemeral")]);
    sb.run("ephemeral", &["--rm", "-e", "V=drifted"], &[]);
    sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    let after = sb.inspect("ephemeral");
    assert!(after["Config"]["Env"]
        .as_array()
        .expect("env")
        .contains(&Value::from("V=recorded")));
    assert_eq!(after["HostConfig"]["AutoRemove"], true);
    assert!(sb.expect(&["enforce"], 0).starts_with("in sync"));
}

#[test]
fn list_shows_what_the_state_allows_without_the_engine() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    // No engine needed: point at one that is not there.
    let out = sb.expect(&["--host", "unix:///nonexistent.sock", "list"], 0);
    let line = out
        .lines()
        .find(|l| l.starts_with(&sb.name("web")))
        .expect(&out);
    assert!(line.ends_with("running"), "{out}");
    assert!(out.contains(&format!("scope: {}", sb.scope())), "{out}");
    let json: Value = serde_json::from_str(&sb.expect(&["list", "--format", "json"], 0))
        .expect("list --format json");
    assert_eq!(json["containers"][0]["name"], sb.name("web"));
    assert_eq!(json["containers"][0]["running"], true);
}

/// A web container with most options there are, on two networks, and a sidecar in its
/// network namespace, snapshotted. Returns their names. Tests running at once need their own
/// `subnet` (10.231.<subnet>.0/24).
fn rich_pair(sb: &Sandbox, subnet: u8) -> (String, String) {
    let ip = format!("10.231.{subnet}.7");
    let front = sb.network("front", &["--subnet", &format!("10.231.{subnet}.0/24")]);
    let back = sb.network("back", &[]);
    let data = format!("{}-data", sb.prefix);
    let bind = sb.dir().join("bind");
    std::fs::create_dir(&bind).expect("bind directory");
    let options = [
        "-e",
        "QUOTED=it's \"$HOME\" & more",
        "--label",
        "tier=web",
        "-w",
        "/tmp",
        "-u",
        "0:0",
        "--hostname",
        "web-host",
        "--restart",
        "on-failure:2",
        "-p",
        "127.0.0.1::80",
        "-p",
        "127.0.0.1::53/udp",
        "-v",
        &format!("{}:/bind:ro", bind.display()),
        "-v",
        &format!("{data}:/data"),
        "-v",
        "/cache",
        "--tmpfs",
        "/run:size=1m",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_BIND_SERVICE",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--ulimit",
        "nofile=512:1024",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "--shm-size",
        "16m",
        "--init",
        "--log-opt",
        "max-size=1m",
        "--stop-signal",
        "SIGINT",
        "--stop-timeout",
        "3",
        "--health-cmd",
        "true",
        "--health-interval",
        "30s",
        "--network",
        &front,
        "--network-alias",
        "www",
        "--ip",
        &ip,
        "--add-host",
        "db.local:10.0.0.9",
        "--dns",
        "10.0.0.53",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=0",
        "--entrypoint",
        "sh",
    ];
    sb.run(
        "web",
        &options,
        &["-c", "echo kept > /cache/f; exec sleep 600"],
    );
    docker(&[
        "network",
        "connect",
        "--alias",
        "api",
        &back,
        &sb.name("web"),
    ]);
    // A pids limit of its own: without one Podman records 0, which compose cannot express.
    sb.run(
        "sidecar",
        &[
            "--network",
            &format!("container:{}", sb.name("web")),
            "--pids-limit",
            "300",
        ],
        &[],
    );
    sb.snapshot(&[]);
    crate::util::watch::eventually(
        std::time::Duration::from_secs(10),
        "web wrote its file",
        || {
            docker_output(&["exec", &sb.name("web"), "cat", "/cache/f"])
                .status
                .success()
        },
    );

    (sb.name("web"), sb.name("sidecar"))
}

/// `diff` is clean and the anonymous volume's data is back, or the failure shows how the
/// containers were made, the record and what runs.
fn in_sync_after(sb: &Sandbox, how: &str) {
    let (code, diff, _) = sb.gl(&["diff"]);
    assert_eq!(
        code,
        0,
        "{how}\n{diff}\nrecorded: {}\nlive: {}",
        sb.expect(&["show", "--format", "json", &sb.name("web")], 0),
        sb.inspect("web")
    );
    assert_eq!(
        docker(&["exec", &sb.name("web"), "cat", "/cache/f"]),
        "kept"
    );
}

#[test]
fn show_prints_commands_that_recreate_the_container_exactly() {
    let sb = Sandbox::new();
    let (web, sidecar) = rich_pair(&sb, 1);
    let script = sb.expect(&["show", &web, &sidecar], 0);
    // One after the other: Podman removes no container that another shares a namespace with.
    docker(&["rm", "-f", &sidecar]);
    docker(&["rm", "-f", &web]);
    let ran = std::process::Command::new("sh")
        .args(["-e", "-c", &script])
        .output()
        .expect("sh");
    assert!(
        ran.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    in_sync_after(&sb, &script);

    let json: Value =
        serde_json::from_str(&sb.expect(&["show", "--format", "json", &sb.name("web")], 0))
            .expect("json");
    assert_eq!(json[0]["name"], sb.name("web"));
    let (code, _, stderr) = sb.gl(&["show", "nobody"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nobody is not on the list"), "{stderr}");
}

#[test]
fn show_prints_a_compose_file_that_compose_brings_up_exactly() {
    let sb = Sandbox::new();
    let (web, sidecar) = rich_pair(&sb, 2);
    let file = sb.expect(&["show", "--format", "compose", &web, &sidecar], 0);
    let path = sb.dir().join("compose.yaml");
    std::fs::write(&path, &file).expect("write the compose file");
    // One after the other: Podman removes no container that another shares a namespace with.
    docker(&["rm", "-f", &sidecar]);
    docker(&["rm", "-f", &web]);
    let up = crate::util::compose()
        .args(["-p", &sb.prefix, "-f"])
        .arg(&path)
        .args(["up", "-d"])
        .output()
        .expect("docker-compose (Debian package docker-compose; .ci/provision installs it)");
    assert!(
        up.status.success(),
        "{file}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    in_sync_after(&sb, &file);

    if crate::util::podman() {
        // No pids limit given: Podman records 0, which compose would leave out.
        sb.run("plain", &[], &[]);
        sb.expect(&["snapshot", &sb.name("plain")], 0);
        let (code, _, stderr) = sb.gl(&["show", "--format", "compose", &sb.name("plain")]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("host_config.PidsLimit"), "{stderr}");
    }
}

/// `diff` and `enforce` show what differs, with both values, in the units a person reads; the
/// environment's values never appear, in text or JSON. See: issue 13.
#[test]
fn diff_shows_each_changed_value_and_never_a_secret() {
    let sb = Sandbox::new();
    sb.run(
        "web",
        &[
            "-m",
            "64m",
            "-e",
            "PASSWORD=hunter2",
            "-e",
            "KEEP=same-value",
        ],
        &[],
    );
    sb.snapshot(&[]);
    // The record is what the list wants: another memory limit and another password, and a
    // variable the live container lacks.
    sb.edit_state(|state| {
        let spec = &mut state["containers"][0]["spec"];
        spec["host_config"]["Memory"] = serde_json::json!(128 * 1024 * 1024);
        spec["config"]["Env"] =
            serde_json::json!(["PASSWORD=letmein", "KEEP=same-value", "DEBUG=1"]);
    });
    let text = sb.expect(&["diff"], 1);
    assert!(
        text.contains("    host_config.Memory: 128 MiB -> 64 MiB\n"),
        "{text}"
    );
    assert!(
        text.contains("    config.Env: DEBUG removed, PASSWORD changed\n"),
        "{text}"
    );
    let json = sb.expect(&["diff", "--format", "json"], 1);
    let dry = sb.expect(&["enforce", "--dry-run"], 1);
    let done = sb.expect(&["enforce"], 0);
    assert!(
        done.contains("    host_config.Memory: 128 MiB -> 64 MiB\n"),
        "{done}"
    );
    for out in [&text, &json, &dry, &done] {
        for secret in ["hunter2", "letmein", "same-value", "DEBUG=1"] {
            assert!(!out.contains(secret), "{secret} printed:\n{out}");
        }
    }
    let json: Value = serde_json::from_str(&json).expect("json");
    let changes = json["changed"][0]["changes"].as_array().expect("changes");
    let memory = changes
        .iter()
        .find(|c| c["field"] == "host_config.Memory")
        .expect("memory");
    assert_eq!(memory["recorded"], 134217728);
    assert_eq!(memory["live"], 67108864);
    assert_eq!(
        json["changed"][0]["fields"].as_array().map(Vec::len),
        Some(changes.len())
    );
    assert_eq!(sb.inspect("web")["HostConfig"]["Memory"], 134217728);
}

/// After acting, `enforce` checks the host again (what it acted on, and a list of the rest)
/// and exits 1 when drift remains: here a container that exits as soon as it starts.
#[test]
fn enforce_exits_1_when_drift_remains_after_the_pass() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.run("db", &[], &[]);
    sb.snapshot(&[]);
    sb.edit_state(|state| {
        for entry in state["containers"].as_array_mut().expect("containers") {
            if entry["name"].as_str().is_some_and(|n| n.ends_with("-web")) {
                entry["spec"]["config"]["Cmd"] = serde_json::json!(["sh", "-c", "exit 3"]);
            }
        }
    });
    // The container exits a few milliseconds after its start; under load the check after the
    // pass can come first. Held until then, the check's list sees what the next pass would.
    let started = std::sync::atomic::AtomicBool::new(false);
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), move |method, path| {
        if method == "POST" && path.contains("/start") {
            started.store(true, std::sync::atomic::Ordering::SeqCst);
        } else if path.contains("/containers/json")
            && started.load(std::sync::atomic::Ordering::SeqCst)
        {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        Verdict::Forward
    });
    let (code, stdout, stderr) = sb.gl(&["--host", &proxy.url(), "enforce"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("drift remains after the pass:"), "{stdout}");
    assert!(
        stdout.contains(&format!("> {}", sb.name("web"))),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&format!("{}  ", sb.name("db"))),
        "{stdout}"
    );
}
