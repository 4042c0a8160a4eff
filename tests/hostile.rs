//! The guard against a client that tries to walk past it, one test per class of issue 23, on
//! the proxy in front of the engine under test. After every attempt the engine itself says what
//! happened: a listed container keeps its id and runs, no extra exists. See: issue 23.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bodies;
use crate::guard::{proxy, refused, succeeds, through};
use crate::util::engine::{Binaries, OwnEngine};
use crate::util::raw::{self, Answer};
use crate::util::{self, docker, docker_output, engine_socket, image, Sandbox, LABEL};

/// The proxy's socket path from its URL.
fn socket_of(url: &str) -> PathBuf {
    PathBuf::from(url.trim_start_matches("unix://"))
}

/// The engine's own URL, for the CLI.
fn engine() -> String {
    format!("unix://{}", engine_socket())
}

/// Assert the guard did not let `answer` through, and say what it was.
fn not_through(answer: &Answer, what: &str) {
    assert!(
        !answer.ok() && answer.status != 0,
        "{what} went through: {answer:?}"
    );
}

/// The listed container `short` still runs as `id`.
fn still_runs(sb: &Sandbox, short: &str, id: &str, after: &str) {
    assert_eq!(sb.id(short), id, "{short} was replaced after {after}");
    assert_eq!(
        sb.inspect(short)["State"]["Running"],
        true,
        "{short} stopped after {after}"
    );
}

fn no_container(sb: &Sandbox, short: &str, after: &str) {
    assert!(!sb.exists(short), "{short} exists after {after}");
}

#[test]
fn request_targets_are_read_as_the_engine_routes_them() {
    let sb = Sandbox::new();
    let id = sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&[]);
    let (guard, url) = proxy(&sb, &[]);
    let socket = socket_of(&url);
    let web = sb.name("web");
    let prefix = &id[..12];
    let targets = [
        ("DELETE", format!("/containers%2F{web}?force=1")),
        ("DELETE", format!("/v1.41%2Fcontainers%2F{web}?force=1")),
        ("POST", format!("/containers/{web}%2Fstop")),
        ("POST", format!("/v1.41/containers/{prefix}%2Fkill")),
        ("POST", format!("/containers/{web}%2fpause")),
        ("DELETE", format!("http://d/v1.41/containers/{web}?force=1")),
        ("DELETE", format!("HTTP://d/containers/{web}?force=1")),
        ("POST", format!("http://d/containers/{web}/stop")),
        ("DELETE", format!("//containers/{web}?force=1")),
        ("DELETE", format!("/containers/./{web}?force=1")),
        ("DELETE", format!("/v1.41/x/../containers/{web}?force=1")),
        ("delete", format!("/containers/{web}?force=1")),
        ("Post", format!("/containers/{web}/stop")),
        ("DELETE", format!("/v1.23/containers/{web}?force=1")),
        ("POST", format!("/v1.12/containers/{web}/kill")),
        ("POST", format!("/containers/{web}/frobnicate")),
        ("PATCH", format!("/containers/{web}")),
        ("DELETE", format!("/containers/{web}?force=1;v=1")),
        ("POST", format!("/containers/{web}/stop?t=1&all=true")),
    ];
    for (method, target) in &targets {
        let answer = raw::request(&socket, method, target, &[], None);
        not_through(&answer, &format!("{method} {target}"));
        still_runs(&sb, "web", &id, &format!("{method} {target}"));
    }
    // An unknown endpoint is named in the refusal.
    let answer = raw::request(
        &socket,
        "POST",
        &format!("/containers/{web}/frobnicate"),
        &[],
        None,
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer
            .body
            .contains("not an engine endpoint the guard knows"),
        "{answer:?}"
    );
    // Creates however spelled.
    let extra = sb.name("extra");
    let body = format!(
        r#"{{"Image":"{}","Labels":{{"{LABEL}":"{}"}}}}"#,
        image::test_image(),
        sb.prefix
    );
    let json = [("Content-Type", "application/json")];
    for target in [
        format!("/containers%2Fcreate?name={extra}"),
        format!("/v1.41%2Fcontainers%2Fcreate?name={extra}"),
        format!("http://d/v1.41/containers/create?name={extra}"),
        format!("/containers/create?name={extra}#"),
    ] {
        let answer = raw::request(&socket, "POST", &target, &json, Some(body.as_bytes()));
        not_through(&answer, &target);
        no_container(&sb, "extra", &target);
    }
    // Two requests in one write: each is judged.
    let pipelined = format!(
        "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nDELETE /containers/{web}?force=1 HTTP/1.1\r\nHost: \
         d\r\nConnection: close\r\n\r\n"
    );
    let answers = raw::exchange_all(&socket, pipelined.as_bytes());
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[1].status, 403, "{answers:?}");
    still_runs(&sb, "web", &id, "a pipelined removal");
    // What the docker CLI sends still works.
    succeeds(through(&url, &["ps"], None), "ps");
    succeeds(through(&url, &["inspect", &web], None), "inspect");
    assert!(guard.log().contains("refused"), "{}", guard.log());
}

