//! `guestlist guard`: the socket proxy in front of the engine under test, and the authorization
//! plugin on a dockerd of the test's own. Every request goes through the real docker CLI (or
//! curl, for what the CLI never sends) and the real engine. See: issue 16.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::engine::OwnEngine;
use crate::util::watch::{eventually, Watcher};
use crate::util::{self, docker, docker_output, engine_options, image, Sandbox, LABEL};

/// `guestlist guard ARGS` for `sb`, against `host` (the engine under test when `None`); it ends
/// when dropped.
pub(crate) fn guard(sb: &Sandbox, host: Option<&str>, args: &[&str]) -> Watcher {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("guestlist"));
    command
        .env("XDG_DATA_HOME", sb.dir())
        .env_remove("GUESTLIST_STATE")
        .arg("guard")
        .args(args);
    if let Some(host) = host {
        command.env("DOCKER_HOST", host);
    }
    let ready = match args.contains(&"--plugin") {
        true => "serving authorization plugin",
        false => "guarding",
    };
    Watcher::spawn_until(command, ready)
}

/// A proxy guard for `sb` at a socket in its directory; returns it and its URL.
pub(crate) fn proxy(sb: &Sandbox, extra: &[&str]) -> (Watcher, String) {
    let url = format!("unix://{}", sb.dir().join("guard.sock").display());
    let mut args = vec!["--listen", url.as_str()];
    args.extend_from_slice(extra);
    (guard(sb, None, &args), url)
}

/// The docker CLI against `host`, with `stdin` piped in when given.
pub(crate) fn through(host: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(args)
        .stdin(match stdin {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the docker CLI");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for the docker CLI")
}

pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Assert the command succeeded; returns its stdout.
pub(crate) fn succeeds(out: Output, what: &str) -> String {
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{what} failed: {stderr}");
    stdout
}

/// Assert the command failed with `needle` in its error; returns the error.
pub(crate) fn refused(out: Output, needle: &str, what: &str) -> String {
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{what} went through: {stdout}");
    assert!(
        stderr.contains(needle),
        "{what}: expected {needle:?} in: {stderr}"
    );
    stderr
}

/// `docker run -d` arguments for a container `name` with `labels`, from the shared test image.
pub(crate) fn run_args(name: &str, labels: &[String], command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["run", "-d", "--name", name].map(String::from).to_vec();
    for label in labels {
        args.extend(["--label".to_string(), label.clone()]);
    }
    args.extend(engine_options(&[]).into_iter().map(String::from));
    args.push(image::test_image());
    args.extend(command.iter().map(|c| c.to_string()));
    args
}

pub(crate) fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A docker CLI command whose output stays open (events, logs -f, stats), read line by line
/// as it comes; killed when dropped.
struct Stream {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Stream {
    fn open(host: &str, args: &[&str]) -> Stream {
        let mut child = Command::new("docker")
            .env("DOCKER_HOST", host)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the docker CLI");
        let stdout = child.stdout.take().expect("piped");
        let (seen, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = seen.send(line);
            }
        });
        Stream { child, lines }
    }

    /// Wait up to 20 s for a line containing `needle`.
    fn wait_for(&self, needle: &str, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.contains(needle)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("{what}: no {needle:?} through the proxy; saw {seen:?}"),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A container outside every sandbox's scope, removed when dropped.
struct Outside(String);

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.0]);
    }
}

fn requests_in(sb: &Sandbox) -> Vec<Value> {
    sb.audit_log()
        .into_iter()
        .filter(|r| r["action"] == "request")
        .collect()
}

