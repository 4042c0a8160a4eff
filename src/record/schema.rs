//! The record checked like code: every entry's `config`, `host_config` and network endpoint
//! settings against what a create request can carry, so that a hand edit with a typo is refused
//! with its place and the field it meant, instead of being taken silently (the setting it meant
//! lost, and the container replaced on every pass because the engine never reports the typo).
//!
//! What a create request can carry is bollard's model of the Engine API: its types only, never
//! its client. Pure: no IO.

use std::borrow::Cow;

use bollard::models::{
    ContainerConfig, DeviceMapping, DeviceRequest, EndpointIpamConfig, EndpointSettings,
    HealthConfig, HostConfig, HostConfigLogConfig, Mount, MountBindOptions, MountTmpfsOptions,
    MountVolumeOptions, MountVolumeOptionsDriverConfig, PortBinding, ResourcesBlkioWeightDevice,
    ResourcesUlimits, RestartPolicy, ThrottleDevice,
};
use serde::de::DeserializeOwned;
use serde_aux::serde_introspection::serde_introspect;
use serde_json::{Map, Value};

use crate::record::spec::{ContainerSpec, ENDPOINT_FIELDS};

/// One step into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// What is wrong with one field of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry's position among the state's containers, and its name.
    pub entry: usize,
    pub container: String,
    /// From the entry's `spec`: `host_config`, `Memroy`.
    pub at: Vec<Step>,
    pub message: String,
    /// Whether `at` starts at the entry itself (its `name`) rather than at its `spec`.
    pub outside_spec: bool,
}

impl Problem {
    /// `host_config.RestartPolicy.Name`, `host_config.Mounts[0].Target`.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for step in &self.at {
            match step {
                Step::Key(key) if out.is_empty() => out += key,
                Step::Key(key) => out += &format!(".{key}"),
                Step::Index(i) => out += &format!("[{i}]"),
            }
        }
        out
    }
}

/// Config fields a record never holds: the image comes from the entry's `image`, and the rest
/// describe how a client attached, not how the container runs (`spec::capture` drops them
/// from what it reads, so a hand-written one would differ from the live container forever).
const CONFIG_NOT_RECORDED: &[(&str, &str)] = &[
    (
        "Image",
        "the image is the entry's `image` (and `image_id`), not a config field",
    ),
    (
        "AttachStdin",
        "it says how a client attached, not how the container runs",
    ),
    (
        "AttachStdout",
        "it says how a client attached, not how the container runs",
    ),
    (
        "AttachStderr",
        "it says how a client attached, not how the container runs",
    ),
    ("ArgsEscaped", "it is Windows-only bookkeeping of the image"),
    ("OnBuild", "it belongs to images, not containers"),
];
const HOST_NOT_RECORDED: &[(&str, &str)] = &[
    (
        "ConsoleSize",
        "it is the terminal size of whoever ran `docker run`",
    ),
    (
        "ContainerIDFile",
        "it is a file of the docker CLI, not of the engine",
    ),
];
/// Endpoint fields the engine fills in when the container starts: never user intent.
const ENDPOINT_RUNTIME: &str = "it is assigned by the engine when the container starts and is \
     not recorded (an address to ask for goes in IPAMConfig.IPv4Address)";

const MAC_ON_PRIMARY_ONLY: &str = "a MAC address is recorded on the network the container is \
     created on only (host_config.NetworkMode, else bridge): on any other network the engine \
     reports a set address and a generated one alike, so a pass could never tell them apart";

