//! Another orchestrator's containers are its own: a swarm's tasks are never recorded, started,
//! removed or replaced, through a rolling update under `enforce` and under `watch` (on a
//! single-node swarm of the test's own engine, never the shared one); and a compose redeploy
//! is told as a deploy, with how to accept it. See: issue 13.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::engine::OwnEngine;
use crate::util::watch::Watcher;
use crate::util::{podman, Sandbox, LABEL};

const WITHIN: Duration = Duration::from_secs(60);

/// The service's task containers as `(name, state)`, sorted.
fn tasks(engine: &OwnEngine) -> Vec<(String, String)> {
    let listed = engine.docker(&[
        "ps",
        "-a",
        "--filter",
        "label=com.docker.swarm.service.name=web",
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    let mut tasks: Vec<(String, String)> = listed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    tasks.sort();
    tasks
}

fn running(tasks: &[(String, String)]) -> usize {
    tasks.iter().filter(|(_, s)| s == "running").count()
}

/// A rolling restart, as any deploy does; returns once swarm says the service converged.
fn rolling_update(engine: &OwnEngine) {
    engine.docker(&[
        "service",
        "update",
        "--force",
        "--no-resolve-image",
        "--quiet",
        "web",
    ]);
    let deadline = Instant::now() + WITHIN;
    while running(&tasks(engine)) != 2 {
        assert!(Instant::now() < deadline, "the service did not converge");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_swarm_rolling_update_is_left_to_swarm_by_enforce_and_by_watch() {
    let engine = OwnEngine::start();
    engine.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    engine.import_image("swarm-test:1");
    // It stops at once on SIGTERM, so that a rolling update takes seconds.
    engine.docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        // The test image's healthcheck runs every 300 s: swarm would wait that long for a
        // task to count as running.
        "--no-healthcheck",
        "--name",
        "web",
        "--replicas",
        "2",
        "swarm-test:1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 1; done",
    ]);
    let deadline = Instant::now() + WITHIN;
    while running(&tasks(&engine)) != 2 {
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    // An ordinary container beside it, which guestlist does manage.
    engine.docker(&["run", "-d", "--name", "plain", "swarm-test:1"]);

    let sb = Sandbox::new();
    let host = engine.url();
    // Unscoped, as an operator would first try it.
    let out = sb.expect(&["--host", &host, "snapshot"], 0);
    assert!(
        out.contains("left out 2 containers managed by swarm"),
        "{out}"
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(sb.state_path()).expect("state")).expect("JSON");
    let recorded: Vec<&str> = state["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(recorded, ["plain"]);

    rolling_update(&engine);
    let before = tasks(&engine);
    assert_eq!(before.len(), 4, "{before:?}");
    let diff = sb.expect(&["--host", &host, "diff"], 0);
    assert!(diff.contains("managed by swarm: 4"), "{diff}");
    let out = sb.expect(&["--host", &host, "enforce"], 0);
    assert!(out.contains("\nin sync: 1 allowed"), "{out}");
    assert_eq!(tasks(&engine), before, "enforce acted on swarm's tasks");

    // And under watch, through another rolling update.
    let mut command = sb.watch_command(&["--host", &host]);
    command.env_remove("DOCKER_HOST");
    let watch = Watcher::spawn(command);
    watch.wait_for_log("full pass", WITHIN);
    rolling_update(&engine);
    // Let every event of the update reach the watch and its passes run.
    std::thread::sleep(Duration::from_secs(2));
    let after = tasks(&engine);
    assert_eq!(running(&after), 2, "{after:?}\n{}", watch.log());
    let log = watch.log();
    let acted: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(" web.") && [" + ", " - ", " > ", " ~ "].iter().any(|m| l.contains(m))
        })
        .collect();
    assert!(acted.is_empty(), "watch acted on swarm's tasks:\n{log}");
    sb.expect(&["--host", &host, "diff"], 0);
    assert_eq!(
        engine.docker(&["inspect", "-f", "{{.State.Running}}", "plain"]),
        "true"
    );
}

#[test]
fn a_compose_redeploy_is_told_as_a_deploy_with_how_to_keep_it() {
    let sb = Sandbox::new();
    let image = crate::util::image::test_image();
    let limits = match podman() {
        true => "\n    ulimits: {nofile: 20000, nproc: 20000}",
        false => "",
    };
    let file = sb.dir().join("compose.yaml");
    let write = |mode: &str| {
        let text = format!(
            "version: \"2.4\"\nservices:\n  app:\n    image: {image}\n    labels:\n      \
             {LABEL}: {prefix}\n    environment:\n      MODE: {mode}{limits}\n",
            prefix = sb.prefix
        );
        std::fs::write(&file, text).expect("compose file");
    };
    let up = || {
        let out = crate::util::compose()
            .args(["-p", &sb.prefix, "-f"])
            .arg(&file)
            .args(["up", "-d"])
            .output()
            .expect("docker-compose (Debian package docker-compose; .ci/provision installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    write("one");
    up();
    sb.snapshot(&[]);
    sb.expect(&["diff"], 0);
    let name = crate::util::compose_container(&sb.prefix, "app");

    // The deploy: compose recreates the container with another configuration.
    write("two");
    up();
    let out = sb.expect(&["diff"], 1);
    assert!(
        out.contains(&format!("~ {name}  redeployed by compose")),
        "{out}"
    );
    assert!(
        out.contains(&format!("to keep it: guestlist snapshot {name}")),
        "{out}"
    );
    assert!(out.contains("config.Env: MODE changed"), "{out}");
    assert!(!out.contains("MODE=two") && !out.contains("two"), "{out}");
    let json: Value =
        serde_json::from_str(&sb.expect(&["diff", "--format", "json"], 1)).expect("json");
    assert_eq!(json["changed"][0]["redeployed_by"], json!("compose"));
    assert_eq!(
        json["changed"][0]["accept_with"],
        json!(format!("guestlist snapshot {name}"))
    );

    sb.expect(&["snapshot", &name], 0);
    sb.expect(&["diff"], 0);
}
