//! `--notify`: what a pass did or could not fix, told to a real HTTP receiver on 127.0.0.1,
//! once per situation, and never in the way of the pass.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::proxy::{HookProxy, Verdict};
use crate::util::receiver::{Answer, Receiver};
use crate::util::watch::eventually;
use crate::util::{docker, free_address, Sandbox};

/// The schema the README publishes, read from the README itself.
fn schema() -> jsonschema::Validator {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let (_, after) = readme
        .split_once("<!-- notification schema -->\n```json\n")
        .expect("the notification schema in the README");
    let (block, _) = after
        .split_once("\n```")
        .expect("the end of the schema block");
    let schema: Value = serde_json::from_str(block).expect("the schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid JSON Schema")
}

/// Assert that a notification matches the README's schema.
fn valid(body: &Value) {
    let errors: Vec<String> = schema()
        .iter_errors(body)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {body:#}");
}

fn text(body: &Value) -> &str {
    body["text"].as_str().expect("a text line")
}

/// The receiver's credentials never appear in what guestlist prints.
fn no_credentials(output: &str) {
    for secret in ["T0SECRET", "hunter2", "token="] {
        assert!(!output.contains(secret), "{secret} in {output}");
    }
}

/// A sandbox whose list holds `kept`, with `extras` started after the snapshot.
fn listed(extras: &[&str]) -> Sandbox {
    let sb = Sandbox::new();
    sb.run("kept", &[], &[]);
    sb.snapshot(&[]);
    for extra in extras {
        sb.run(extra, &[], &[]);
    }
    sb
}

#[test]
fn a_pass_that_removes_an_extra_tells_it_once_and_an_in_sync_pass_tells_nothing() {
    let sb = listed(&["intruder"]);
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();

    sb.expect(&["enforce", "--stop-timeout", "0", "--notify", &url], 0);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let body = &bodies[0];
    valid(body);
    let intruder = sb.name("intruder");
    assert!(
        text(body).starts_with("guestlist on ")
            && text(body).contains(&format!("{intruder} removed (extra, image ")),
        "{body:#}"
    );
    assert_eq!(
        body["actions"].as_array().map(Vec::len),
        Some(1),
        "{body:#}"
    );
    let action = &body["actions"][0];
    assert_eq!(action["action"], "remove");
    assert_eq!(action["container"], intruder.as_str());
    assert_eq!(action["result"], "ok");
    assert!(action["reason"]
        .as_str()
        .unwrap_or_default()
        .starts_with("extra (image "));
    assert_eq!(body["in_sync"], true);
    assert_eq!(body["pass"]["command"], "enforce");
    assert_eq!(body["pass"]["ended"], "in_sync");
    assert!(!body["host"]["hostname"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
    assert!(!sb.exists("intruder"));

    sb.expect(&["enforce", "--notify", &url], 0);
    assert_eq!(receiver.requests(), 1, "an in-sync pass sent something");
}

#[test]
fn a_failure_that_persists_is_told_once_and_once_more_when_it_is_fixed() {
    let sb = Sandbox::new();
    let net = sb.network("net", &[]);
    sb.run("web", &["--network", &net], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("web")]);
    docker(&["network", "rm", &net]);
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();

    for _ in 0..3 {
        sb.expect(&["enforce", "--notify", &url], 1);
    }
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "told more than once: {bodies:#?}");
    let failed = &bodies[0];
    valid(failed);
    let web = sb.name("web");
    assert!(
        text(failed).contains(&format!("{web}: failed to create: ")),
        "{failed:#}"
    );
    assert_eq!(failed["situations"][0]["container"], web.as_str());
    assert_eq!(failed["situations"][0]["condition"], "failed to create");
    assert_eq!(failed["situations"][0]["state"], "new");
    assert_eq!(failed["actions"][0]["result"], "failed");
    assert_eq!(failed["drift"]["missing"][0]["name"], web.as_str());
    assert_eq!(failed["in_sync"], false);
    let memory = sb.state_path().with_file_name("state.notified.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&memory)
            .expect("what was told")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    sb.network("net", &[]);
    // The failed starts count for the crash-loop backoff: passes may hold the start back for a
    // few seconds, which is the same situation and tells nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.gl(&["enforce", "--notify", &url]).0 != 0 {
        assert!(Instant::now() < deadline, "{}", sb.containers());
        std::thread::sleep(Duration::from_millis(500));
    }
    sb.expect(&["enforce", "--notify", &url], 0);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let fixed = &bodies[1];
    valid(fixed);
    // Created or started by the pass that tells it, or (a start that counted as a restart of a
    // container that kept failing) by a pass before, whose next pass saw it stay up.
    let back = [
        format!("{web} created and started, back in sync"),
        format!("{web} started, back in sync"),
        format!("{web} is back in sync"),
    ];
    assert!(back.iter().any(|b| text(fixed).contains(b)), "{fixed:#}");
    assert_eq!(fixed["situations"][0]["state"], "resolved");
    assert_eq!(fixed["in_sync"], true);
    sb.expect(&["enforce", "--notify", &url], 0);
    assert_eq!(receiver.requests(), 2, "{:#?}", receiver.bodies());
}

#[test]
fn receivers_that_refuse_hang_or_fail_change_neither_the_exit_code_nor_the_pass() {
    let sb = listed(&["intruder"]);
    let closed = format!("http://{}/hooks/T0SECRET?token=hunter2", free_address());
    let hanging = Receiver::start(Answer::Hang);
    let failing = Receiver::start(Answer::Fail);
    let metrics = sb.dir().join("guestlist.prom");
    let metrics_arg = metrics.display().to_string();

    let started = Instant::now();
    let (code, stdout, stderr) = sb.gl(&[
        "enforce",
        "--stop-timeout",
        "0",
        "--metrics-file",
        &metrics_arg,
        "--notify",
        &closed,
        "--notify",
        &hanging.url(),
        "--notify",
        &failing.url(),
    ]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!sb.exists("intruder"), "{stdout}");
    // The bound is 5 s for all notifications of a pass; the rest is the pass itself.
    assert!(took < Duration::from_secs(20), "took {took:?}\n{stderr}");
    assert_eq!(failing.requests(), 3, "{stderr}");
    assert!((1..=3).contains(&hanging.requests()), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot notify http://127.0.0.1:"))
        .collect();
    assert_eq!(warnings.len(), 3, "{stderr}");
    assert!(
        stderr.contains("answered 500 Internal Server Error (try 3 of 3)"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot connect"), "{stderr}");
    // The hanging receiver's last try is cut short by the budget, unless (a loaded machine)
    // no time was left for it.
    assert!(
        stderr.contains("no answer before the 5s for the pass's notifications ran out (try 3")
            || stderr.contains("no answer within 2s (try 2 of 3)"),
        "{stderr}"
    );
    no_credentials(&stderr);
    let written = std::fs::read_to_string(&metrics).expect("the metrics file");
    assert!(
        written.contains("\nguestlist_notifications_failed_total 3\n"),
        "{written}"
    );

    // A failing pass keeps its own exit code too, and the count goes on from the file.
    sb.run("intruder", &[], &[]);
    let (code, stdout, stderr) = sb.gl(&[
        "enforce",
        "--max-removals",
        "0",
        "--metrics-file",
        &metrics_arg,
        "--notify",
        &failing.url(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let written = std::fs::read_to_string(&metrics).expect("the metrics file");
    assert!(
        written.contains("\nguestlist_notifications_failed_total 4\n"),
        "{written}"
    );
}

#[test]
fn watch_tells_an_intruders_removal_within_seconds() {
    let sb = listed(&[]);
    let receiver = Receiver::start(Answer::Take);
    // A second receiver that never answers is told in parallel, and stands in nobody's way.
    let hanging = Receiver::start(Answer::Hang);
    let metrics = free_address();
    let watcher = sb.watch(&[
        "--stop-timeout",
        "0",
        "--metrics-listen",
        &metrics,
        "--notify",
        &receiver.url(),
        "--notify",
        &hanging.url(),
    ]);
    watcher.wait_for_log("full pass", Duration::from_secs(20));
    sb.run("intruder", &[], &[]);
    let intruder = sb.name("intruder");
    eventually(
        Duration::from_secs(20),
        "a notification of the intruder's removal",
        || {
            receiver
                .bodies()
                .iter()
                .any(|b| text(b).contains(&format!("{intruder} removed")))
        },
    );
    let bodies = receiver.bodies();
    let body = bodies
        .iter()
        .find(|b| text(b).contains(&intruder))
        .expect("the notification");
    valid(body);
    assert_eq!(body["pass"]["command"], "watch");
    assert_eq!(body["actions"][0]["container"], intruder.as_str());
    // The next intruder is removed while the sender still waits on the hanging receiver.
    sb.run("second", &[], &[]);
    eventually(
        Duration::from_secs(20),
        "the second extra is removed",
        || !sb.exists("second"),
    );
    watcher.wait_for_log("cannot notify http://127.0.0.1:", Duration::from_secs(20));
    no_credentials(&watcher.log());
    eventually(
        Duration::from_secs(10),
        "watch counts the notification the hanging receiver did not take",
        || {
            let (_, served) = crate::util::http_get(&metrics, "/metrics");
            served
                .lines()
                .find_map(|l| l.strip_prefix("guestlist_notifications_failed_total "))
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v >= 1.0)
        },
    );
}

#[test]
fn a_dry_run_tells_the_drift_once_changes_nothing_and_masks_secrets() {
    let sb = Sandbox::new();
    sb.run("app", &["-e", "TOKEN=s3cret-recorded"], &[]);
    sb.snapshot(&[]);
    docker(&["rm", "-f", &sb.name("app")]);
    sb.run("app", &["-e", "TOKEN=s3cret-live"], &[]);
    sb.run("intruder", &[], &[]);
    let ids = (sb.id("app"), sb.id("intruder"));
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();

    for _ in 0..2 {
        sb.expect(&["enforce", "--dry-run", "--notify", &url], 1);
    }
    assert_eq!(
        (sb.id("app"), sb.id("intruder")),
        ids,
        "a dry run changed the host"
    );
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "told more than once: {bodies:#?}");
    let body = &bodies[0];
    valid(body);
    assert!(text(body).contains("(dry run)"), "{body:#}");
    assert!(text(body).contains(&sb.name("intruder")), "{body:#}");
    assert!(text(body).contains(&sb.name("app")), "{body:#}");
    assert_eq!(body["pass"]["dry_run"], true);
    assert_eq!(body["actions"], Value::Array(vec![]));
    assert_eq!(body["drift"]["changed"][0]["name"], sb.name("app").as_str());
    assert_eq!(
        body["drift"]["extra"][0]["name"],
        sb.name("intruder").as_str()
    );
    let states: Vec<&Value> = body["situations"]
        .as_array()
        .expect("situations")
        .iter()
        .map(|s| &s["state"])
        .collect();
    assert_eq!(states, ["new", "new"], "{body:#}");
    assert!(!body.to_string().contains("s3cret"), "{body:#}");

    docker(&["rm", "-f", &sb.name("intruder")]);
    sb.expect(&["enforce", "--dry-run", "--notify", &url], 1);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert!(
        text(&bodies[1]).contains(&format!("{} is gone", sb.name("intruder"))),
        "{:#}",
        bodies[1]
    );
}

#[test]
fn https_receivers_are_trusted_through_the_systems_roots_and_only_so() {
    let sb = listed(&["intruder"]);
    let ca = sb.dir().join("ca.pem");
    let receiver = Receiver::start_tls(Answer::Take, &ca, "127.0.0.1");

    // Not among the roots: the pass goes on, and the receiver gets nothing.
    let (code, _, stderr) = sb.gl(&["enforce", "--dry-run", "--notify", &receiver.url()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot notify https://127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(receiver.bodies().is_empty());

    let out = sb
        .guestlist()
        .env("SSL_CERT_FILE", &ca)
        .args([
            "enforce",
            "--stop-timeout",
            "0",
            "--notify",
            &receiver.url(),
        ])
        .output()
        .expect("guestlist");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{out:?}");
    valid(&bodies[0]);
}

/// The pass's own situation (refused, could not run), which names no container.
fn pass_situation_in(body: &Value) -> Option<&Value> {
    body["situations"]
        .as_array()?
        .iter()
        .find(|s| s["container"].is_null())
}

fn pass_situation(body: &Value) -> &Value {
    pass_situation_in(body).unwrap_or_else(|| panic!("no situation of the pass in {body:#}"))
}

#[test]
fn a_refused_pass_is_told_with_its_limit_once_and_again_when_passes_act() {
    let sb = listed(&["one", "two"]);
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();

    for _ in 0..2 {
        sb.expect(&["enforce", "--max-removals", "1", "--notify", &url], 1);
    }
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "told more than once: {bodies:#?}");
    let refused = &bodies[0];
    valid(refused);
    assert_eq!(refused["refused"]["removals"], 2, "{refused:#}");
    assert_eq!(refused["refused"]["limit"], 1, "{refused:#}");
    assert_eq!(refused["actions"], Value::Array(vec![]));
    assert_eq!(refused["pass"]["ended"], "refused", "{refused:#}");
    let situation = pass_situation(refused);
    assert_eq!(situation["kind"], "refused");
    assert_eq!(situation["condition"], "over --max-removals: 2 of 1");
    assert_eq!(situation["state"], "new");
    assert!(
        text(refused).contains("over --max-removals: 2 of 1"),
        "{refused:#}"
    );
    assert!(sb.exists("one") && sb.exists("two"), "a refused pass acted");

    sb.expect(
        &[
            "enforce",
            "--stop-timeout",
            "0",
            "--max-removals",
            "2",
            "--notify",
            &url,
        ],
        0,
    );
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let acted = &bodies[1];
    valid(acted);
    assert_eq!(pass_situation(acted)["state"], "resolved", "{acted:#}");
    assert!(
        text(acted).contains("passes run and act again (was: over --max-removals)"),
        "{acted:#}"
    );
    assert!(text(acted).contains(&format!("{} removed", sb.name("one"))));
    assert_eq!(acted["refused"], Value::Null);
}

#[test]
fn a_pass_that_cannot_run_is_told_once_and_again_when_passes_run() {
    let sb = listed(&[]);
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();
    let nobody = format!("unix://{}", sb.dir().join("nobody.sock").display());

    for _ in 0..2 {
        sb.expect(&["--host", &nobody, "enforce", "--notify", &url], 2);
    }
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "told more than once: {bodies:#?}");
    let failed = &bodies[0];
    valid(failed);
    assert_eq!(failed["pass"]["ended"], "error", "{failed:#}");
    assert!(
        failed["pass"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nobody.sock")),
        "the error names the endpoint: {failed:#}"
    );
    assert_eq!(failed["in_sync"], false);
    let situation = pass_situation(failed);
    assert_eq!(situation["kind"], "error");
    assert_eq!(situation["condition"], "the pass could not run");
    assert!(
        text(failed).contains("the pass could not run: "),
        "{failed:#}"
    );

    // In sync, which alone tells nothing; the end of the outage is news.
    sb.expect(&["enforce", "--notify", &url], 0);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let back = &bodies[1];
    valid(back);
    assert_eq!(pass_situation(back)["state"], "resolved", "{back:#}");
    assert!(
        text(back).contains("passes run and act again (was: the pass could not run)"),
        "{back:#}"
    );
    assert_eq!(back["in_sync"], true);
    sb.expect(&["enforce", "--notify", &url], 0);
    assert_eq!(receiver.requests(), 2, "{:#?}", receiver.bodies());
}

#[test]
fn a_lasting_situation_is_told_again_once_notify_repeat_has_passed() {
    let sb = listed(&["intruder"]);
    let receiver = Receiver::start(Answer::Take);
    let url = receiver.url();
    let dry_run = [
        "enforce",
        "--dry-run",
        "--notify-repeat",
        "1s",
        "--notify",
        &url,
    ];

    sb.expect(&dry_run, 1);
    std::thread::sleep(Duration::from_millis(1200));
    sb.expect(&dry_run, 1);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let reminder = &bodies[1];
    valid(reminder);
    let intruder = sb.name("intruder");
    assert_eq!(reminder["situations"][0]["container"], intruder.as_str());
    assert_eq!(
        reminder["situations"][0]["state"], "ongoing",
        "{reminder:#}"
    );
    assert_eq!(
        reminder["situations"][0]["since"], bodies[0]["situations"][0]["since"],
        "a reminder keeps the situation's start"
    );
    assert!(
        text(reminder).contains(&format!("still {intruder}: extra")),
        "{reminder:#}"
    );
    assert!(
        text(reminder).contains("(since less than a minute)"),
        "{reminder:#}"
    );
}

/// The kind of the pass's own situation in `body`, if it has one.
fn pass_kind(body: &Value) -> Option<&str> {
    pass_situation_in(body)?["kind"].as_str()
}

#[test]
fn watch_tells_an_engine_that_stays_away_and_its_return() {
    let sb = listed(&[]);
    let receiver = Receiver::start(Answer::Take);
    let proxy = HookProxy::start(&sb.dir().join("engine.sock"), |_, _| Verdict::Forward);
    let watcher = sb.watch(&["--host", &proxy.url(), "--notify", &receiver.url()]);
    watcher.wait_for_log("full pass", Duration::from_secs(20));

    proxy.set_away(true);
    let away = Instant::now();
    eventually(
        Duration::from_secs(60),
        "a notification that the engine is away",
        || {
            receiver
                .bodies()
                .iter()
                .any(|b| pass_kind(b) == Some("error"))
        },
    );
    // An engine restarting (an upgrade) is no news: only one away for 30 s is.
    assert!(
        away.elapsed() >= Duration::from_secs(30),
        "{:?}",
        away.elapsed()
    );
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let lost = &bodies[0];
    valid(lost);
    assert_eq!(lost["pass"]["command"], "watch");
    assert_eq!(pass_situation(lost)["condition"], "the pass could not run");
    assert!(text(lost).contains("the pass could not run: "), "{lost:#}");

    proxy.set_away(false);
    eventually(
        Duration::from_secs(30),
        "a notification that the engine is back",
        || receiver.bodies().len() >= 2,
    );
    let bodies = receiver.bodies();
    let back = &bodies[1];
    valid(back);
    assert_eq!(pass_situation(back)["state"], "resolved", "{back:#}");
    assert!(
        text(back).contains("passes run and act again (was: the pass could not run)"),
        "{back:#}"
    );
    // Told once while away, however many reconnections failed.
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
}

#[test]
fn a_damaged_memory_of_what_was_told_is_a_warning_and_is_written_afresh() {
    let sb = listed(&["intruder"]);
    let memory = sb.state_path().with_file_name("state.notified.json");
    std::fs::write(&memory, "{ not json").expect("damage the memory");
    let receiver = Receiver::start(Answer::Take);

    let (code, stdout, stderr) = sb.gl(&[
        "enforce",
        "--stop-timeout",
        "0",
        "--notify",
        &receiver.url(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!sb.exists("intruder"), "{stdout}");
    assert!(
        stderr.contains("warning: ignoring the damaged notification memory")
            && stderr.contains("starting it afresh"),
        "{stderr}"
    );
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    valid(&bodies[0]);
    let written = std::fs::read_to_string(&memory).expect("the memory, written again");
    serde_json::from_str::<Value>(&written).expect("the memory is JSON again");
    let (_, _, stderr) = sb.gl(&["enforce", "--notify", &receiver.url()]);
    assert!(!stderr.contains("damaged"), "{stderr}");
}

/// A receiver's URL is a credential wherever it is given. See: issue 24, point 5.
#[test]
fn a_receiver_url_is_never_echoed_and_a_comma_in_one_stays_in_it() {
    let sb = listed(&["intruder"]);
    for bad in [
        "https://user:s3cret@example.invalid:99999/hook?token=hunter2",
        "hunter2-is-not-a-url",
        "ftp://user:s3cret@example.invalid/hook",
    ] {
        let (code, stdout, stderr) = sb.gl(&["enforce", "--notify", bad]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        for secret in ["s3cret", "hunter2"] {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{bad}: {stderr}{stdout}"
            );
        }
        assert!(stderr.contains("--notify"), "{stderr}");
        assert!(
            sb.exists("intruder"),
            "a pass ran although --notify was refused"
        );
    }
    // The same through the environment.
    let out = sb
        .guestlist()
        .env(
            "GUESTLIST_NOTIFY",
            "https://user:s3cret@example.invalid:99999/x",
        )
        .args(["enforce"])
        .output()
        .expect("guestlist");
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"));
    // A comma inside a URL's query stays in it; an empty value says it sends nothing.
    let receiver = Receiver::start(Answer::Take);
    let url = format!("{}&ids=1,2", receiver.url());
    let (code, _, stderr) = sb.gl(&[
        "enforce",
        "--stop-timeout",
        "0",
        "--notify",
        &url,
        "--notify",
        "",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(receiver.bodies().len(), 1, "{stderr}");
    assert!(
        stderr.contains("is empty: that sends no notification"),
        "{stderr}"
    );
}