/// Every problem in the entries of a state file; empty when all are valid.
pub fn check(containers: &[(String, &ContainerSpec)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (entry, (container, spec)) in containers.iter().enumerate() {
        let mut found = |at: Vec<Step>, message: String| {
            problems.push(Problem {
                entry,
                container: container.clone(),
                at,
                message,
                outside_spec: false,
            })
        };
        let parts = [
            ("config", &spec.config, CONFIG_NOT_RECORDED),
            ("host_config", &spec.host_config, HOST_NOT_RECORDED),
        ];
        for (part, fields, not_recorded) in parts {
            let root = vec![Step::Key(part.into())];
            for (key, why) in not_recorded.iter().filter(|(k, _)| fields.contains_key(*k)) {
                found(with(&root, key), format!("`{key}` is not recorded: {why}"));
            }
            let typed = match part {
                "config" => typed::<ContainerConfig>(fields),
                _ => typed::<HostConfig>(fields),
            };
            for (at, message) in typed {
                found([root.clone(), at].concat(), message);
            }
        }
        let primary = crate::record::spec::primary_network(&spec.host_config);
        for (network, endpoint) in &spec.networks {
            let root = vec![Step::Key("networks".into()), Step::Key(network.clone())];
            if endpoint.contains_key("MacAddress") && primary != Some(network.as_str()) {
                found(with(&root, "MacAddress"), MAC_ON_PRIMARY_ONLY.to_string());
            }
            for key in endpoint
                .keys()
                .filter(|k| !ENDPOINT_FIELDS.contains(&k.as_str()))
            {
                let message = match serde_introspect::<EndpointSettings>().contains(&key.as_str()) {
                    true => format!("`{key}` is not recorded: {ENDPOINT_RUNTIME}"),
                    false => unknown(key, ENDPOINT_FIELDS),
                };
                found(with(&root, key), message);
            }
            let recorded: Map<String, Value> = endpoint
                .iter()
                .filter(|(k, _)| ENDPOINT_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (at, message) in typed::<EndpointSettings>(&recorded) {
                found([root.clone(), at].concat(), message);
            }
        }
    }
    problems
}

fn with(root: &[Step], key: &str) -> Vec<Step> {
    let mut at = root.to_vec();
    at.push(Step::Key(key.to_string()));
    at
}

/// Deserialize `fields` as `T`, as a create request would be built from them: each field `T`
/// has no place for, and the first value of the wrong type, as a problem.
fn typed<T: DeserializeOwned>(fields: &Map<String, Value>) -> Vec<(Vec<Step>, String)> {
    let value = Value::Object(fields.clone());
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| ignored.push(steps_of(&path));
    let deserializer = serde_ignored::Deserializer::new(&value, &mut note);
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(deserializer) {
        let at = e
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                _ => None,
            })
            .collect();
        problems.push((at, e.into_inner().to_string()));
    }
    for at in ignored {
        let Some(Step::Key(key)) = at.last() else {
            continue;
        };
        let message = unknown(key, known_fields::<T>(&at));
        problems.push((at, message));
    }
    problems
}

/// A `serde_ignored` path as steps from the deserialized value.
fn steps_of(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => [steps_of(parent), vec![Step::Index(*index)]].concat(),
        Path::Map { parent, key } => [steps_of(parent), vec![Step::Key(key.clone())]].concat(),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => steps_of(parent),
    }
}

/// The fields of the object an unknown field `at` was found in, for the suggestion: the type
/// of the nearest enclosing field whose type is known here, else `T`'s own.
fn known_fields<T: DeserializeOwned>(at: &[Step]) -> &'static [&'static str] {
    let parents = at[..at.len().saturating_sub(1)].iter().rev();
    for step in parents {
        let Step::Key(key) = step else { continue };
        let fields = match key.as_str() {
            "Healthcheck" => serde_introspect::<HealthConfig>(),
            "RestartPolicy" => serde_introspect::<RestartPolicy>(),
            "LogConfig" => serde_introspect::<HostConfigLogConfig>(),
            "Mounts" => serde_introspect::<Mount>(),
            "BindOptions" => serde_introspect::<MountBindOptions>(),
            "VolumeOptions" => serde_introspect::<MountVolumeOptions>(),
            "DriverConfig" => serde_introspect::<MountVolumeOptionsDriverConfig>(),
            "TmpfsOptions" => serde_introspect::<MountTmpfsOptions>(),
            "Ulimits" => serde_introspect::<ResourcesUlimits>(),
            "Devices" => serde_introspect::<DeviceMapping>(),
            "DeviceRequests" => serde_introspect::<DeviceRequest>(),
            "PortBindings" => serde_introspect::<PortBinding>(),
            "IPAMConfig" => serde_introspect::<EndpointIpamConfig>(),
            "BlkioWeightDevice" => serde_introspect::<ResourcesBlkioWeightDevice>(),
            k if k.starts_with("BlkioDevice") => serde_introspect::<ThrottleDevice>(),
            _ => continue,
        };
        return fields;
    }
    serde_introspect::<T>()
}

