//! A hand-edited list is checked like code: every command that reads the state refuses an
//! entry a create request could not carry as written (a typo, a value of the wrong type, a
//! network field that is not recorded), names the file, line and column, the container and the
//! field, suggests the field meant, changes nothing; `check` does the same without an engine.
//! And a hand-written entry that is valid does not loop. See: issue 13.

use serde_json::{json, Value};

use crate::util::{docker, Sandbox, LABEL};

/// Set `entry[path...] = value` on the recorded `short`.
fn edit_entry(sb: &Sandbox, short: &str, change: impl FnOnce(&mut Value)) {
    let name = sb.name(short);
    sb.edit_state(|state| {
        let entry = state["containers"]
            .as_array_mut()
            .expect("containers")
            .iter_mut()
            .find(|e| e["name"] == json!(name))
            .expect("the entry");
        change(&mut entry["spec"]);
    });
}

/// Every command that reads the state exits 2 with all of `needles` on stderr, and the file
/// and the container are as they were.
pub fn refused_everywhere(sb: &Sandbox, needles: &[&str]) {
    let before = std::fs::read(sb.state_path()).expect("state");
    let path = sb.state_path().display().to_string();
    let check = ["check", path.as_str()];
    for command in [
        &["diff"][..],
        &["enforce"],
        &["enforce", "--dry-run"],
        &["list"],
        &["check"],
        &check,
    ] {
        let (code, stdout, stderr) = sb.gl(command);
        assert_eq!(code, 2, "{command:?}: {stdout}{stderr}");
        for needle in needles.iter().chain([&path.as_str()]) {
            assert!(
                stderr.contains(needle),
                "{command:?} lacks {needle:?}: {stderr}"
            );
        }
    }
    let after = std::fs::read(sb.state_path()).expect("state");
    assert_eq!(before, after, "the state file was modified");
}

#[test]
fn a_typo_is_refused_with_its_place_and_the_field_it_meant_and_nothing_is_enacted() {
    let sb = Sandbox::new();
    sb.run("web", &["-m", "64m"], &[]);
    sb.snapshot(&[]);
    edit_entry(&sb, "web", |spec| {
        let memory = spec["host_config"]
            .as_object_mut()
            .expect("host_config")
            .remove("Memory")
            .expect("recorded memory");
        spec["host_config"]["Memroy"] = memory;
    });
    let web = sb.id("web");
    // Something a pass would do, were it allowed to run: nothing may be enacted.
    docker(&["stop", "-t", "0", &sb.name("web")]);
    sb.run("extra", &[], &[]);

    refused_everywhere(
        &sb,
        &[
            &format!("container {}", sb.name("web")),
            "host_config.Memroy",
            "did you mean `Memory`?",
            "line ",
            " column ",
        ],
    );
    assert_eq!(sb.id("web"), web);
    assert_eq!(sb.inspect("web")["State"]["Running"], json!(false));
    assert!(sb.exists("extra"), "a pass acted on an invalid list");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_not_reported_as_drift() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    edit_entry(&sb, "web", |spec| {
        spec["host_config"]["Memory"] = json!("lots");
    });
    refused_everywhere(
        &sb,
        &["host_config.Memory", "invalid type: string \"lots\""],
    );
}

#[test]
fn an_unknown_network_field_is_refused_with_the_suggestion() {
    let sb = Sandbox::new();
    let network = sb.network("net", &[]);
    sb.run(
        "web",
        &["--network", &network, "--network-alias", "www"],
        &[],
    );
    sb.snapshot(&[]);
    edit_entry(&sb, "web", |spec| {
        let endpoint = &mut spec["networks"][&network];
        let aliases = endpoint
            .as_object_mut()
            .expect("endpoint")
            .remove("Aliases")
            .expect("recorded aliases");
        endpoint["Alaises"] = aliases;
        endpoint["IPAddress"] = json!("10.1.2.3");
    });
    refused_everywhere(
        &sb,
        &[
            &format!("networks.{network}.Alaises"),
            "did you mean `Aliases`?",
            &format!("networks.{network}.IPAddress"),
            "IPAMConfig.IPv4Address",
        ],
    );
}

