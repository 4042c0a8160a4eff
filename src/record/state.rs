//! The state file: the list of allowed containers, the scope and the allow rules.
//!
//! Versioned JSON, written atomically (temporary file, fsync, rename, directory fsync) with mode
//! 0600 because entries carry container environments, which often hold secrets. Loading never
//! modifies the file: a malformed one is reported with its position and left for a human.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::ops::files;
use crate::record::rules::{AllowRule, Claims, Orchestrator, Scope};
use crate::record::shape;
use crate::record::spec::{ContainerSpec, EngineKind};

/// The state file format this build reads and writes.
pub const VERSION: u64 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u64,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// The engine the snapshot was taken from.
    pub engine: EngineInfo,
    /// Label selectors that bound what guestlist manages; empty is the whole host.
    #[serde(default)]
    pub scope: Scope,
    /// Extra containers matching one of these are tolerated.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
    /// The orchestrators besides swarm known to run on this host (`snapshot` finds them, or
    /// `--orchestrator` names them): the containers their labels claim are theirs. Absent from
    /// a list written before guestlist checked such claims, which believes Kubernetes' and
    /// Nomad's labels anywhere, as guestlist did then (`Claims` for the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrators: Option<Vec<Orchestrator>>,
    /// The allowed containers, sorted by name.
    pub containers: Vec<Entry>,
}

/// The engine a state was taken from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineInfo {
    pub endpoint: String,
    /// The engine's id (`docker info` ID); stable across daemon restarts.
    pub id: String,
    /// `Docker` or `Podman`; `""` (none) in a hand-written list.
    #[serde(with = "kind_word")]
    pub kind: Option<EngineKind>,
    pub version: String,
    pub api_version: String,
    pub hostname: String,
}

/// One allowed container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    /// Whether it should be running; `false` for containers recorded stopped with `--all`,
    /// which are recreated when deleted but not started.
    #[serde(default = "yes")]
    pub running: bool,
    pub spec: ContainerSpec,
}

fn yes() -> bool {
    true
}

/// Why a state file could not be loaded; callers branch on `NotFound` to give the next step.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no state file at {0}")]
    NotFound(PathBuf),
    /// The file is there but is not a state this guestlist reads (it is left untouched).
    #[error(transparent)]
    Malformed(anyhow::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The default location: `<user data dir>/guestlist/state.json`.
pub fn default_path() -> Result<PathBuf> {
    Ok(data_dir()?.join("state.json"))
}

/// `<user data dir>/guestlist`, where the state file and the audit log live by default.
pub fn data_dir() -> Result<PathBuf> {
    let base = directories::BaseDirs::new()
        .context("cannot find the user data directory (is HOME set?); pass --state PATH")?;
    Ok(base.data_dir().join("guestlist"))
}

/// Read and validate the state file at `path`, refusing one that others could have written
/// (through a symlink too: see `files::trusted_state`). `check` calls it as well, so that it
/// says what the commands that act would say.
pub fn load(path: &Path) -> Result<State, LoadError> {
    files::trusted_state(path)?;
    read(path)
}

fn read(path: &Path) -> Result<State, LoadError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoadError::NotFound(path.to_path_buf()))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read state file {}", path.display()))
                .into())
        }
    };
    shape::text_of(&bytes)
        .and_then(parse)
        .with_context(|| format!("invalid state file {}", path.display()))
        .map_err(LoadError::Malformed)
}

/// Parse state file text. The version is checked before the rest so that a file from a newer
/// guestlist says so instead of failing on a field this build does not know.
pub fn parse(text: &str) -> Result<State> {
    #[derive(Deserialize)]
    struct Versioned {
        version: Option<serde_json::Value>,
    }
    shape::one_object(text)?;
    let probe: Versioned = serde_json::from_str(text).map_err(located)?;
    match probe.version {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => bail!(
            "unsupported version {v}: this guestlist reads version {VERSION}; use the guestlist \
             that wrote it, or take a new snapshot with `guestlist snapshot --force`"
        ),
        None => bail!(
            "missing \"version\": this guestlist reads version {VERSION}; is this a guestlist \
             state file?"
        ),
    }
    let mut state: State = serde_json::from_str(text).map_err(located)?;
    // A name written as `docker inspect` shows it (`/web`) is the name the engine gives
    // (`web`): compared as written, every pass would remove `web` and create `/web` again.
    for entry in &mut state.containers {
        if let Some(bare) = entry.name.strip_prefix('/') {
            entry.name = bare.to_string();
        }
    }
    shape::unique_names(text, &state)?;
    validate(&state)?;
    check_entries(text, &state)?;
    for entry in &mut state.containers {
        crate::record::spec::normalize(&entry.name, &mut entry.spec);
    }
    Ok(state)
}

