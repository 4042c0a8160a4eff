//! Running guestlist in operations: metrics for Prometheus, and the files in contrib/ checked
//! by the tools that will read them.

use std::path::Path;
use std::process::Command;

use crate::util::receiver::{Answer, Receiver};
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

#[test]
fn watch_serves_metrics_that_count_what_it_did() {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    let address = crate::util::free_address();
    let watch = sb.watch(&["--stop-timeout", "0", "--metrics-listen", &address]);
    watch.wait_for_log("serving metrics", std::time::Duration::from_secs(10));
    sb.run("intruder", &[], &[]);
    crate::util::watch::eventually(
        std::time::Duration::from_secs(20),
        "the extra is removed and counted",
        || {
            let (_, body) = crate::util::http_get(&address, "/metrics");
            body.contains(r#"guestlist_actions_total{kind="remove",result="ok"} 1"#)
        },
    );
    let (status, body) = crate::util::http_get(&address, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        value(&body, r#"guestlist_containers{state="allowed"}"#),
        1.0
    );
    assert!(value(&body, r#"guestlist_passes_total{result="in_sync"}"#) >= 2.0);
    assert_eq!(value(&body, "guestlist_last_pass_success"), 1.0);
    let file = sb.dir().join("scraped.prom");
    std::fs::write(&file, &body).expect("write");
    promtool_accepts(&file);
    let (status, _) = crate::util::http_get(&address, "/nothing-here");
    assert!(status.contains("404"), "{status}");
}

/// The repository's contrib directory.
fn contrib() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

/// Run a checking tool in `dir`; panic with its output unless it succeeds. `install` says
/// where the tool comes from.
fn check(dir: &Path, program: &str, args: &[&str], install: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): {install}; .ci/provision installs it")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {}: {text}", args.join(" "));
    text
}

#[test]
fn the_alerting_rules_load_and_fire_exactly_when_their_tests_say() {
    let dir = contrib().join("prometheus");
    let install = "Debian package prometheus";
    let out = check(&dir, "promtool", &["check", "rules", "alerts.yml"], install);
    assert!(out.contains("SUCCESS: 4 rules found"), "{out}");
    check(
        &dir,
        "promtool",
        &["test", "rules", "alerts.test.yml"],
        install,
    );
}

#[test]
fn the_systemd_units_verify_without_a_single_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = assert_cmd::cargo::cargo_bin("guestlist");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(contrib().join("systemd")).expect("contrib/systemd") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("unit");
        if name.ends_with(".conf") {
            // A drop-in for both services (Podman hosts): verify reads it from `<unit>.d/`.
            for service in ["guestlist-enforce.service", "guestlist-watch.service"] {
                let drop_ins = dir.path().join(format!("{service}.d"));
                std::fs::create_dir_all(&drop_ins).expect("drop-in directory");
                std::fs::write(drop_ins.join(&name), &text).expect("write drop-in");
            }
            units.push(name);
            continue;
        }
        if name.ends_with(".service") {
            assert!(text.contains("/usr/local/bin/guestlist"), "{name}");
        }
        // The units name the installed binary; verify checks that it exists and runs.
        let text = text.replace("/usr/local/bin/guestlist", &binary.display().to_string());
        std::fs::write(dir.path().join(&name), text).expect("write unit");
        units.push(format!("./{name}"));
    }
    units.sort();
    assert_eq!(
        units,
        [
            "./guestlist-enforce.service",
            "./guestlist-enforce.timer",
            "./guestlist-guard-proxy.service",
            "./guestlist-guard.service",
            "./guestlist-watch.service",
            "podman.conf"
        ]
    );
    let mut args = vec!["verify", "--man=no"];
    args.extend(
        units
            .iter()
            .filter(|u| u.starts_with("./"))
            .map(String::as_str),
    );
    let out = check(
        dir.path(),
        "systemd-analyze",
        &args,
        "Debian package systemd",
    );
    // verify exits 0 on warnings such as an unknown key: any word about our units fails.
    let ours: Vec<&str> = out.lines().filter(|l| l.contains("guestlist")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {ours:?}");
}

#[test]
fn the_cron_entry_is_well_formed_and_its_command_enforces() {
    let text = std::fs::read_to_string(contrib().join("cron").join("guestlist")).expect("entry");
    let mut env = Vec::new();
    let mut jobs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if !name.contains(' ') => env.push((name, value)),
            _ => jobs.push(line),
        }
    }
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    // m h dom mon dow user command
    let fields: Vec<&str> = jobs[0].splitn(7, ' ').collect();
    assert_eq!(
        fields[..6],
        ["*", "*", "*", "*", "*", "root"],
        "{}",
        jobs[0]
    );
    assert!(env.iter().any(|(n, _)| *n == "GUESTLIST_STATE"), "{env:?}");

    // Run the command as cron would, with this test's binary, state and a file for syslog.
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    // With an init, the sleep in it dies on SIGTERM at once, not after the 10 s grace.
    sb.run("intruder", &["--init"], &[]);
    let log = sb.dir().join("syslog");
    let command = fields[6]
        .replace(
            "/usr/local/bin/guestlist",
            &assert_cmd::cargo::cargo_bin("guestlist")
                .display()
                .to_string(),
        )
        .replace("logger -t guestlist", &format!("cat >> {}", log.display()));
    let status = Command::new("/bin/sh")
        .args(["-c", &command])
        .env("GUESTLIST_STATE", sb.state_path())
        .env("GUESTLIST_AUDIT_LOG", sb.dir().join("audit.jsonl"))
        .status()
        .expect("sh");
    assert!(status.success());
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(logged.contains("guestlist enforce exited 0"), "{logged}");
    assert!(
        logged.contains(&format!("- {}", sb.name("intruder"))),
        "{logged}"
    );
    assert!(!sb.exists("intruder"));
}