#[test]
fn query_and_form_parameters_decide_nothing_unread() {
    let sb = Sandbox::new();
    let allow = format!("name={}-ok-*", sb.prefix);
    sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&["--allow", &allow]);
    sb.run("ok-1", &[], &["sleep", "600"]);
    let (_guard, url) = proxy(&sb, &[]);
    let socket = socket_of(&url);
    let ok1 = sb.name("ok-1");
    // Renamed to ok-2 it stays tolerated; to `sneaky` it would be an extra. dockerd reads the
    // first of a repeated parameter and only its exact spelling, Podman the last in any case.
    let (ok2, sneaky) = (sb.name("ok-2"), sb.name("sneaky"));
    for target in [
        format!("/containers/{ok1}/rename?name={ok2}&name={sneaky}"),
        format!("/containers/{ok1}/rename?name={sneaky}&name={ok2}"),
        format!("/containers/{ok1}/rename?name={ok2}&NAME={sneaky}"),
        format!("/containers/{ok1}/rename?NAME={sneaky}"),
        format!("/containers/{ok1}/rename?Name={ok2}"),
        format!("/containers/{ok1}/rename?name={ok2};name={sneaky}"),
    ] {
        let answer = raw::request(&socket, "POST", &target, &[], None);
        not_through(&answer, &target);
        assert!(sb.exists("ok-1") && !sb.exists("sneaky"), "{target}");
    }
    // An escaped key is the key itself, to both engines and to the guard.
    let target = format!("/containers/{ok1}/rename?na%6De={sneaky}");
    let answer = raw::request(&socket, "POST", &target, &[], None);
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer.body.contains(&format!("container {sneaky}")),
        "{answer:?}"
    );
    // dockerd reads a form body's fields before the query's.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!("name={sneaky}");
    let target = format!("/containers/{ok1}/rename?name={ok2}");
    let answer = raw::request(&socket, "POST", &target, &form, Some(body.as_bytes()));
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("form body"), "{answer:?}");
    assert!(sb.exists("ok-1") && !sb.exists("sneaky") && !sb.exists("ok-2"));
    // A body where none belongs, chunked.
    let chunked = format!(
        "POST /containers/{ok1}/stop HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    );
    let answers = raw::exchange_all(&socket, chunked.as_bytes());
    assert_eq!(answers.first().map(|a| a.status), Some(403), "{answers:?}");
    // The plain rename still works.
    let target = format!("/containers/{ok1}/rename?name={ok2}");
    let answer = raw::request(&socket, "POST", &target, &[], None);
    assert_eq!(answer.status, 204, "{answer:?}");
}

#[test]
fn create_bodies_are_read_as_the_engine_reads_them_or_refused() {
    let sb = Sandbox::new();
    let rule = format!("label={}=yes", bodies::OK);
    let image_rule = format!("image={}-allowed*", sb.prefix);
    sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&["--allow", &rule, "--allow", &image_rule]);
    let (_guard, url) = proxy(&sb, &[]);
    let (socket, url_of_engine) = (engine_socket(), engine());
    let oracle = bodies::Endpoint {
        socket: Path::new(&socket),
        url: &url_of_engine,
    };
    let image = image::test_image();
    bodies::check_corpus(&sb, &image, oracle, &socket_of(&url), &url_of_engine);
}

#[test]
fn a_decoy_named_like_an_id_prefix_never_takes_a_listed_container_down() {
    let sb = Sandbox::new();
    let id = sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&["--allow", "label=guestlist.test.decoy"]);
    let (_guard, url) = proxy(&sb, &[]);
    let socket = socket_of(&url);
    let label = format!("{LABEL}={}", sb.prefix);
    let engine = engine_socket();
    // A decoy named like a prefix of web's id, removed through the guard by that name while
    // it is removed by its id: once it is gone, the engine reads the name as web's prefix. Each
    // try sweeps twelve guarded removals 0.8 ms apart across the decoy's removal, so that one
    // of them is judged before it and sent on after (on 75f2700 the first try lost web).
    for attempt in 0..200u64 {
        let decoy = id[..8 + (attempt % 5) as usize].to_string();
        let decoy_id = docker(&[
            "create",
            "--name",
            &decoy,
            "--label",
            &label,
            "--label",
            "guestlist.test.decoy=1",
            &image::test_image(),
            "sleep",
            "600",
        ]);
        let answers = sweep(&socket, Path::new(&engine), &decoy, &decoy_id, attempt);
        let _ = docker_output(&["rm", "-f", &decoy_id]);
        let out = docker_output(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &id]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{id} true"),
            "try {attempt}: web is gone after removals of {decoy} through the guard: {answers:?}"
        );
    }
}