#[test]
fn through_the_proxy_a_listed_container_stays_and_an_extra_never_runs() {
    let sb = Sandbox::new();
    let id = sb.run("web", &[], &["sleep", "600"]);
    let allow = format!("name={}-ok-*", sb.prefix);
    sb.snapshot(&["--allow", &allow]);
    let metrics = util::free_address();
    let (guard, host) = proxy(&sb, &["--metrics-listen", &metrics]);
    let web = sb.name("web");
    let moved = sb.name("moved");
    for (operation, args) in [
        ("remove", vec!["rm", "-f", &web]),
        ("stop", vec!["stop", &web]),
        ("kill", vec!["kill", &web]),
        ("pause", vec!["pause", &web]),
        ("rename", vec!["rename", &web, &moved]),
        ("update", vec!["update", "--cpu-shares", "512", &web]),
    ] {
        let needle = format!("guestlist: refusing to {operation} container {web}: it is on this host's list (in sync); `guestlist forget {web}` first, or stop the guard");
        refused(through(&host, &args, None), &needle, &args.join(" "));
    }
    let live = sb.inspect("web");
    assert_eq!(live["Id"], id.as_str(), "the same container");
    assert_eq!(live["State"]["Status"], "running");
    assert_eq!(live["Name"], format!("/{web}"));
    assert_eq!(live["HostConfig"]["CpuShares"], 0, "not updated");

    let scope_label = format!("{LABEL}={}", sb.prefix);
    let extra = sb.name("extra");
    let args = run_args(
        &extra,
        std::slice::from_ref(&scope_label),
        &["sleep", "600"],
    );
    let needle = format!(
        "guestlist: container {extra} (image {}) is not on this host's list",
        image::test_image()
    );
    refused(
        through(&host, &strs(&args), None),
        &needle,
        "an extra's run",
    );
    assert!(!sb.exists("extra"), "no container was created");

    // An allow rule's container and one outside the scope come and go.
    let ok = sb.name("ok-1");
    let args = run_args(&ok, &[scope_label], &["sleep", "600"]);
    succeeds(through(&host, &strs(&args), None), "an allowed run");
    succeeds(
        through(&host, &["rm", "-f", &ok], None),
        "an allowed removal",
    );
    let outside = Outside(format!("{}-outside", sb.prefix));
    let args = run_args(
        &outside.0,
        &[format!("{LABEL}={}-outside", sb.prefix)],
        &["sleep", "600"],
    );
    succeeds(
        through(&host, &strs(&args), None),
        "a run outside the scope",
    );
    succeeds(
        through(&host, &["stop", "-t", "0", &outside.0], None),
        "a stop outside the scope",
    );
    succeeds(
        through(&host, &["rm", "-f", &outside.0], None),
        "a removal outside the scope",
    );

    // Logged, audited with the request and the client, counted.
    guard.wait_for_log("refused DELETE /v", Duration::from_secs(5));
    let records = requests_in(&sb);
    assert_eq!(records.len(), 7, "{records:#?}");
    let removal = &records[0];
    assert_eq!(removal["result"], "refused");
    assert_eq!(removal["container"], web.as_str());
    assert_eq!(removal["request"]["method"], "DELETE");
    let path = removal["request"]["path"].as_str().unwrap();
    assert!(
        path.ends_with(&format!("/containers/{web}?force=1")),
        "{path}"
    );
    assert!(removal["request"]["uid"].is_u64(), "{removal}");
    assert!(removal["request"]["pid"].is_i64(), "{removal}");
    assert_eq!(records[6]["container"], extra.as_str());
    let (_, scraped) = util::http_get(&metrics, "/metrics");
    for operation in [
        "remove", "stop", "kill", "pause", "rename", "update", "create",
    ] {
        let series = format!("guestlist_refused_total{{operation=\"{operation}\"}} 1");
        assert!(scraped.contains(&series), "{series} in:\n{scraped}");
    }
    assert!(scraped.contains("guestlist_refused_total{operation=\"prune\"} 0"));
}