/// "unknown field `Memroy`; did you mean `Memory`?", when one known field is near enough.
fn unknown(key: &str, known: &[&str]) -> String {
    match nearest(key, known) {
        Some(near) => format!("unknown field `{key}`; did you mean `{near}`?"),
        None => format!("unknown field `{key}`: a create request has no such field"),
    }
}

/// The known name nearest to `key`, ignoring case, if it is near enough to be what was meant.
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&lower, &k.to_lowercase()), *k))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Where `problem` is in the state file's `text`, as (line, column), both from 1: the field's
/// name, or as near to it as the file goes. `None` if the text does not parse.
pub fn locate(text: &str, problem: &Problem) -> Option<(usize, usize)> {
    let mut path = vec![Step::Key("containers".into()), Step::Index(problem.entry)];
    if !problem.outside_spec {
        path.push(Step::Key("spec".into()));
    }
    path.extend(problem.at.iter().cloned());
    locate_path(text, &path)
}

/// Where the name of entry `entry` (from 0) is in the state file's `text`.
pub fn locate_name(text: &str, entry: usize) -> Option<(usize, usize)> {
    let path = [
        Step::Key("containers".into()),
        Step::Index(entry),
        Step::Key("name".into()),
    ];
    locate_path(text, &path)
}

fn locate_path(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    use jsonc_parser::ast::Value as Node;
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default()).ok()?;
    let mut node = parsed.value?;
    let mut at = 0;
    for step in path {
        let next = match (step, node) {
            (Step::Key(key), Node::Object(object)) => object
                .properties
                .into_iter()
                .find(|p| p.name.as_str() == key)
                .map(|p| (p.range.start, p.value)),
            (Step::Index(i), Node::Array(array)) => {
                array.elements.into_iter().nth(*i).map(|v| (start(&v), v))
            }
            _ => None,
        };
        let Some((position, value)) = next else { break };
        at = position;
        node = value;
    }
    Some(line_and_column(text, at))
}