/// Twelve removals of `decoy` by name through `guarded`, 0.8 ms apart, and the decoy's removal
/// by its id through `direct` somewhere among them: one of the twelve is judged before the
/// decoy goes and reaches the engine after, when the name reads as an id prefix.
fn sweep(guarded: &Path, direct: &Path, decoy: &str, decoy_id: &str, attempt: u64) -> Vec<Answer> {
    let removals: Vec<_> = (0..12u64)
        .map(|k| {
            let (socket, target) = (
                guarded.to_path_buf(),
                format!("/containers/{decoy}?force=1"),
            );
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(k * 800));
                raw::request(&socket, "DELETE", &target, &[], None)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_micros((attempt * 7919) % 12_000));
    let target = format!("/containers/{decoy_id}?force=1");
    raw::request(direct, "DELETE", &target, &[], None);
    removals.into_iter().filter_map(|t| t.join().ok()).collect()
}

#[test]
fn only_what_enforce_would_create_takes_a_listed_name() {
    let sb = Sandbox::new();
    let allow = format!("name={}-ok-*", sb.prefix);
    let web_id = sb.run("web", &[], &["sleep", "600"]);
    sb.run("db", &[], &["sleep", "600"]);
    sb.snapshot(&["--allow", &allow]);
    let (_guard, url) = proxy(&sb, &[]);
    let (web, db) = (sb.name("web"), sb.name("db"));
    let label = format!("{LABEL}={}", sb.prefix);
    let image = image::test_image();
    // The replacement's name of a container that needs none.
    let temporary = format!("{web}-guestlist-new");
    let mut args = vec!["create", "--name", &temporary, "--label", &label];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    refused(
        through(&url, &args, None),
        "needs none",
        "create NAME-guestlist-new",
    );
    // A network change of a container in sync is a change.
    let network = sb.network("net", &[]);
    refused(
        through(&url, &["network", "connect", &network, &web], None),
        "refusing to connect a network to container",
        "network connect",
    );
    let default = match util::podman() {
        true => "podman",
        false => "bridge",
    };
    refused(
        through(&url, &["network", "disconnect", default, &web], None),
        "refusing to disconnect a network from container",
        "network disconnect",
    );
    still_runs(&sb, "web", &web_id, "network changes");
    // db is gone (removed on the engine's own socket): its name takes only its record.
    docker(&["rm", "-f", &db]);
    let host_root = "/:/host";
    let mut args = vec![
        "run", "-d", "--name", &db, "--label", &label, "-v", host_root,
    ];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    refused(
        through(&url, &args, None),
        "differs from the record",
        "run db with the host's root",
    );
    no_container(
        &sb,
        "db",
        "a create under its name with another configuration",
    );
    let outside = format!("{}-outside", sb.prefix);
    let mut args = vec!["run", "-d", "--name", &db];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    refused(
        through(&url, &args, None),
        "outside the scope",
        "run db without the scope's label",
    );
    // Renamed onto db: a container outside the scope, or a tolerated one of another config.
    let mut args = vec!["run", "-d", "--name", &outside];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    let out = docker_output(&args);
    assert!(out.status.success(), "{out:?}");
    let _outside = Removed(outside.clone());
    refused(
        through(&url, &["rename", &outside, &db], None),
        "outside the scope",
        "rename an out-of-scope container onto db",
    );
    sb.run("ok-1", &["-e", "OTHER=1"], &["sleep", "600"]);
    refused(
        through(&url, &["rename", &sb.name("ok-1"), &db], None),
        "differs from the record of",
        "rename a tolerated container of another config onto db",
    );
    no_container(&sb, "db", "renames");
    // Exactly its record: enforce's own create, and the same `docker run` by hand.
    let mut args = vec!["run", "-d", "--name", &db, "--label", &label];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    succeeds(through(&url, &args, None), "run db as recorded");
    sb.expect(&["--host", &url, "diff"], 0);
}