/// Refuse entries a create request could not carry as written (`schema`) or the engine would
/// refuse (`validate`), naming every field at fault with its line and column.
fn check_entries(text: &str, state: &State) -> Result<()> {
    let entries: Vec<(String, &ContainerSpec)> = state
        .containers
        .iter()
        .map(|e| (e.name.clone(), &e.spec))
        .collect();
    let mut problems = crate::record::schema::check(&entries);
    problems.extend(crate::record::validate::check(&entries, state.engine.kind));
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let at = match crate::record::schema::locate(text, p) {
                Some((line, column)) => format!("line {line} column {column}: "),
                None => String::new(),
            };
            format!(
                "{at}container {}: {}: {}",
                p.container,
                p.field(),
                p.message
            )
        })
        .collect();
    bail!("{}", lines.join("\n"))
}

fn located(e: serde_json::Error) -> anyhow::Error {
    anyhow::anyhow!("line {} column {}: {e:#}", e.line(), e.column())
}

fn validate(state: &State) -> Result<()> {
    if let Some(e) = state.containers.iter().find(|e| e.name.is_empty()) {
        bail!(
            "a container entry has an empty name (image {}); edit the file to name it",
            e.spec.image
        );
    }
    Ok(())
}

/// Write `state` to `path` atomically with mode 0600, creating the directory (0700) if needed.
/// A reader sees the old file or the new one, never a mix; a crash never leaves an empty file.
pub fn save(path: &Path, state: &State) -> Result<()> {
    let mut json = serde_json::to_string_pretty(state).context("cannot serialize the state")?;
    json.push('\n');
    files::write_private_through(path, json.as_bytes())
        .with_context(|| format!("cannot write state file {}", path.display()))
}

/// `engine.kind` as the file has always spelled it: the variant's name, read back by prefix
/// (older versions wrote what the engine called itself, such as `Podman Engine`).
mod kind_word {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::record::spec::EngineKind;

    pub fn serialize<S: Serializer>(kind: &Option<EngineKind>, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_str(kind.map_or("", EngineKind::word))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<EngineKind>, D::Error> {
        Ok(EngineKind::named(&String::deserialize(from)?))
    }
}

impl State {
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.containers.iter().find(|e| e.name == name)
    }