/// contrib/docker/build.sh, once per test run (a debug build: the image's behaviour is what is
/// tested here, not its size).
fn container_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(contrib().join("docker").join("build.sh"))
            .env("PROFILE", "dev")
            .output()
            .expect("contrib/docker/build.sh");
        assert!(
            out.status.success(),
            "contrib/docker/build.sh: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    "guestlist:local"
}

#[test]
fn the_container_image_snapshots_and_watches_the_host_and_never_removes_itself() {
    let image = container_image();
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    let label = format!("{}={}", crate::util::LABEL, sb.prefix);
    let socket = format!("{}:/var/run/docker.sock", crate::util::engine_socket());
    let state = format!("{}-state:/var/lib/guestlist", sb.prefix);
    let in_image = |extra: &[&str], args: &[&str]| -> Vec<String> {
        let mut all = vec!["run", "--label", &label, "-v", &socket, "-v", &state];
        all.extend_from_slice(extra);
        all.push(image);
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect()
    };

    // The snapshot runs in a container of the scope, and leaves itself off the list.
    let scope = sb.scope();
    let args = in_image(&["--rm"], &["snapshot", "--scope", &scope]);
    let out = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.contains(&format!("recorded {}", sb.name("kept"))),
        "{out}"
    );
    assert!(out.contains("1 containers allowed"), "{out}");

    let guard = sb.name("guard");
    let args = in_image(&["-d", "--name", &guard], &["watch", "--stop-timeout", "0"]);
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let logs = || {
        let out = crate::util::docker_output(&["logs", &guard]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let within = std::time::Duration::from_secs(30);
    crate::util::watch::eventually(within, "the watch made its first pass", || {
        logs().contains("full pass")
    });
    sb.run("intruder", &[], &[]);
    crate::util::watch::eventually(within, "the extra is removed", || !sb.exists("intruder"));
    docker(&["rm", "-f", &sb.name("kept")]);
    crate::util::watch::eventually(within, "the deleted container is back", || {
        sb.exists("kept") && sb.inspect("kept")["State"]["Running"] == true
    });
    assert_eq!(sb.inspect("guard")["State"]["Running"], true, "{}", logs());
    assert!(!logs().contains(&format!("- {guard}")), "{}", logs());
}

#[test]
fn the_compose_file_is_valid_and_runs_the_image_with_socket_and_state_volume() {
    let dir = contrib().join("docker");
    let install = "Debian package docker-compose";
    check(
        &dir,
        "docker-compose",
        &["-f", "compose.yaml", "config", "-q"],
        install,
    );
    let config = check(
        &dir,
        "docker-compose",
        &["-f", "compose.yaml", "config"],
        install,
    );
    for needed in [
        "image: guestlist:local",
        "/var/run/docker.sock:/var/run/docker.sock",
        "guestlist-state:/var/lib/guestlist",
        "127.0.0.1",
    ] {
        assert!(config.contains(needed), "{needed} missing from\n{config}");
    }
}

#[test]
fn a_read_only_state_such_as_a_config_map_works_with_a_run_dir() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    sb.run("intruder", &["--init"], &[]);
    // Like a ConfigMap volume: a world-writable directory, mounted read-only.
    let config = sb.dir().join("config");
    std::fs::create_dir(&config).expect("config directory");
    std::fs::copy(sb.state_path(), config.join("state.json")).expect("copy the state");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let args = [
        "--state",
        "/etc/guestlist/state.json",
        "--run-dir",
        "/data/run",
        "enforce",
        "--stop-timeout",
        "0",
    ];

    let writable = format!("{}:/etc/guestlist", config.display());
    let (code, logs) = sb.guestlist_in_container(&["-v", &writable], "rw", &args);
    assert_eq!(code, "2", "{logs}");
    assert!(
        logs.contains("refusing state directory /etc/guestlist"),
        "{logs}"
    );

    let read_only = format!("{}:/etc/guestlist:ro", config.display());
    let (code, logs) = sb.guestlist_in_container(&["-v", &read_only], "ro", &args);
    assert_eq!(code, "0", "{logs}");
    assert!(!sb.exists("intruder"), "{logs}");
    assert!(sb.dir().join("run").join("state.lock").exists());
}