#[test]
fn an_extra_is_never_made_to_run() {
    let sb = Sandbox::new();
    let web_id = sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&[]);
    let label = format!("{LABEL}={}", sb.prefix);
    let image = image::test_image();
    // Left behind before the guard ran (a legacy builder's step, say), created, then stopped,
    // then paused.
    let created = sb.name("created");
    let mut args = vec!["create", "--name", &created, "--label", &label];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    docker(&args);
    let exited = sb.run("exited", &[], &["true"]);
    let paused = sb.run("paused", &[], &["sleep", "600"]);
    docker(&["pause", &paused]);
    let (_guard, url) = proxy(&sb, &[]);
    for verb in ["start", "restart"] {
        for name in [&created, &sb.name("exited")] {
            refused(
                through(&url, &[verb, name], None),
                "it is not on this host's list",
                &format!("{verb} {name}"),
            );
        }
    }
    refused(
        through(&url, &["unpause", &sb.name("paused")], None),
        "it is not on this host's list",
        "unpause an extra",
    );
    for (short, status) in [
        ("created", "created"),
        ("exited", "exited"),
        ("paused", "paused"),
    ] {
        assert_eq!(sb.inspect(short)["State"]["Status"], status, "{short}");
    }
    let _ = exited;
    // The listed one still restarts and unpauses.
    succeeds(
        through(&url, &["restart", "-t", "0", &sb.name("web")], None),
        "restart web",
    );
    assert_eq!(sb.id("web"), web_id);
}

#[test]
fn forged_orchestrator_labels_exempt_nothing() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sleep", "600"]);
    sb.snapshot(&[]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.state_path()).expect("state")).expect("JSON");
    assert_eq!(state["orchestrators"], serde_json::json!([]), "{state:#}");
    let (_guard, url) = proxy(&sb, &[]);
    let label = format!("{LABEL}={}", sb.prefix);
    let image = image::test_image();
    for (short, claim) in [
        ("k8s", "io.kubernetes.pod.name=p"),
        ("nomad", "com.hashicorp.nomad.alloc_id=a"),
        ("swarm", "com.docker.swarm.task.id=t"),
    ] {
        let name = sb.name(short);
        let mut args = vec![
            "run", "-d", "--name", &name, "--label", &label, "--label", claim,
        ];
        args.extend(util::engine_options(&[]));
        args.extend([image.as_str(), "sleep", "600"]);
        refused(
            through(&url, &args, None),
            "is not on this host's list",
            &format!("a create claiming {claim}"),
        );
        no_container(&sb, short, claim);
        // Created on the engine's own socket, it is an extra for diff and enforce.
        docker(&args);
    }
    let out = sb.expect(&["diff"], 1);
    for short in ["k8s", "nomad", "swarm"] {
        assert!(out.contains(&format!("- {}", sb.name(short))), "{out}");
    }
    sb.expect(&["enforce", "--stop-timeout", "0"], 0);
    for short in ["k8s", "nomad", "swarm"] {
        no_container(&sb, short, "enforce");
    }
    // Where the list says Kubernetes runs, its labels make a container its own.
    let name = sb.name("k8s");
    let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
    args.extend(["--label", "io.kubernetes.pod.name=p"]);
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    docker(&args);
    let scope = sb.scope();
    sb.expect(
        &[
            "snapshot",
            "--force",
            "--scope",
            &scope,
            "--orchestrator",
            "kubernetes",
        ],
        0,
    );
    sb.expect(&["enforce"], 0);
    assert!(sb.exists("k8s"), "left to Kubernetes");
    // A list from before claims were checked believes them, and says so.
    sb.edit_state(|state| {
        state
            .as_object_mut()
            .expect("an object")
            .remove("orchestrators");
    });
    let (code, _, stderr) = sb.gl(&["diff"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("predates orchestrator claims"), "{stderr}");
}

