//! The classes of `hostile` and `hostile_reach` through the authorization plugin, on an engine
//! of the test's own (CI runs it once, on the host's Docker). See: issue 23.

use crate::bodies;
use crate::guard::refused;
use crate::hostile::{not_through, sweep};
use crate::util::engine::{Binaries, OwnEngine};
use crate::util::raw;
use crate::util::{Sandbox, LABEL};

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
    for target in [
        format!("/containers%2Fcreate?name={extra}-2"),
        format!("http://d/containers/create?name={extra}-2"),
        format!("/containers/create?name={extra}-2&x=/auth"),
    ] {
        let answer = raw::post_json(&socket, &target, body.as_bytes());
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
