//! The guard against a client that tries to walk past it by what a request reaches: a listed
//! name taken by another container, an extra made to run, an orchestrator's labels forged,
//! removals and starts that take other containers along, the volumes and networks a record
//! names. Through the proxy in front of the engine under test. See: issue 23.

use crate::guard::{proxy, refused, succeeds, through};
use crate::hostile::{no_container, not_through, socket_of, still_runs};
use crate::util::raw;
use crate::util::{self, docker, docker_output, image, Sandbox, LABEL};

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
    refused(
        through(&url, &["update", "--restart", "always", &created], None),
        "a restart policy would make it run",
        "update an extra's restart policy",
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
        let answer = raw::post_json(&socket, "/v4.0.0/libpod/pods/create", body.as_bytes());
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
    let socket = socket_of(&url);
    let answer = raw::post_json(&socket, "/v4.0.0/libpod/containers/create", body.as_bytes());
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
    let answer = raw::post_json(&socket, "/v4.0.0/libpod/containers/create", body.as_bytes());
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(answer.body.contains("Podman's own API"), "{answer:?}");
    let pod = format!(
        r#"{{"name":"{}-pod","labels":{{"{LABEL}":"{}"}},"infra_name":"{}"}}"#,
        sb.prefix,
        sb.prefix,
        sb.name("web")
    );
    let answer = raw::post_json(&socket, "/v4.0.0/libpod/pods/create", pod.as_bytes());
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(!sb.exists("web"));
}