#[test]
fn removals_that_take_containers_along_are_judged_by_them() {
    let sb = Sandbox::new();
    let image = sb.image("own");
    let volume = format!("{}-data", sb.prefix);
    let network = sb.network("net", &[]);
    let label = format!("{LABEL}={}", sb.prefix);
    let mount = format!("{volume}:/data");
    let name = sb.name("web");
    let mut args = vec![
        "run", "-d", "--name", &name, "--label", &label, "-v", &mount,
    ];
    args.extend(["--network", &network]);
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    let id = docker(&args);
    let _volume = RemovedVolume(volume.clone());
    // Recorded stopped, on a network of its own: dockerd removes a network that only stopped
    // containers use, and they cannot start again.
    let quiet = sb.network("quiet", &[]);
    sb.run("stopped", &["--network", &quiet], &["true"]);
    sb.snapshot(&["--all"]);
    let (_guard, url) = proxy(&sb, &[]);
    let socket = socket_of(&url);
    if util::podman() {
        let image_id = docker(&["inspect", "-f", "{{.Image}}", &name]);
        let bare = image_id.trim_start_matches("sha256:").to_string();
        for (method, target) in [
            (
                "DELETE",
                format!("/v4.0.0/libpod/images/{image}?force=true"),
            ),
            ("DELETE", format!("/v4.0.0/libpod/images/{bare}?force=true")),
            ("DELETE", format!("/images/{image}?force=1")),
            (
                "DELETE",
                format!("/v4.0.0/libpod/images/remove?images={image}&force=true"),
            ),
            (
                "DELETE",
                "/v4.0.0/libpod/images/remove?force=true".to_string(),
            ),
            (
                "DELETE",
                "/v4.0.0/libpod/images/remove?all=true&force=true".to_string(),
            ),
            (
                "DELETE",
                format!("/v4.0.0/libpod/volumes/{volume}?force=true"),
            ),
            // Podman takes a unique prefix of a volume's name.
            (
                "DELETE",
                format!(
                    "/v4.0.0/libpod/volumes/{}?force=true",
                    &volume[..volume.len() - 2]
                ),
            ),
            (
                "DELETE",
                format!("/v4.0.0/libpod/networks/{network}?force=true"),
            ),
            ("DELETE", format!("/networks/{network}?force=true")),
            ("POST", "/v4.0.0/libpod/system/prune?all=true".to_string()),
            ("POST", "/v4.0.0/libpod/containers/prune".to_string()),
            (
                "POST",
                format!("/v4.0.0/libpod/containers/{name}/restart?all=true"),
            ),
            (
                "DELETE",
                format!("/v4.0.0/libpod/containers/{name}?depend=true&force=true"),
            ),
            ("POST", "/v4.0.0/libpod/play/kube".to_string()),
            (
                "POST",
                "/v4.0.0/libpod/system/check?repair=true&repair_lossy=true".to_string(),
            ),
        ] {
            let answer = raw::request(&socket, method, &target, &[], None);
            not_through(&answer, &target);
            assert_eq!(answer.status, 403, "{target}: {answer:?}");
            still_runs(&sb, "web", &id, &target);
            assert!(sb.exists("stopped"), "{target}");
        }
        // A pod whose infra container would be an extra.
        let body = format!(
            r#"{{"name":"{}-pod","labels":{{"{LABEL}":"{}"}}}}"#,
            sb.prefix, sb.prefix
        );
        let json = [("Content-Type", "application/json")];
        let answer = raw::request(
            &socket,
            "POST",
            "/v4.0.0/libpod/pods/create",
            &json,
            Some(body.as_bytes()),
        );
        assert_eq!(answer.status, 403, "{answer:?}");
        assert!(answer.body.contains("infra container"), "{answer:?}");
    }
    // On every engine, the CLI's forms.
    refused(
        through(&url, &["container", "prune", "-f"], None),
        "a prune would remove",
        "prune",
    );
    refused(
        through(&url, &["network", "rm", &quiet], None),
        "the record of",
        "network rm of a stopped listed container's network",
    );
    refused(
        through(&url, &["network", "prune", "-f"], None),
        "a prune would remove network",
        "network prune with a stopped listed container's network",
    );
    // What a record names is not made anew under it: a volume bound to the host's root under
    // web's volume's name would be mounted by web, and a network of another kind joined.
    let bound = [
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        "device=/",
        &volume,
    ];
    let out = through(&url, &bound, None);
    assert!(!out.status.success(), "volume create under a recorded name");
    refused(
        through(&url, &["network", "create", "--internal", &quiet], None),
        "the record of",
        "network create under a recorded name",
    );
    // dockerd only untags an image in use, and refuses to remove a volume or network in use.
    for args in [
        vec!["rmi", "-f", image.as_str()],
        vec!["volume", "rm", "-f", volume.as_str()],
        vec!["network", "rm", network.as_str()],
    ] {
        let _ = through(&url, &args, None);
        still_runs(&sb, "web", &id, &args.join(" "));
    }
    assert!(sb.exists("stopped"));
}

