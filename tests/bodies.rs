//! Create bodies that Go's `encoding/json` reads otherwise than a strict reader would, sent to
//! the engine itself (the oracle) and through the guard: whatever the engine makes of a body,
//! the guard refuses it or lets through exactly that, and never an extra. See: issue 23.

use std::path::Path;

use serde_json::Value;

use crate::util::raw::{self, Answer};
use crate::util::{docker_output, Sandbox, LABEL};

/// How one body fared.
#[derive(Debug)]
pub struct Outcome {
    pub what: String,
    /// What the engine itself created from it (`None`: it refused the body).
    pub truth: Option<Created>,
    pub through_guard: Answer,
}

/// What an engine created, as far as the list goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub image: String,
    pub labels: serde_json::Map<String, Value>,
    pub privileged: bool,
    pub binds: Value,
}

/// The label key an allow rule of the corpus's list tolerates (`label=<key>=yes`).
pub const OK: &str = "guestlist.test.ok";

/// Bodies for a create in `sb`'s scope: each would make an extra but for what the guard might
/// misread, or is allowed (`OK`) unless misread. At least 50.
pub fn corpus(sb: &Sandbox, image: &str) -> Vec<(String, Vec<u8>)> {
    let scope = format!(r#""{LABEL}":"{}""#, sb.prefix);
    let extra = format!("{{{scope}}}");
    let allowed = format!(r#"{{{scope},"{OK}":"yes"}}"#);
    let outside = "{}".to_string();
    let img = format!(r#""Image":"{image}""#);
    let mut bodies: Vec<(String, String)> = Vec::new();
    let spellings = [
        "Labels",
        "labels",
        "LABELS",
        "LabelS",
        "Label\u{17f}",
        "\\u004cabels",
        "L\\u0061bels",
    ];
    for key in spellings {
        bodies.push((
            format!("labels as {key:?}, an extra"),
            format!(r#"{{{img},"{key}":{extra}}}"#),
        ));
        bodies.push((
            format!("labels as {key:?}, allowed"),
            format!(r#"{{{img},"{key}":{allowed}}}"#),
        ));
    }
    // The same field twice, in any spelling: Go decodes both into one map (merged).
    for (first, second) in [
        ("Labels", "Labels"),
        ("Labels", "labels"),
        ("labels", "Labels"),
        ("Labels", "Label\u{17f}"),
        ("LABELS", "labels"),
    ] {
        for (a, b, what) in [
            (&outside, &extra, "nothing then the scope"),
            (&allowed, &extra, "allowed then the scope"),
            (&extra, &outside, "the scope then nothing"),
        ] {
            bodies.push((
                format!("{first:?} then {second:?}: {what}"),
                format!(r#"{{{img},"{first}":{a},"{second}":{b}}}"#),
            ));
        }
    }
    bodies.push((
        "labels null, then the scope".into(),
        format!(r#"{{{img},"Labels":null,"Labels":{extra}}}"#),
    ));
    bodies.push((
        "the scope, then labels null".into(),
        format!(r#"{{{img},"Labels":{extra},"Labels":null}}"#),
    ));
    // A label given twice inside the map: the last wins.
    bodies.push((
        "ok given twice, the last one not yes".into(),
        format!(r#"{{{img},"Labels":{{{scope},"{OK}":"yes","{OK}":"no"}}}}"#),
    ));
    bodies.push((
        "the scope label given twice, the last one in scope".into(),
        format!(
            r#"{{{img},"Labels":{{"{LABEL}":"other","{LABEL}":"{}"}}}}"#,
            sb.prefix
        ),
    ));
    bodies.push((
        "an escaped label key".into(),
        format!(r#"{{{img},"Labels":{{{scope},"guestlist.test.\u006fk":"yes"}}}}"#),
    ));
    // The image allow rule against the image actually created.
    let decoy = format!("{}-allowed:1", sb.prefix);
    for (first, second) in [("Image", "image"), ("image", "Image"), ("IMAGE", "Image")] {
        bodies.push((
            format!("{first:?} allowed, then {second:?} the real one"),
            format!(r#"{{"{first}":"{decoy}","{second}":"{image}","Labels":{extra}}}"#),
        ));
    }
    bodies.push((
        "Image twice".into(),
        format!(r#"{{"Image":"{decoy}","Image":"{image}","Labels":{extra}}}"#),
    ));
    // Data after the value: Docker 20.10 ignores it, 28 ignores a closing bracket only.
    for (tail, what) in [
        (format!(r#" {{"Labels":{allowed}}}"#), "a second object"),
        ("}".to_string(), "a closing brace"),
        ("]".to_string(), "a closing bracket"),
        (" x".to_string(), "a stray word"),
        ("\n\n".to_string(), "white space"),
    ] {
        bodies.push((
            format!("trailing {what}"),
            format!(r#"{{{img},"Labels":{extra}}}{tail}"#),
        ));
    }
    // Host configuration at the top level: Docker up to 26 reads it when HostConfig is absent.
    for key in ["Privileged", "privileged"] {
        bodies.push((
            format!("{key} at the top level"),
            format!(r#"{{{img},"Labels":{allowed},"{key}":true}}"#),
        ));
    }
    bodies.push((
        "Binds at the top level".into(),
        format!(r#"{{{img},"Labels":{allowed},"Binds":["/:/host"]}}"#),
    ));
    bodies.push((
        "HostConfig twice, merged".into(),
        format!(
            r#"{{{img},"Labels":{allowed},"HostConfig":{{"Binds":["/:/host"]}},"HostConfig":{{"Memory":0}}}}"#
        ),
    ));
    bodies.push((
        "HostConfig spelled twice".into(),
        format!(
            r#"{{{img},"Labels":{allowed},"HostConfig":{{"Privileged":false}},"hostconfig":{{"Privileged":true}}}}"#
        ),
    ));
    // Nesting and numbers the guard's reader stops at.
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    bodies.push((
        "300 levels deep under an unknown key, an extra".into(),
        format!(r#"{{{img},"X":{deep},"Labels":{extra}}}"#),
    ));
    bodies.push((
        "300 levels deep under an unknown key, allowed".into(),
        format!(r#"{{{img},"X":{deep},"Labels":{allowed}}}"#),
    ));
    bodies.push((
        "a number out of range under an unknown key".into(),
        format!(r#"{{{img},"X":1e999,"Labels":{extra}}}"#),
    ));
    // Shapes the engine refuses.
    for (body, what) in [
        (format!(r#"{{{img},"Labels":["a"]}}"#), "labels as a list"),
        (
            format!(r#"{{{img},"Labels":{{"{LABEL}":1}}}}"#),
            "a label number",
        ),
        (String::new(), "an empty body"),
        ("null".into(), "null"),
        ("[]".into(), "a list"),
        (format!(r#"{{{img},"Labels":{extra}"#), "cut short"),
    ] {
        bodies.push((what.to_string(), body));
    }
    let mut bytes: Vec<(String, Vec<u8>)> = bodies
        .into_iter()
        .map(|(what, body)| (what, body.into_bytes()))
        .collect();
    // Bytes that are not UTF-8: Go reads them as U+FFFD.
    let mut invalid = format!(r#"{{{img},"Labels":{{{scope},"{OK}":"yes"#).into_bytes();
    invalid.extend(b"\xff\"}}");
    bytes.push(("invalid UTF-8 in a label value".into(), invalid));
    let mut key = format!(r#"{{{img},"Labels":{{{scope},"{OK}"#).into_bytes();
    key.extend(b"\xff\":\"yes\"}}");
    bytes.push(("invalid UTF-8 in a label key".into(), key));
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(format!(r#"{{{img},"Labels":{extra}}}"#).bytes());
    bytes.push(("a byte order mark".into(), bom));
    bytes.push((
        "a lone surrogate in a label value".into(),
        format!(r#"{{{img},"Labels":{{{scope},"{OK}":"\ud800"}}}}"#).into_bytes(),
    ));
    bytes.push((
        "the plain allowed body (a control: never refused)".into(),
        format!(r#"{{{img},"Labels":{allowed}}}"#).into_bytes(),
    ));
    bytes.push((
        "the plain extra (a control: always refused)".into(),
        format!(r#"{{{img},"Labels":{extra}}}"#).into_bytes(),
    ));
    bytes
}

/// What the engine at `engine_socket` created from `body`, removed again.
pub fn truth(engine_socket: &Path, engine: &str, name: &str, body: &[u8]) -> Option<Created> {
    let answer = raw::create(engine_socket, name, body);
    if !answer.ok() {
        return None;
    }
    let created = created(engine, name);
    remove(engine, name);
    created
}

/// The container `name` as the engine at `engine` (`-H`) shows it.
pub fn created(engine: &str, name: &str) -> Option<Created> {
    let out = docker_output(&["-H", engine, "inspect", name]);
    if !out.status.success() {
        return None;
    }
    let json: Value = serde_json::from_slice(&out.stdout).ok()?;
    let c = &json[0];
    Some(Created {
        image: c["Config"]["Image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        labels: c["Config"]["Labels"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        privileged: c["HostConfig"]["Privileged"].as_bool().unwrap_or(false),
        // Host paths only: Podman lists anonymous volumes here too, under generated names.
        binds: Value::Array(
            c["HostConfig"]["Binds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b.as_str().is_some_and(|b| b.starts_with('/')))
                .cloned()
                .collect(),
        ),
    })
}

pub fn remove(engine: &str, name: &str) {
    let _ = docker_output(&["-H", engine, "rm", "-f", "-v", name]);
}

/// Whether the list of the corpus (`sb`'s scope, allow rule `label=OK=yes`) makes `c` an extra.
pub fn is_extra(sb: &Sandbox, c: &Created) -> bool {
    let label = |k: &str| c.labels.get(k).and_then(Value::as_str);
    label(LABEL) == Some(&sb.prefix) && label(OK) != Some("yes")
}

/// An engine's socket (for raw requests) and URL (for the CLI).
pub struct Endpoint<'a> {
    pub socket: &'a Path,
    pub url: &'a str,
}

/// Send each body of the corpus (creates of `image`) to `oracle` (an engine without the guard) and through
/// `guarded` (the guard in front of an engine of the same version, whose URL is `behind`), and
/// check every outcome.
pub fn check_corpus(sb: &Sandbox, image: &str, oracle: Endpoint<'_>, guarded: &Path, behind: &str) {
    let corpus = corpus(sb, image);
    assert!(corpus.len() >= 50, "{} bodies", corpus.len());
    let mut outcomes = Vec::new();
    for (i, (what, body)) in corpus.into_iter().enumerate() {
        let truth = truth(oracle.socket, oracle.url, &sb.name(&format!("t{i}")), &body);
        let name = sb.name(&format!("g{i}"));
        let through_guard = raw::create(guarded, &name, &body);
        let made = created(behind, &name);
        remove(behind, &name);
        let outcome = Outcome {
            what,
            truth,
            through_guard,
        };
        match (&outcome.truth, outcome.through_guard.ok(), &made) {
            // The engine made an extra of it: the guard must have refused, and nothing stays.
            (Some(t), _, _) if is_extra(sb, t) => {
                assert!(
                    !outcome.through_guard.ok() && made.is_none(),
                    "an extra got past the guard: {outcome:#?}, made {made:#?}"
                );
                assert_eq!(outcome.through_guard.status, 403, "{outcome:#?}");
            }
            // Let through: the guard's container is exactly the engine's own reading.
            (Some(t), true, Some(m)) => assert_eq!(m, t, "{outcome:#?}"),
            (_, true, None) => panic!("created, yet nothing is there: {outcome:#?}"),
            (None, true, Some(m)) => {
                panic!("the engine refuses this body, yet the guard made {m:#?}: {outcome:#?}")
            }
            // Refused: the guard reads it otherwise, or not at all.
            (_, false, made) => assert!(made.is_none(), "{outcome:#?}: {made:#?}"),
        }
        outcomes.push(outcome);
    }
    let controls: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.what.contains("a control"))
        .collect();
    assert!(controls[0].through_guard.ok(), "{:#?}", controls[0]);
    assert_eq!(controls[1].through_guard.status, 403, "{:#?}", controls[1]);
    let refused = outcomes.iter().filter(|o| !o.through_guard.ok()).count();
    eprintln!(
        "{} bodies: {} refused by the guard, {} the engine itself refuses",
        outcomes.len(),
        refused,
        outcomes.iter().filter(|o| o.truth.is_none()).count()
    );
}