#[test]
fn exec_logs_attach_events_ps_and_compose_work_through_the_proxy() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sh", "-c", "echo started; sleep 600"]);
    let project = format!("{}c", sb.prefix);
    let rules = [
        format!("name={}-ok-*", sb.prefix),
        format!("label=com.docker.compose.project={project}"),
    ];
    sb.snapshot(&["--allow", &rules[0], "--allow", &rules[1]]);
    let (_guard, host) = proxy(&sb, &[]);
    let web = sb.name("web");
    let filter = format!("label={LABEL}={}", sb.prefix);

    let listed = succeeds(
        through(
            &host,
            &["ps", "--filter", &filter, "--format", "{{.Names}}"],
            None,
        ),
        "ps",
    );
    assert_eq!(listed, web);
    let said = succeeds(
        through(&host, &["exec", &web, "echo", "exec ok"], None),
        "exec",
    );
    assert_eq!(said, "exec ok");
    let echoed = succeeds(
        through(&host, &["exec", "-i", &web, "cat"], Some("through stdin\n")),
        "exec -i",
    );
    assert_eq!(
        echoed, "through stdin",
        "stdin in, stdout out, and the end of stdin"
    );
    let logs = succeeds(through(&host, &["logs", &web], None), "logs");
    assert_eq!(logs, "started");
    if util::podman() {
        // podman-remote's exec reads its output raw from a hijacked connection, not upgraded.
        let out = Command::new("podman")
            .args(["--url", &host, "exec", &web, "echo", "podman exec ok"])
            .output()
            .expect("podman");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "podman exec ok",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `run -i` attaches before it starts: a hijacked stream both ways.
    let mut args = run_args(
        &sb.name("ok-attached"),
        &[format!("{LABEL}={}", sb.prefix)],
        &["cat"],
    );
    args[1] = "-i".into();
    args.insert(2, "--rm".into());
    let attached = succeeds(through(&host, &strs(&args), Some("attached\n")), "run -i");
    assert_eq!(attached, "attached");

    // Streams that stay open: what they carry arrives as it happens, before any end.
    let logs = Stream::open(&host, &["logs", "-f", &web]);
    logs.wait_for("started", "logs -f");
    let stats = Stream::open(&host, &["stats", "--format", "{{.Name}}", &web]);
    // Podman's stats name the container without the leading `/` the CLI strips: it shows
    // the name less its first letter.
    stats.wait_for(&web[1..], "stats");
    let events = Stream::open(
        &host,
        &[
            "events",
            "--filter",
            &format!("container={web}"),
            "--format",
            "{{.Action}}",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    succeeds(
        through(&host, &["restart", "-t", "0", &web], None),
        "restart",
    );
    events.wait_for("restart", "events");
    drop((logs, stats, events));
    // A request body of unknown length goes chunked: an image imported from stdin.
    let tag = format!("{}-through:1", sb.prefix);
    image::import_via(&host, &tag, &[&format!("LABEL {LABEL}={}", sb.prefix)]);
    assert!(
        docker_output(&["image", "inspect", &tag]).status.success(),
        "imported"
    );

    let file = sb.dir().join("compose.yaml");
    let limits = match util::podman() {
        true => "\n    ulimits: {nofile: 20000, nproc: 20000}",
        false => "",
    };
    std::fs::write(
        &file,
        format!(
            "version: '2.4'\nservices:\n  app:\n    image: {}\n    command: sleep 600\n    \
             labels:\n      {LABEL}: {}{limits}\n",
            image::test_image(),
            sb.prefix
        ),
    )
    .expect("compose file");
    let compose = |args: &[&str]| {
        let out = util::compose()
            .env("DOCKER_HOST", &host)
            .arg("-p")
            .arg(&project)
            .arg("-f")
            .arg(&file)
            .args(args)
            .output()
            .expect("run compose");
        succeeds(out, &format!("compose {}", args.join(" ")))
    };
    compose(&["up", "-d"]);
    let app = util::compose_container(&project, "app");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &app]),
        "true"
    );
    compose(&["down", "-t", "0"]);
    assert!(!docker_output(&["inspect", &app]).status.success());
}

#[test]
fn enforce_through_the_proxy_recreates_and_replaces_what_it_must() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sleep", "600"]);
    sb.run("db", &[], &["sleep", "600"]);
    // A sharer of db's network namespace, replaced with it (Podman keeps db while it has one,
    // so it is left out there).
    let shares = format!("container:{}", sb.name("db"));
    let sharer =
        (!util::podman()).then(|| sb.run("app", &["--network", &shares], &["sleep", "600"]));
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("db")]);
    docker(&["rm", "-f", &sb.name("web")]);
    let drifted = sb.run("web", &["-e", "DRIFT=1"], &["sleep", "600"]);
    let (guard, host) = proxy(&sb, &[]);
    sb.expect(&["--host", &host, "enforce", "--stop-timeout", "0"], 0);
    assert!(sb.exists("db"), "recreated");
    if let Some(old) = sharer {
        assert_ne!(sb.id("app"), old, "the sharer is replaced along with db");
    }
    assert_ne!(sb.id("web"), drifted, "replaced");
    let env = sb.inspect("web")["Config"]["Env"].to_string();
    assert!(!env.contains("DRIFT"), "{env}");
    assert!(
        requests_in(&sb).is_empty(),
        "nothing refused: {:#?}",
        requests_in(&sb)
    );
    assert!(!guard.log().contains("refused"), "{}", guard.log());
    // And once in sync, the same list protects what enforce brought back.
    let web = sb.name("web");
    refused(
        through(&host, &["rm", "-f", &web], None),
        "on this host's list",
        "rm -f",
    );
}

#[test]
fn a_dry_run_guard_refuses_nothing_and_says_what_it_would_have_refused() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&[]);
    let (guard, host) = proxy(&sb, &["--dry-run"]);
    let web = sb.name("web");
    succeeds(
        through(&host, &["rm", "-f", &web], None),
        "rm -f under --dry-run",
    );
    assert!(!sb.exists("web"));
    let line = guard.wait_for_log("would refuse DELETE", Duration::from_secs(5));
    assert!(
        line.contains(&format!("refusing to remove container {web}")),
        "{line}"
    );
    let records = requests_in(&sb);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["result"], "would_refuse");
}