/// The Python checkers .ci/provision installs into target/ci-tools.
fn ci_tool(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/ci-tools/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run .ci/provision (it installs {name} from PyPI)",
        path.display()
    );
    path.display().to_string()
}

#[test]
fn the_daemonset_lints_validates_against_kubernetes_and_carries_a_valid_state() {
    let dir = contrib().join("kubernetes");
    let install = "from PyPI";
    check(
        &dir,
        &ci_tool("yamllint"),
        &["--strict", "daemonset.yaml"],
        install,
    );
    let out = check(
        &dir,
        &ci_tool("kubernetes-validate"),
        &["--strict", "daemonset.yaml"],
        install,
    );
    for kind in [
        "namespace/guestlist",
        "configmap/guestlist-state",
        "daemonset/guestlist",
    ] {
        assert!(
            out.contains(&format!("passed for resource {kind}")),
            "{out}"
        );
    }

    // The ConfigMap's state is one guestlist reads.
    let text = std::fs::read_to_string(dir.join("daemonset.yaml")).expect("manifest");
    let state: String = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("state.json: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let sb = Sandbox::new();
    let path = sb.dir().join("state.json");
    std::fs::write(&path, state).expect("write");
    let path = path.display().to_string();
    let out = sb.expect(&["--state", &path, "list"], 0);
    assert!(out.contains("scope: label=guestlist.managed=true"), "{out}");
}

#[test]
fn the_image_works_as_the_daemonset_runs_it() {
    use std::os::unix::fs::PermissionsExt;
    let image = container_image();
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    // The ConfigMap (a 1777 directory mounted read-only) and the node's run directory.
    let config = sb.dir().join("config");
    std::fs::create_dir(&config).expect("config directory");
    std::fs::copy(sb.state_path(), config.join("state.json")).expect("copy the state");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let run = sb.dir().join("run");
    std::fs::create_dir(&run).expect("run directory");

    let guard = sb.name("guard");
    let label = format!("{}={}", crate::util::LABEL, sb.prefix);
    let socket = format!("{}:/var/run/docker.sock", crate::util::engine_socket());
    let config = format!("{}:/etc/guestlist:ro", config.display());
    let run_dir = format!("{}:/var/lib/guestlist", run.display());
    docker(&[
        "run",
        "-d",
        "--name",
        &guard,
        "--label",
        &label,
        // The DaemonSet's securityContext.
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        &socket,
        "-v",
        &config,
        "-v",
        &run_dir,
        "-e",
        "GUESTLIST_STATE=/etc/guestlist/state.json",
        "-e",
        "GUESTLIST_RUN_DIR=/var/lib/guestlist",
        "-e",
        "GUESTLIST_AUDIT_LOG=/var/lib/guestlist/audit.jsonl",
        image,
        "watch",
        "--stop-timeout",
        "0",
    ]);
    let logs = || {
        let out = crate::util::docker_output(&["logs", &guard]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let within = std::time::Duration::from_secs(30);
    crate::util::watch::eventually(within, "the first pass", || logs().contains("full pass"));
    sb.run("intruder", &["--init"], &[]);
    crate::util::watch::eventually(within, "the extra is removed", || !sb.exists("intruder"));
    assert!(run.join("audit.jsonl").exists(), "{}", logs());
    assert!(run.join("state.lock").exists(), "{}", logs());
    assert_eq!(sb.inspect("guard")["State"]["Running"], true, "{}", logs());
}

#[test]
fn the_ansible_playbook_passes_its_syntax_check_and_ships_a_valid_list() {
    let dir = contrib().join("ansible");
    check(
        &dir,
        &ci_tool("yamllint"),
        &["--strict", "guestlist.yml"],
        "from PyPI",
    );
    let out = check(
        &dir,
        &ci_tool("ansible-playbook"),
        &["--syntax-check", "-i", "localhost,", "guestlist.yml"],
        "ansible-core from PyPI",
    );
    assert!(out.contains("playbook: guestlist.yml"), "{out}");
    // What the playbook installs: the binary it expects, the units, and a list per role.
    let playbook = std::fs::read_to_string(dir.join("guestlist.yml")).expect("playbook");
    for unit in [
        "guestlist-enforce.service",
        "guestlist-enforce.timer",
        "guestlist-watch.service",
    ] {
        assert!(playbook.contains(unit), "{unit}");
        assert!(contrib().join("systemd").join(unit).exists(), "{unit}");
    }
    let sb = Sandbox::new();
    let state = dir.join("states").join("default.json");
    let copy = sb.dir().join("state.json");
    std::fs::copy(&state, &copy).expect("copy");
    // The command the playbook validates with, as it runs it (`%s` is the file to install).
    let validate = playbook
        .lines()
        .find_map(|l| l.trim().strip_prefix("validate: /usr/local/bin/guestlist "))
        .expect("the playbook validates the list with guestlist");
    let copy = copy.to_str().expect("path");
    let args: Vec<&str> = validate
        .split_whitespace()
        .map(|a| if a == "%s" { copy } else { a })
        .collect();
    assert_eq!(args[0], "check", "{validate}");
    sb.expect(&args, 0);
    // And it refuses a list with a typo, so that Ansible keeps the old one.
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(copy).expect("state")).expect("JSON");
    state["containers"] = serde_json::json!([{"name": "web", "spec": {
        "image": "nginx:1", "image_id": "sha256:1", "host_config": {"Memroy": 1}}}]);
    std::fs::write(copy, state.to_string()).expect("write");
    let (code, _, stderr) = sb.gl(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `Memory`?"), "{stderr}");
}

#[test]
fn the_image_carries_trusted_roots_and_notifies_over_https_by_host_name() {
    let image = container_image();
    let sb = Sandbox::new();
    let label = format!("{}={}", crate::util::LABEL, sb.prefix);
    // The build host's bundle is in the image, where the system's roots are looked for.
    let made = docker(&["create", "--label", &label, image]);
    let copied = crate::util::docker_output(&[
        "cp",
        &format!("{made}:/etc/ssl/certs/ca-certificates.crt"),
        "-",
    ]);
    assert!(copied.status.success(), "{copied:?}");
    assert!(
        String::from_utf8_lossy(&copied.stdout).contains("-----BEGIN CERTIFICATE-----"),
        "no certificates in the image's bundle"
    );
    docker(&["rm", &made]);

    // A receiver the image trusts only through the bundle at that path, reached by a name
    // that only the container's /etc/hosts knows: the static binary resolves it itself.
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    sb.run("intruder", &[], &[]);
    let ca = sb.dir().join("ca.pem");
    let receiver = Receiver::start_tls(Answer::Take, &ca, "receiver.test");
    let socket = format!("{}:/var/run/docker.sock", crate::util::engine_socket());
    let state = format!(
        "{}:/var/lib/guestlist",
        sb.state_path().parent().expect("state dir").display()
    );
    let roots = format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", ca.display());
    let url = receiver.url();
    let out = crate::util::docker_output(&[
        "run",
        "--rm",
        "--label",
        &label,
        "--network",
        "host",
        "--add-host",
        "receiver.test:127.0.0.1",
        "-v",
        &socket,
        "-v",
        &state,
        "-v",
        &roots,
        image,
        "enforce",
        "--stop-timeout",
        "0",
        "--notify",
        &url,
    ]);
    let logs =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{logs}");
    let text = bodies[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("{} removed", sb.name("intruder"))),
        "{text}"
    );
}