#[test]
fn a_client_cannot_make_the_guard_hold_more_than_its_bounds() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sleep", "600"]);
    let rule = format!("label={}=yes", bodies::OK);
    sb.snapshot(&["--allow", &rule]);
    let (_guard, url) = proxy(&sb, &[]);
    let socket = socket_of(&url);
    // A body over the bound is refused without being held.
    let big = format!(
        r#"{{"Image":"x","Labels":{{"pad":"{}"}}}}"#,
        "x".repeat(5 << 20)
    );
    let answer = raw::create(&socket, &sb.name("big"), big.as_bytes());
    assert_eq!(
        answer.status,
        413,
        "{}",
        &answer.body[..answer.body.len().min(200)]
    );
    // Headers that never end: the connection is closed, not kept.
    use std::io::{Read, Write};
    let mut slow = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    slow.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\n")
        .expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut rest = Vec::new();
    let started = std::time::Instant::now();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(55),
        "a client that never finished its headers was kept {:?}",
        started.elapsed()
    );
    // A body that trickles past its deadline is answered and dropped.
    let mut trickle = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    let head = format!(
        "POST /containers/create?name={} HTTP/1.1\r\nHost: d\r\nContent-Type: \
         application/json\r\nContent-Length: 1000\r\n\r\n{{",
        sb.name("slow")
    );
    trickle.write_all(head.as_bytes()).expect("write");
    trickle
        .set_read_timeout(Some(Duration::from_secs(90)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = trickle.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Bodies held at once are bounded: eight clients that declare 4 MiB each and send
    // nothing hold the whole budget; a ninth waits for room until its deadline, then is told.
    let declare = |i: usize| {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
        let head = format!(
            "POST /containers/create?name={} HTTP/1.1\r\nHost: d\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n",
            sb.name(&format!("held-{i}")),
            4 << 20
        );
        stream.write_all(head.as_bytes()).expect("write");
        stream
            .set_read_timeout(Some(Duration::from_secs(90)))
            .expect("timeout");
        stream
    };
    let holders: Vec<_> = (0..8).map(declare).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut ninth = declare(8);
    // Reads pass meanwhile.
    succeeds(through(&url, &["ps"], None), "ps while the budget is held");
    let mut answer = Vec::new();
    let _ = ninth.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many request bodies"), "{answer}");
    drop(holders);
    drop(ninth);
    // Connections past the bound are told so at once, not kept: a flood of them takes neither
    // the guard's file descriptors nor its memory.
    let flood: Vec<_> = (0..1024)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut over = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = over.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("clients are connected"), "{answer}");
    drop(flood);
    // And the guard still answers everyone.
    succeeds(through(&url, &["ps"], None), "ps after the slow clients");
}

/// A container outside every sandbox, removed when dropped.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", &self.0]);
    }
}

struct RemovedVolume(String);

impl Drop for RemovedVolume {
    fn drop(&mut self) {
        let _ = docker_output(&["volume", "rm", "-f", &self.0]);
    }
}

#[test]
fn a_client_that_hangs_up_after_a_create_leaves_nothing_unmeasured() {
    let sb = Sandbox::new();
    sb.run("db", &[], &["sleep", "600"]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("db")]);
    let (guard, url) = proxy(&sb, &[]);
    let socket = socket_of(&url);
    // Under db's name, but not its record: the guard lets the create reach the engine (a
    // listed name) and measures what it made; the client is gone by then.
    let body = format!(
        r#"{{"Image":"{}","Labels":{{"{LABEL}":"{}"}},"Env":["OTHER=1"],"Cmd":["sleep","600"]}}"#,
        image::test_image(),
        sb.prefix
    );
    let request = format!(
        "POST /containers/create?name={} HTTP/1.1\r\nHost: d\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        sb.name("db"),
        body.len()
    );
    // Hung up at once, the request is never sent on; later, the engine may have made it.
    for delay in [0, 20, 50, 100, 200, 400, 800] {
        {
            use std::io::Write;
            let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
            stream.write_all(request.as_bytes()).expect("send");
            std::thread::sleep(Duration::from_millis(delay));
        }
        crate::util::watch::eventually(
            Duration::from_secs(30),
            "no container is left under db's name",
            || {
                std::thread::sleep(Duration::from_millis(500));
                !sb.exists("db")
            },
        );
    }
    assert!(
        guard.log().contains("it was removed again"),
        "no create reached the engine before its client left: {}",
        guard.log()
    );
}