#[test]
fn the_guard_reads_the_list_again_and_keeps_the_last_good_one() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sleep", "600"]);
    sb.run("db", &[], &["sleep", "600"]);
    sb.snapshot(&[]);
    let (guard, host) = proxy(&sb, &[]);
    let (web, db) = (sb.name("web"), sb.name("db"));
    let good = std::fs::read(sb.state_path()).expect("state");
    std::fs::write(sb.state_path(), "{ not a list").expect("break the state file");
    refused(
        through(&host, &["rm", "-f", &db], None),
        "on this host's list",
        "rm -f with a broken file",
    );
    guard.wait_for_log(
        "does not load, so the last good list stays in force",
        Duration::from_secs(5),
    );
    std::fs::write(sb.state_path(), good).expect("mend the state file");
    sb.expect(&["forget", &db], 0);
    succeeds(
        through(&host, &["rm", "-f", &db], None),
        "rm -f of a forgotten container",
    );
    guard.wait_for_log(
        "the list changed: 1 allowed containers",
        Duration::from_secs(5),
    );
    refused(
        through(&host, &["rm", "-f", &web], None),
        "on this host's list",
        "rm -f of web",
    );
    assert_eq!(
        guard.log().matches("does not load").count(),
        1,
        "warned once"
    );
}

#[test]
fn the_guard_does_not_start_without_a_list() {
    let sb = Sandbox::new();
    let url = format!("unix://{}", sb.dir().join("guard.sock").display());
    let (code, _, stderr) = sb.gl(&["guard", "--listen", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no state file at"), "{stderr}");
    assert!(
        stderr.contains("hint: run `guestlist snapshot`"),
        "{stderr}"
    );
    assert!(!sb.dir().join("guard.sock").exists());
    // A list that does not load says what to do about that instead.
    std::fs::create_dir_all(sb.state_path().parent().unwrap()).expect("state directory");
    std::fs::write(sb.state_path(), "{ not a list").expect("a broken state file");
    let (code, _, stderr) = sb.gl(&["guard", "--listen", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("hint: fix the file by hand"), "{stderr}");
}

/// A plugin spec file that dockerd finds the guard by, removed when dropped.
pub(crate) struct Spec(std::path::PathBuf);

impl Spec {
    pub(crate) fn write(name: &str, socket: &Path) -> Spec {
        let dir = Path::new("/etc/docker/plugins");
        std::fs::create_dir_all(dir).expect("the plugin spec directory");
        let path = dir.join(format!("{name}.spec"));
        std::fs::write(&path, format!("unix://{}\n", socket.display())).expect("the spec");
        Spec(path)
    }
}

impl Drop for Spec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// curl against `engine`'s own socket; returns (HTTP status, body).
pub(crate) fn curl(
    engine: &OwnEngine,
    method: &str,
    path: &str,
    body: Option<&Path>,
) -> (String, String) {
    let socket = engine.socket();
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--unix-socket".into(),
        socket.display().to_string(),
        "-X".into(),
        method.into(),
        format!("http://engine{path}"),
    ];
    if let Some(file) = body {
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "--data-binary".into(),
            format!("@{}", file.display()),
        ]);
    }
    let out = Command::new("curl")
        .args(&args)
        .output()
        .expect("curl (.ci/provision installs it)");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = all.rsplit_once('\n').unwrap_or(("", &all));
    (status.to_string(), body.to_string())
}