fn start(node: &jsonc_parser::ast::Value<'_>) -> usize {
    use jsonc_parser::ast::Value as Node;
    match node {
        Node::StringLit(v) => v.range.start,
        Node::NumberLit(v) => v.range.start,
        Node::BooleanLit(v) => v.range.start,
        Node::Object(v) => v.range.start,
        Node::Array(v) => v.range.start,
        Node::NullKeyword(v) => v.range.start,
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before: Cow<str> = String::from_utf8_lossy(&text.as_bytes()[..offset.min(text.len())]);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> ContainerSpec {
        serde_json::from_value(value).unwrap()
    }

    fn problems(spec: &ContainerSpec) -> Vec<(String, String)> {
        check(&[("web".to_string(), spec)])
            .into_iter()
            .map(|p| (p.field(), p.message))
            .collect()
    }

    #[test]
    fn a_typo_is_refused_with_the_field_it_meant() {
        let s = spec(json!({"image": "i", "image_id": "sha256:1",
            "host_config": {"Memroy": 67108864, "RestartPolicy": {"Nmae": "always"}},
            "config": {"Enviroment": ["A=1"]}}));
        assert_eq!(
            problems(&s),
            [
                (
                    "config.Enviroment".to_string(),
                    "unknown field `Enviroment`: a create request has no such field".to_string()
                ),
                (
                    "host_config.Memroy".into(),
                    "unknown field `Memroy`; did you mean `Memory`?".into()
                ),
                (
                    "host_config.RestartPolicy.Nmae".into(),
                    "unknown field `Nmae`; did you mean `Name`?".into()
                ),
            ]
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let s = spec(json!({"image": "i", "image_id": "sha256:1",
            "host_config": {"Memory": "lots", "Mounts": [{"Target": "/x", "ReadOnly": "yes"}]}}));
        let found = problems(&s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "host_config.Memory");
        assert!(found[0].1.contains("invalid type"), "{found:?}");
        let s = spec(json!({"image": "i", "image_id": "sha256:1",
            "host_config": {"RestartPolicy": {"Name": "sometimes"}}}));
        let found = problems(&s);
        assert_eq!(found[0].0, "host_config.RestartPolicy.Name", "{found:?}");
        assert!(
            found[0].1.contains("unknown variant `sometimes`"),
            "{found:?}"
        );
    }

    #[test]
    fn nested_typos_are_found_in_lists_and_suggested_from_their_own_type() {
        let s = spec(json!({"image": "i", "image_id": "sha256:1",
            "host_config": {"Mounts": [{"Type": "bind", "Source": "/a", "Traget": "/b"}],
                            "PortBindings": {"80/tcp": [{"HostIP": "127.0.0.1"}]}}}));
        assert_eq!(
            problems(&s),
            [
                (
                    "host_config.Mounts[0].Traget".to_string(),
                    "unknown field `Traget`; did you mean `Target`?".to_string()
                ),
                (
                    "host_config.PortBindings.80/tcp[0].HostIP".into(),
                    "unknown field `HostIP`; did you mean `HostIp`?".into()
                ),
            ]
        );
    }

    #[test]
    fn a_mac_address_is_recorded_on_the_primary_network_only() {
        let s = spec(json!({"image": "i", "image_id": "sha256:1",
            "host_config": {"NetworkMode": "front"},
            "networks": {"front": {"MacAddress": "02:42:ac:11:00:99"},
                         "back": {"MacAddress": "02:42:ac:11:00:98"}}}));
        let found = problems(&s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "networks.back.MacAddress");
        assert!(found[0].1.contains("created on only"), "{found:?}");
        let on_bridge = spec(json!({"image": "i", "image_id": "sha256:1",
            "networks": {"bridge": {"MacAddress": "02:42:ac:11:00:99"}}}));
        assert_eq!(problems(&on_bridge), []);
    }

    #[test]
    fn network_endpoints_hold_only_what_is_recorded() {
        let s = spec(
            json!({"image": "i", "image_id": "sha256:1", "networks": {"front": {
            "Aliases": ["web"], "IPAddress": "10.0.0.5", "Alaises": ["x"],
            "IPAMConfig": {"IPv4Adress": "10.0.0.5"}}}}),
        );
        let found = problems(&s);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, "networks.front.Alaises");
        assert!(found[0].1.contains("did you mean `Aliases`?"), "{found:?}");
        assert_eq!(found[1].0, "networks.front.IPAddress");
        assert!(found[1].1.contains("IPAMConfig.IPv4Address"), "{found:?}");
        assert_eq!(found[2].0, "networks.front.IPAMConfig.IPv4Adress");
        assert!(
            found[2].1.contains("did you mean `IPv4Address`?"),
            "{found:?}"
        );
    }

    #[test]
    fn fields_a_record_never_holds_are_refused_and_what_capture_writes_passes() {
        let s = spec(json!({"image": "i", "image_id": "sha256:1",
            "config": {"Image": "other", "Env": ["A=1"], "StopTimeout": 0,
                       "Healthcheck": {"Test": ["NONE"]}, "ExposedPorts": {"80/tcp": {}}},
            "host_config": {"ConsoleSize": [0, 0], "Init": false, "Memory": 1,
                            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]}},
            "networks": {"front": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "1.2.3.4"}}}}));
        let found = problems(&s);
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["config.Image", "host_config.ConsoleSize"],
            "{found:?}"
        );
    }

    #[test]
    fn problems_are_located_by_line_and_column() {
        let text = "{\"containers\": [\n  {\"name\": \"a\", \"spec\": {}},\n  {\"name\": \"web\", \"spec\": {\n    \"host_config\": {\"Memroy\": 1}}}]}";
        let problem = Problem {
            entry: 1,
            container: "web".into(),
            at: vec![Step::Key("host_config".into()), Step::Key("Memroy".into())],
            message: String::new(),
            outside_spec: false,
        };
        assert_eq!(locate(text, &problem), Some((4, 21)));
    }
}