#[test]
fn check_says_a_valid_list_is_valid_without_an_engine() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let review = sb.dir().join("review.json");
    std::fs::copy(sb.state_path(), &review).expect("copy");
    let review = review.display().to_string();
    // An engine that does not exist: check never asks one.
    let out = sb.expect(&["--host", "unix:///nonexistent.sock", "check", &review], 0);
    assert!(
        out.starts_with(&format!("valid: {review}: 1 containers allowed")),
        "{out}"
    );
    sb.expect(&["check", "/nonexistent/state.json"], 2);
}

/// An entry written by hand, as the README invites, in the spellings a person uses rather than
/// the ones `snapshot` writes: ports without a protocol, a restart policy without its count, a
/// `:rw` bind, zero values, the default shm size and swap. The engine reports each otherwise
/// after creating it; none of that may make a second pass replace the container.
#[test]
fn a_hand_written_entry_is_created_and_then_left_alone() {
    let sb = Sandbox::new();
    sb.run("web", &[], &[]);
    sb.snapshot(&[]);
    let image = crate::util::image::test_image();
    let image_id = docker(&["image", "inspect", "-f", "{{.Id}}", &image]);
    let data = sb.dir().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let name = sb.name("hand");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port().to_string()
    };
    let mut entry = json!({
        "name": name,
        "spec": {
            "image": image,
            "image_id": image_id,
            "config": {
                "Labels": {LABEL: sb.prefix, "made": "by hand"},
                "Env": ["MODE=prod"],
                "Cmd": ["sleep", "3600"],
                "ExposedPorts": {"8080": {}},
                "Tty": false,
                "User": ""
            },
            "host_config": {
                "Memory": 67108864,
                "MemorySwap": 134217728,
                "ShmSize": 67108864,
                "Privileged": false,
                "CpuShares": 0,
                "RestartPolicy": {"Name": "unless-stopped"},
                "Binds": [format!("{}:/data:rw", data.display())],
                "PortBindings": {"8080": [{"HostIp": "127.0.0.1", "HostPort": port}]}
            }
        }
    });
    if crate::util::podman() {
        // What this sandbox can grant a Podman container (see engine_options).
        entry["spec"]["host_config"]["Ulimits"] = json!([
            {"Name": "nofile", "Soft": 20000, "Hard": 20000},
            {"Name": "nproc", "Soft": 20000, "Hard": 20000}
        ]);
    }
    sb.edit_state(|state| {
        state["containers"]
            .as_array_mut()
            .expect("containers")
            .push(entry);
    });
    sb.expect(&["check"], 0);

    let out = sb.expect(&["enforce"], 0);
    assert!(out.contains(&format!("+ {name}")), "{out}");
    let created = sb.id("hand");
    let out = sb.expect(&["enforce"], 0);
    assert!(out.starts_with("in sync"), "the second pass acted: {out}");
    assert_eq!(
        sb.id("hand"),
        created,
        "the hand-written container was replaced"
    );
    sb.expect(&["diff"], 0);
    let inspect = sb.inspect("hand");
    assert_eq!(inspect["HostConfig"]["Memory"], json!(67108864));
    assert_eq!(
        inspect["HostConfig"]["RestartPolicy"]["Name"],
        json!("unless-stopped")
    );
}

/// A name written as inspect shows it, and the environment in another order, are what the
/// engine runs: no pass acts on them, and two passes never both act. See: issue 24, point 3.
#[test]
fn a_slashed_name_and_a_reordered_environment_do_not_flap() {
    let sb = Sandbox::new();
    let id = sb.run(
        "web",
        &["-e", "A=1", "-e", "B=2", "-e", "C=3"],
        &["sleep", "600"],
    );
    sb.snapshot(&[]);
    let name = sb.name("web");
    sb.edit_state(|state| {
        let entry = &mut state["containers"][0];
        entry["name"] = json!(format!("/{name}"));
        entry["spec"]["config"]["Env"] = json!(["C=3", "A=1", "B=2"]);
    });
    sb.expect(&["check", &sb.state_path().display().to_string()], 0);
    sb.expect(&["diff"], 0);
    for pass in 0..2 {
        let out = sb.expect(&["enforce"], 0);
        assert!(
            !out.contains("replaced") && !out.contains("removed"),
            "pass {pass}: {out}"
        );
    }
    assert_eq!(sb.id("web"), id);
    // A name the engine refuses is refused before any pass.
    sb.edit_state(|state| state["containers"][0]["name"] = json!("we b"));
    let (code, _, stderr) = sb.gl(&["enforce"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the engine refuses this name"), "{stderr}");
    assert_eq!(sb.id("web"), id);
}