    /// Add or replace entries by name, keeping the list sorted.
    pub fn upsert(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            self.containers.retain(|e| e.name != entry.name);
            self.containers.push(entry);
        }
        self.containers.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Whose orchestrator claims this list believes, swarm's aside (the engine says whether a
    /// swarm is active: `observe` asks).
    pub fn claims(&self) -> Claims {
        let named = |o| {
            self.orchestrators
                .as_ref()
                .is_none_or(|known| known.contains(&o))
        };
        Claims {
            swarm: false,
            kubernetes: named(Orchestrator::Kubernetes),
            nomad: named(Orchestrator::Nomad),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_name_is_read_as_the_engine_names_it_or_refused() {
        let text = serde_json::to_string(&sample()).unwrap();
        let slashed = text.replace(r#""name":"web""#, r#""name":"/web""#);
        assert_ne!(slashed, text);
        assert_eq!(parse(&slashed).unwrap().containers[0].name, "web");
        for bad in ["we b", "web!", "..", "-web", "w", "//web"] {
            let named = text.replace(r#""name":"web""#, &format!(r#""name":{bad:?}"#));
            let err = format!("{:#}", parse(&named).unwrap_err());
            assert!(err.contains("refuses this name"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_list_believes_the_orchestrators_it_names_and_an_older_one_those_it_did() {
        let mut state = sample();
        assert!(
            state.orchestrators.is_none(),
            "written before claims were checked"
        );
        let believed = state.claims();
        assert!(believed.kubernetes && believed.nomad && !believed.swarm);
        state.orchestrators = Some(vec![Orchestrator::Nomad]);
        let believed = state.claims();
        assert!(!believed.kubernetes && believed.nomad);
        let text = serde_json::to_string(&state).unwrap();
        assert!(text.contains(r#""orchestrators":["nomad"]"#), "{text}");
        assert_eq!(parse(&text).unwrap().orchestrators, state.orchestrators);
        state.orchestrators = Some(Vec::new());
        assert_eq!(state.claims(), Claims::default());
        let swarm = text.replace(r#"["nomad"]"#, r#"["swarm"]"#);
        let err = format!("{:#}", parse(&swarm).unwrap_err());
        assert!(err.contains("active swarm"), "{err}");
    }

    fn sample() -> State {
        let text = r#"{
          "version": 1,
          "taken_at": "2026-11-25T12:00:00Z",
          "engine": {"endpoint": "unix:///var/run/docker.sock", "id": "X", "kind": "Docker",
                     "version": "20.10.24", "api_version": "1.41", "hostname": "h"},
          "scope": ["label=team=web"],
          "allow": ["name=ci-*"],
          "containers": [
            {"name": "web", "spec": {"image": "nginx:1", "image_id":
             "sha256:1111111111111111111111111111111111111111111111111111111111111111",
             "config": {"Env": ["A=1"]}}}
          ]
        }"#;
        parse(text).unwrap()
    }

    #[test]
    fn parse_fills_defaults_and_keeps_rules() {
        let state = sample();
        assert!(state.containers[0].running);
        assert_eq!(
            state.scope.selectors().next().unwrap().to_string(),
            "label=team=web"
        );
        assert_eq!(state.allow[0].to_string(), "name=ci-*");
    }

    #[test]
    fn save_then_load_round_trips_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        let state = sample();
        save(&path, &state).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.containers, state.containers);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn files_and_directories_others_can_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private").join("state.json");
        save(&path, &sample()).unwrap();
        let chmod = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode));
        let refused = |what: &str| {
            let err = format!("{:#}", anyhow::Error::from(load(&path).unwrap_err()));
            assert!(err.contains(what), "{err}");
            assert!(err.contains("chmod go-w"), "{err}");
        };

        chmod(&path, 0o620).unwrap();
        refused("writable by its group (mode 620)");
        chmod(&path, 0o646).unwrap();
        refused("writable by others");
        chmod(&path, 0o644).unwrap();
        load(&path).unwrap();

        let parent = path.parent().unwrap();
        chmod(parent, 0o777).unwrap();
        refused("state directory");
        assert!(
            save(&path, &sample()).is_err(),
            "saved into a world-writable directory"
        );
        chmod(parent, 0o755).unwrap();
        load(&path).unwrap();
    }

    #[test]
    fn a_reader_never_sees_a_partial_file_while_it_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let small = sample();
        let mut big = sample();
        big.upsert((0..300).map(|i| Entry {
            name: format!("c{i}"),
            ..small.containers[0].clone()
        }));
        save(&path, &small).unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    save(&path, if i % 2 == 0 { &big } else { &small }).unwrap();
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() {
            let n = load(&path).unwrap().containers.len();
            assert!(n == 1 || n == 301, "read a state with {n} containers");
            reads += 1;
        }
        writer.join().unwrap();
        assert!(reads > 0);
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let err = load(Path::new("/nonexistent/guestlist/state.json")).unwrap_err();
        assert!(matches!(err, LoadError::NotFound(_)));
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err = parse("{\n  \"version\": 1,\n  oops\n}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3 column 3"), "{err}");
    }

    #[test]
    fn other_versions_and_unknown_fields_are_refused() {
        let err = parse(r#"{"version": 2}"#).unwrap_err().to_string();
        assert!(err.contains("unsupported version 2"), "{err}");
        let err = parse(r#"{"containers": []}"#).unwrap_err().to_string();
        assert!(err.contains("missing \"version\""), "{err}");
        let mut json = serde_json::to_value(sample()).unwrap();
        json["surprise"] = serde_json::json!(1);
        let err = parse(&json.to_string()).unwrap_err().to_string();
        assert!(err.contains("unknown field `surprise`"), "{err}");
    }

    /// Any JSON value, nested a few levels: what a hand edit or a corrupted file could hold.
    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A case `garbage_is_an_error_never_a_panic` found, kept as a plain test (proptest's own
    /// regression files are not kept in the repository: see .gitignore).
    #[test]
    fn a_byte_order_mark_alone_is_refused_saying_where() {
        let message = parse("\u{feff}").expect_err("a BOM parsed").to_string();
        assert!(
            message.contains("line ") || message.contains("version"),
            "{message}"
        );
    }

    proptest::proptest! {
        #[test]
        fn garbage_is_an_error_never_a_panic(text in ".{0,200}") {
            let err = parse(&text).expect_err("garbage parsed as a state file");
            // Every refusal says where, or what is missing: never a bare serde message.
            let message = err.to_string();
            proptest::prop_assert!(
                message.contains("line ") || message.contains("version"),
                "{message}"
            );
        }

        #[test]
        fn a_truncated_state_file_is_an_error(fraction in 0.0f64..1.0) {
            let text = serde_json::to_string_pretty(&sample()).unwrap();
            let cut = (text.len() as f64 * fraction) as usize;
            proptest::prop_assert!(parse(&text[..cut]).is_err());
        }

        #[test]
        fn a_flipped_byte_never_panics(position in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
            let mut bytes = serde_json::to_vec_pretty(&sample()).unwrap();
            let at = position % bytes.len();
            bytes[at] = byte;
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn any_value_anywhere_never_panics_the_parser_or_the_planner(
            path in proptest::sample::select(FIELDS.to_vec()),
            value in any_json(),
        ) {
            let mut json = serde_json::to_value(sample()).unwrap();
            let mut at = &mut json;
            for key in path.split('/') {
                at = match key.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[key],
                };
            }
            *at = value;
            // What parses must also plan and turn into create requests without panicking:
            // a hand-edited state file reaches all of them.
            if let Ok(state) = parse(&json.to_string()) {
                let _ = crate::plan::plan(&state, &[]);
                for entry in &state.containers {
                    let _ = crate::record::spec::create_body(&entry.spec, "image");
                    let _ = crate::record::spec::diff(&entry.spec, &entry.spec);
                    let _ = crate::record::spec::network_attachments(&entry.spec);
                }
            }
        }
    }

    /// Where `any_value_anywhere...` puts its values: every level of the file, and the fields
    /// the planner and the create request read.
    const FIELDS: [&str; 24] = [
        "version",
        "taken_at",
        "engine",
        "scope",
        "scope/0",
        "allow",
        "allow/0",
        "containers",
        "containers/0",
        "containers/0/name",
        "containers/0/running",
        "containers/0/spec",
        "containers/0/spec/image",
        "containers/0/spec/config",
        "containers/0/spec/config/Env",
        "containers/0/spec/config/ExposedPorts",
        "containers/0/spec/host_config",
        "containers/0/spec/host_config/NetworkMode",
        "containers/0/spec/host_config/VolumesFrom",
        "containers/0/spec/host_config/Links",
        "containers/0/spec/host_config/PortBindings",
        "containers/0/spec/host_config/Mounts",
        "containers/0/spec/networks",
        "containers/0/spec/anonymous_volumes",
    ];

    #[test]
    fn duplicate_names_are_refused() {
        let mut state = sample();
        state.containers.push(state.containers[0].clone());
        let err = parse(&serde_json::to_string(&state).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn upsert_replaces_by_name_and_sorts() {
        let mut state = sample();
        let mut db = state.containers[0].clone();
        db.name = "db".into();
        let mut web = state.containers[0].clone();
        web.running = false;
        state.upsert([web, db]);
        let names: Vec<_> = state.containers.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);
        assert!(!state.entry("web").unwrap().running);
    }
}