#[test]
fn what_a_start_or_a_create_reaches_besides_its_container_is_judged() {
    let sb = Sandbox::new();
    sb.run("web", &[], &["sleep", "600"]);
    let allow = format!("name={}-ok-*", sb.prefix);
    sb.snapshot(&["--allow", &allow]);
    let (_guard, url) = proxy(&sb, &[]);
    let label = format!("{LABEL}={}", sb.prefix);
    let image = image::test_image();
    // Into web's processes: it could kill them.
    let name = sb.name("ok-pid");
    let pid = format!("container:{}", sb.name("web"));
    let mut args = vec![
        "run", "-d", "--name", &name, "--label", &label, "--pid", &pid,
    ];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    refused(
        through(&url, &args, None),
        "to create a container in its process namespace",
        "run --pid container:web",
    );
    no_container(&sb, "ok-pid", "a create into web's processes");
    // Or into them by the namespace's path (Podman takes `ns:`; dockerd refuses it itself).
    let body = format!(
        r#"{{"Image":"{image}","Labels":{{"{LABEL}":"{}"}},"HostConfig":{{"PidMode":"ns:/proc/1/ns/pid"}}}}"#,
        sb.prefix
    );
    let answer = raw::create(&socket_of(&url), &name, body.as_bytes());
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("by its path"), "{answer:?}");
    if !util::podman() {
        return;
    }
    // Podman starts what a container depends on first: an extra, here.
    let extra = sb.name("extra");
    let mut args = vec!["create", "--name", &extra, "--label", &label];
    args.extend(util::engine_options(&[]));
    args.extend([image.as_str(), "sleep", "600"]);
    docker(&args);
    let body = format!(
        r#"{{"name":"{}","image":"{image}","labels":{{"{LABEL}":"{}"}},"command":["sleep","600"],"dependencyContainers":["{extra}"]}}"#,
        sb.name("ok-dep"),
        sb.prefix
    );
    let json = [("Content-Type", "application/json")];
    let socket = socket_of(&url);
    let answer = raw::request(
        &socket,
        "POST",
        "/v4.0.0/libpod/containers/create",
        &json,
        Some(body.as_bytes()),
    );
    assert_eq!(answer.status, 201, "{answer:?}");
    for verb in ["start", "init"] {
        let target = format!("/v4.0.0/libpod/containers/{}/{verb}", sb.name("ok-dep"));
        let answer = raw::request(&socket, "POST", &target, &[], None);
        assert_eq!(answer.status, 403, "{verb}: {answer:?}");
        assert!(
            answer.body.contains(&format!("container {extra}")),
            "{answer:?}"
        );
        assert_eq!(sb.inspect("extra")["State"]["Running"], false, "{verb}");
    }
    // Podman's own API sets options the comparison with a record cannot see: not under a
    // listed name. Nor a pod's infra container.
    docker(&["rm", "-f", &sb.name("web")]);
    let body = format!(
        r#"{{"name":"{}","image":"{image}","labels":{{"{LABEL}":"{}"}},"command":["sleep","600"],"ipcns":{{"nsmode":"host"}}}}"#,
        sb.name("web"),
        sb.prefix
    );
    let answer = raw::request(
        &socket,
        "POST",
        "/v4.0.0/libpod/containers/create",
        &json,
        Some(body.as_bytes()),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("Podman's own API"), "{answer:?}");
    let pod = format!(
        r#"{{"name":"{}-pod","labels":{{"{LABEL}":"{}"}},"infra_name":"{}"}}"#,
        sb.prefix,
        sb.prefix,
        sb.name("web")
    );
    let answer = raw::request(
        &socket,
        "POST",
        "/v4.0.0/libpod/pods/create",
        &json,
        Some(pod.as_bytes()),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(!sb.exists("web"));
}

