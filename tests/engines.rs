//! The engine changes under a list: an upgrade (Docker 26 to 28 on one data root) and a move to
//! the containerd image store. Each on engines of
//! the test's own, never the shared one; they run once, in the suite against the host's engine.
//! See: issue 14.

use crate::util::engine::{Binaries, OwnEngine};
use crate::util::{Sandbox, LABEL};

const IMAGE: &str = "engine-test:1";
const CONTAINERD_STORE: &str = r#"{"features": {"containerd-snapshotter": true}}"#;

/// `docker run -d` on `engine`, in `sb`'s scope.
fn run_on(engine: &OwnEngine, sb: &Sandbox, short: &str, options: &[&str]) -> String {
    let name = sb.name(short);
    let label = format!("{LABEL}={}", sb.prefix);
    let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
    args.extend_from_slice(options);
    args.extend([IMAGE, "sleep", "600"]);
    engine.docker(&args)
}

/// `(name, id, state)` of `sb`'s containers on `engine`, sorted.
fn containers(engine: &OwnEngine, sb: &Sandbox) -> Vec<(String, String, String)> {
    let listed = engine.docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL}={}", sb.prefix),
        "--format",
        "{{.Names}} {{.ID}} {{.State}}",
    ]);
    let mut found: Vec<(String, String, String)> = listed
        .lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            Some((
                words.next()?.to_string(),
                words.next()?.to_string(),
                words.next()?.to_string(),
            ))
        })
        .collect();
    found.sort();
    found
}

/// Lines of a plan that say the container will be changed, created or removed.
fn acting_lines(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter(|l| {
            ["+ ", "- ", "~ ", "! "]
                .iter()
                .any(|m| l.trim_start().starts_with(m))
        })
        .collect()
}

#[test]
fn an_upgrade_from_docker_26_to_28_replaces_nothing_and_starts_what_the_restart_stopped() {
    let sb = Sandbox::new();
    let old = OwnEngine::start_from(Binaries::Trixie, "{}");
    old.import_image(IMAGE);
    let network = sb.name("net");
    old.docker(&["network", "create", "--subnet", "10.233.7.0/24", &network]);
    let volume = sb.name("data");
    old.docker(&["volume", "create", &volume]);
    let on_network = format!("name={network},alias=api,mac-address=02:42:0a:e9:07:09");
    let mount = format!("{volume}:/data");
    run_on(&old, &sb, "plain", &[]);
    run_on(
        &old,
        &sb,
        "always",
        &["--restart", "always", "-p", "127.0.0.1::80", "-v", &mount],
    );
    run_on(
        &old,
        &sb,
        "limited",
        &[
            "--restart",
            "unless-stopped",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "-e",
            "MODE=a",
        ],
    );
    run_on(
        &old,
        &sb,
        "networked",
        &["--network", &on_network, "--ip", "10.233.7.9"],
    );
    run_on(
        &old,
        &sb,
        "bridged",
        &["--mac-address", "02:42:ac:11:00:42", "--hostname", "h"],
    );
    let host = old.url();
    sb.expect(&["--host", &host, "snapshot", "--scope", &sb.scope()], 0);
    sb.expect(&["--host", &host, "diff"], 0);
    let before = containers(&old, &sb);
    assert_eq!(before.len(), 5, "{before:?}");

    let new = OwnEngine::take_over(old, Binaries::Forky, "{}");
    assert!(new
        .docker(&["version", "--format", "{{.Server.Version}}"])
        .starts_with("28."));
    let host = new.url();
    let (code, plan, stderr) = sb.gl(&["--host", &host, "diff"]);
    assert!(code == 0 || code == 1, "{plan}{stderr}");
    assert!(acting_lines(&plan).is_empty(), "after the upgrade: {plan}");
    assert!(plan.contains(" 0 changed"), "{plan}");

    let out = sb.expect(&["--host", &host, "enforce"], 0);
    assert!(acting_lines(&out).is_empty(), "{out}");
    let after = containers(&new, &sb);
    let ids = |list: &[(String, String, String)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, i, _)| (n.clone(), i.clone()))
            .collect()
    };
    assert_eq!(ids(&after), ids(&before), "a container was replaced: {out}");
    assert!(after.iter().all(|(_, _, s)| s == "running"), "{after:?}");
    let mac = new.docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}",
        &sb.name("bridged"),
    ]);
    assert_eq!(mac, "02:42:ac:11:00:42");
    sb.expect(&["--host", &host, "diff"], 0);
}

/// With the containerd image store on, an engine shows none of the containers and images of
/// its classic store: every container is missing and its image is gone. The pass fails, naming
/// each image and what to do, and creates nothing from a guess.
#[test]
fn a_move_to_the_containerd_image_store_fails_naming_the_images_and_creates_nothing() {
    let sb = Sandbox::new();
    let old = OwnEngine::start_from(Binaries::Forky, "{}");
    old.import_image(IMAGE);
    run_on(&old, &sb, "web", &["--restart", "always"]);
    run_on(&old, &sb, "db", &[]);
    sb.expect(
        &["--host", &old.url(), "snapshot", "--scope", &sb.scope()],
        0,
    );

    let new = OwnEngine::take_over(old, Binaries::Forky, CONTAINERD_STORE);
    let host = new.url();
    assert!(new
        .docker(&["info", "--format", "{{.DriverStatus}}"])
        .contains("snapshotter"));
    let plan = sb.expect(&["--host", &host, "diff"], 1);
    for short in ["web", "db"] {
        assert!(plan.contains(&format!("+ {}", sb.name(short))), "{plan}");
    }
    let (code, out, stderr) = sb.gl(&["--host", &host, "enforce"]);
    assert_eq!(code, 1, "{out}{stderr}");
    for short in ["web", "db"] {
        assert!(out.contains(&format!("! {}", sb.name(short))), "{out}");
    }
    assert!(out.contains(&format!("image {IMAGE}")), "{out}");
    assert!(out.contains("is not present and cannot be pulled"), "{out}");
    assert!(out.contains("load it (docker load)"), "{out}");
    assert!(
        containers(&new, &sb).is_empty(),
        "{:?}",
        containers(&new, &sb)
    );
    // Nothing under a temporary name either.
    assert_eq!(new.docker(&["ps", "-aq"]), "");
}