#[test]
fn plugin_refuses_by_name_id_and_prefix_answers_concurrently_and_a_restart_restores_it() {
    let sb = Sandbox::new();
    let engine = OwnEngine::start();
    let tag = format!("{}-img:1", sb.prefix);
    engine.import_image(&tag);
    let label = format!("{LABEL}={}", sb.prefix);
    let (web, ok) = (sb.name("web"), sb.name("ok-1"));
    engine.docker(&[
        "run", "-d", "--name", &web, "--label", &label, &tag, "sleep", "600",
    ]);
    let scope = sb.scope();
    let allow = format!("name={}-ok-*", sb.prefix);
    let snapshot = [
        "--host",
        &engine.url(),
        "snapshot",
        "--scope",
        &scope,
        "--allow",
        &allow,
    ];
    sb.expect(&snapshot, 0);

    // The plugin first: dockerd does not start without it.
    let name = format!("{}-guard", sb.prefix);
    let socket = sb.dir().join("plugin.sock");
    let socket_arg = socket.display().to_string();
    let plugin_args = ["--plugin", name.as_str(), "--socket", &socket_arg];
    let plugin = guard(&sb, Some(&engine.url()), &plugin_args);
    let _spec = Spec::write(&name, &socket);
    let config = format!(r#"{{"authorization-plugins": ["{name}"]}}"#);
    let engine = OwnEngine::take_over(engine, crate::util::engine::Binaries::Host, &config);
    engine.docker(&["start", &web]);
    let id = engine.docker(&["inspect", "-f", "{{.Id}}", &web]);

    let denied = format!(
        "authorization denied by plugin {name}: guestlist: refusing to remove container {web}"
    );
    for by in [web.as_str(), &id, &id[..12]] {
        refused(
            engine.docker_output(&["rm", "-f", by]),
            &denied,
            &format!("rm -f {by}"),
        );
    }
    let stop = format!("guestlist: refusing to stop container {web}");
    refused(engine.docker_output(&["stop", &web]), &stop, "stop");
    for path in [
        format!("/containers/{}?force=1", &id[..12]),
        format!("/v1.41/containers/{web}?force=true"),
    ] {
        let (status, body) = curl(&engine, "DELETE", &path, None);
        assert_eq!(status, "403", "{path}: {body}");
        assert!(body.contains("refusing to remove container"), "{body}");
    }
    assert_eq!(
        engine.docker(&["inspect", "-f", "{{.State.Status}}", &web]),
        "running"
    );

    let extra = sb.name("extra");
    let needle = format!("guestlist: container {extra} (image {tag}) is not on this host's list");
    refused(
        engine.docker_output(&[
            "run", "-d", "--name", &extra, "--label", &label, &tag, "sleep", "1",
        ]),
        &needle,
        "an extra's run",
    );
    engine.docker(&[
        "run", "-d", "--name", &ok, "--label", &label, &tag, "sleep", "600",
    ]);
    engine.docker(&["rm", "-f", &ok]);
    // A body of 1 MiB or more never reaches the plugin: such a create is refused.
    let big = sb.dir().join("big.json");
    let padding = "x".repeat(1 << 20);
    let body = format!(
        r#"{{"Image":"{tag}","Labels":{{"{LABEL}":"{}","pad":"{padding}"}}}}"#,
        sb.prefix
    );
    std::fs::write(&big, body).expect("a big body");
    let (status, body) = curl(
        &engine,
        "POST",
        &format!("/v1.41/containers/create?name={ok}"),
        Some(&big),
    );
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("passed the plugin no body"), "{body}");
    refused(
        engine.docker_output(&["plugin", "disable", &name]),
        &format!("guestlist: plugin {name} guards this host's list"),
        "plugin disable",
    );

    // Refusals that need the engine's answer, all at once: each one's inspect comes back to
    // the plugin while the others wait.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (url, web) = (engine.url(), web.clone());
            std::thread::spawn(move || {
                let verb = if i % 2 == 0 { "rm" } else { "kill" };
                Command::new("timeout")
                    .args(["60", "docker", "-H", &url, verb, &web])
                    .output()
                    .expect("docker")
            })
        })
        .collect();
    for thread in threads {
        let out = thread.join().expect("a client");
        refused(out, "guestlist: refusing to", "a concurrent refusal");
    }
    assert_eq!(
        plugin.log().matches("refused ").count(),
        // rm -f by name, id and prefix, stop, two DELETEs by curl, the extra, the big body,
        // plugin disable, and the eight at once.
        3 + 1 + 2 + 1 + 1 + 1 + 8,
        "{}",
        plugin.log()
    );

    // Killed, the plugin blocks the engine; started again, the waiting call goes through.
    drop(plugin);
    let mut waiting = Command::new("docker")
        .args([
            "-H",
            &engine.url(),
            "ps",
            "-q",
            "--filter",
            &format!("name={web}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker ps");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        waiting.try_wait().expect("poll").is_none(),
        "the engine answered without its plugin"
    );
    let plugin = guard(&sb, Some(&engine.url()), &plugin_args);
    let out = waiting.wait_with_output().expect("docker ps");
    let listed = succeeds(out, "ps once the plugin is back");
    assert!(id.starts_with(&listed), "{listed}");
    eventually(
        Duration::from_secs(20),
        "the engine answers at once again",
        || engine.docker_output(&["version"]).status.success(),
    );

    // Break glass (README): with the plugin gone for good, dockerd reloads a configuration
    // without it and answers again, with no restart.
    drop(plugin);
    engine.reload("{}");
    let out = Command::new("timeout")
        .args(["10", "docker", "-H", &engine.url(), "rm", "-f", &web])
        .output()
        .expect("docker rm");
    succeeds(out, "rm -f once the plugin is out of the configuration");
}