/// The same classes through the authorization plugin, on an engine of the test's own; the
/// oracle for bodies is a second engine of the same version without it.
#[test]
fn plugin_holds_against_each_class() {
    let sb = Sandbox::new();
    let engine = OwnEngine::start();
    let oracle = OwnEngine::start();
    let tag = format!("{}-img:1", sb.prefix);
    engine.import_image(&tag);
    oracle.import_image(&tag);
    let label = format!("{LABEL}={}", sb.prefix);
    let (web, db) = (sb.name("web"), sb.name("db"));
    for name in [&web, &db] {
        engine.docker(&[
            "run", "-d", "--name", name, "--label", &label, &tag, "sleep", "600",
        ]);
    }
    let extra = sb.name("extra");
    engine.docker(&[
        "create", "--name", &extra, "--label", &label, &tag, "sleep", "600",
    ]);
    let scope = sb.scope();
    let rule = format!("label={}=yes", bodies::OK);
    let snapshot = [
        "--host",
        &engine.url(),
        "snapshot",
        "--scope",
        &scope,
        "--allow",
        &rule,
    ];
    sb.expect(&snapshot, 0);
    engine.docker(&["rm", "-f", &db]);
    let name = format!("{}-guard", sb.prefix);
    let plugin_socket = sb.dir().join("plugin.sock");
    let plugin_arg = plugin_socket.display().to_string();
    let plugin = crate::guard::guard(
        &sb,
        Some(&engine.url()),
        &["--plugin", &name, "--socket", &plugin_arg],
    );
    let _spec = crate::guard::Spec::write(&name, &plugin_socket);
    let config = format!(r#"{{"authorization-plugins": ["{name}"]}}"#);
    let engine = OwnEngine::take_over(engine, Binaries::Host, &config);
    engine.docker(&["start", &web]);
    let id = engine.docker(&["inspect", "-f", "{{.Id}}", &web]);
    let socket = engine.socket();
    let running = |after: &str| {
        let state = engine.docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &web]);
        assert_eq!(state, format!("{id} true"), "after {after}");
    };
    // Targets as dockerd hands them to the plugin: raw, escaped, absolute.
    for (method, target) in [
        ("DELETE", format!("/containers%2F{web}?force=1")),
        ("POST", format!("/containers/{web}%2Fstop")),
        ("DELETE", format!("http://d/v1.41/containers/{web}?force=1")),
        ("POST", format!("/v1.41/containers/{}%2Fkill", &id[..12])),
        ("POST", format!("/containers/{web}/frobnicate")),
        ("POST", format!("/v1.23/containers/{web}/stop")),
    ] {
        let answer = raw::request(&socket, method, &target, &[], None);
        not_through(&answer, &target);
        running(&target);
    }
    let body = format!(
        r#"{{"Image":"{tag}","Labels":{{"{LABEL}":"{}"}}}}"#,
        sb.prefix
    );
    let json = [("Content-Type", "application/json")];
    for target in [
        format!("/containers%2Fcreate?name={extra}-2"),
        format!("http://d/containers/create?name={extra}-2"),
        format!("/containers/create?name={extra}-2&x=/auth"),
    ] {
        let answer = raw::request(&socket, "POST", &target, &json, Some(body.as_bytes()));
        not_through(&answer, &target);
        assert!(!engine
            .docker_output(&["inspect", &format!("{extra}-2")])
            .status
            .success());
    }
    // Parameters, networks, processes and claims, as through the proxy.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let target = format!("/containers/{extra}/rename?name={extra}-3");
    let answer = raw::request(
        &socket,
        "POST",
        &target,
        &form,
        Some(format!("name={db}").as_bytes()),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    refused(
        engine.docker_output(&["network", "disconnect", "bridge", &web]),
        "refusing to disconnect a network from container",
        "network disconnect",
    );
    let pid = format!("container:{web}");
    let ok = sb.name("ok-pid");
    let joined = engine.docker_output(&[
        "run",
        "-d",
        "--name",
        &ok,
        "--label",
        &label,
        "--label",
        &format!("{}=yes", bodies::OK),
        "--pid",
        &pid,
        &tag,
        "sleep",
        "600",
    ]);
    refused(
        joined,
        "to create a container in its process namespace",
        "run --pid container:web",
    );
    let forged = engine.docker_output(&[
        "run",
        "-d",
        "--name",
        &format!("{extra}-k8s"),
        "--label",
        &label,
        "--label",
        "io.kubernetes.pod.name=p",
        &tag,
        "sleep",
        "600",
    ]);
    refused(
        forged,
        "is not on this host's list",
        "a create claiming Kubernetes",
    );
    running("parameters, networks, processes and claims");
    // An extra left from before is never started.
    refused(
        engine.docker_output(&["start", &extra]),
        "it is not on this host's list",
        "start",
    );
    // db's name takes only db's record: measured after the engine made it, and removed again.
    let other = engine.docker_output(&[
        "run", "-d", "--name", &db, "--label", &label, "-e", "OTHER=1", &tag, "sleep", "600",
    ]);
    refused(
        other,
        "differs from the record",
        "run db with another configuration",
    );
    assert!(!engine.docker_output(&["inspect", &db]).status.success());
    engine.docker(&[
        "run", "-d", "--name", &db, "--label", &label, &tag, "sleep", "600",
    ]);
    // A decoy named like a prefix of web's id: the plugin cannot send the resolved id on, so
    // it refuses a reference that could name web.
    let decoy = &id[..10];
    let create_decoy = || {
        engine.docker(&["create", "--name", decoy, &tag, "sleep", "600"]);
        // By name: the decoy's own id, while it exists.
        engine.docker(&["inspect", "-f", "{{.Id}}", decoy])
    };
    let mut decoy_id = create_decoy();
    for attempt in 0..20u64 {
        // As through the proxy: a sweep of removals by the name across the decoy's removal.
        let answers = sweep(&socket, &socket, decoy, &decoy_id, attempt);
        running(&format!("removals of {decoy} ({answers:?})"));
        if !engine
            .docker_output(&["inspect", &decoy_id])
            .status
            .success()
        {
            decoy_id = create_decoy();
        }
    }
    let answer = raw::request(
        &socket,
        "DELETE",
        &format!("/containers/{decoy}?force=1"),
        &[],
        None,
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer.body.contains(&format!("container {web}")),
        "{answer:?}"
    );
    // By its own id it goes.
    engine.docker(&["rm", "-f", &decoy_id]);
    // Bodies: what the engine without the plugin makes of each, against what gets past it.
    let oracle_socket = oracle.socket();
    let oracle_url = oracle.url();
    let oracle_end = bodies::Endpoint {
        socket: &oracle_socket,
        url: &oracle_url,
    };
    bodies::check_corpus(&sb, &tag, oracle_end, &socket, &engine.url());
    drop(plugin);
    engine.reload("{}");
}
