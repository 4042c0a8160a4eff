//! The audit log: what every pass did, as JSON lines appended to one file, and the way back from
//! a removal (`guestlist restore`). Report stage: it records actions, it decides nothing.
//!
//! Before a container is removed (an extra, or the old container of a replacement) its whole
//! `docker inspect` is appended and synced to disk; only then is it removed, so no removal can
//! happen that the log does not hold. Every action then gets a record with its result. The log
//! holds container environments like the state file does: it is created 0600 in a 0700
//! directory. It only grows; rotate it with logrotate (`copytruncate` is safe: writes append).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::Action;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Groups the records of one pass: `<pid>-<unix milliseconds at its start>`.
    pub pass: String,
    pub action: RecordAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The id of the existing container the action concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why: missing, stopped, changed ..., extra (image ...), or why a pass refused.
    pub reason: String,
    pub result: RecordResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The container's full `docker inspect`, on `removing` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<Value>,
    /// The engine API request the guard refused, on `request` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSeen>,
}

/// An engine API request as the guard saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSeen {
    pub method: String,
    /// The path with its query, as sent.
    pub path: String,
    /// The client's process, from the socket's peer credentials (the proxy); an authorization
    /// plugin is told no client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The user the engine authenticated (TLS client certificates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// What a record is about: an action, or a pass that refused to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordAction {
    Create,
    Start,
    Replace,
    Remove,
    /// A container an interrupted replacement set aside, given its name back.
    #[serde(rename = "put_back")]
    PutBack,
    Pass,
    /// An engine API request that `guestlist guard` judged.
    Request,
}

impl From<&Action> for RecordAction {
    fn from(action: &Action) -> RecordAction {
        match action {
            Action::Create { .. } => RecordAction::Create,
            Action::Start { .. } => RecordAction::Start,
            Action::Replace { .. } | Action::Finish { .. } => RecordAction::Replace,
            Action::Remove { .. } => RecordAction::Remove,
            Action::PutBack { .. } => RecordAction::PutBack,
        }
    }
}

impl fmt::Display for RecordAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            RecordAction::Create => "create",
            RecordAction::Start => "start",
            RecordAction::Replace => "replace",
            RecordAction::Remove => "remove",
            RecordAction::PutBack => "put back",
            RecordAction::Pass => "pass",
            RecordAction::Request => "request",
        };
        f.write_str(word)
    }
}

/// Where an action stands when a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordResult {
    /// Written before a removal, with the container's `inspect`.
    Removing,
    Ok,
    Failed,
    /// Failed because it was planned from a view that changed since; planned again.
    Outdated,
    /// The pass did nothing: it would have removed too much; or the guard refused a request.
    Refused,
    /// The guard would have refused the request, and let it through (`guard --dry-run`).
    #[serde(rename = "would_refuse")]
    WouldRefuse,
}

/// Where one process writes its records.
#[derive(Debug, Clone)]
pub struct Audit {
    path: PathBuf,
    pass: String,
}

/// The default location: `<user data dir>/guestlist/audit.jsonl`.
pub fn default_path() -> Result<PathBuf> {
    Ok(crate::record::state::data_dir()?.join("audit.jsonl"))
}

impl Audit {
    /// Records of one pass, to the log at `path`.
    pub fn new(path: PathBuf) -> Audit {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Audit {
            path,
            pass: format!("{}-{started}", std::process::id()),
        }
    }

    /// Keep the container's `inspect` before `action` removes it. Synced to disk before it
    /// returns: the removal must not happen unless this succeeded.
    pub async fn removing(&self, action: &Action, id: &str, inspect: Value) -> Result<()> {
        let mut record = self.record(action, RecordResult::Removing);
        record.id = Some(id.to_string());
        record.inspect = Some(inspect);
        self.append(&record, true).await
    }

    /// The result of `action`; `outdated` when it failed because it was planned from a view
    /// that changed since, and is planned again.
    pub async fn result(
        &self,
        action: &Action,
        outcome: &Result<Vec<String>, anyhow::Error>,
        outdated: bool,
    ) -> Result<()> {
        let mut record = match outcome {
            Ok(notes) => Record {
                notes: notes.clone(),
                ..self.record(action, RecordResult::Ok)
            },
            Err(cause) => Record {
                error: Some(format!("{cause:#}")),
                ..self.record(
                    action,
                    match outdated {
                        true => RecordResult::Outdated,
                        false => RecordResult::Failed,
                    },
                )
            },
        };
        record.id = existing_id(action).map(String::from);
        self.append(&record, false).await
    }

    /// A pass that did nothing because it would have removed too much.
    pub async fn refused(&self, why: &str) -> Result<()> {
        let record = Record {
            time: now(),
            pass: self.pass.clone(),
            action: RecordAction::Pass,
            container: None,
            id: None,
            reason: why.into(),
            result: RecordResult::Refused,
            error: None,
            notes: Vec::new(),
            inspect: None,
            request: None,
        };
        self.append(&record, false).await
    }

    /// A request the guard refused (or, with `dry_run`, would have refused), and why.
    pub async fn request_refused(
        &self,
        container: Option<&str>,
        why: &str,
        request: RequestSeen,
        dry_run: bool,
    ) -> Result<()> {
        let record = Record {
            time: now(),
            pass: self.pass.clone(),
            action: RecordAction::Request,
            container: container.map(String::from),
            id: None,
            reason: why.into(),
            result: match dry_run {
                true => RecordResult::WouldRefuse,
                false => RecordResult::Refused,
            },
            error: None,
            notes: Vec::new(),
            inspect: None,
            request: Some(request),
        };
        self.append(&record, false).await
    }

    fn record(&self, action: &Action, result: RecordResult) -> Record {
        Record {
            time: now(),
            pass: self.pass.clone(),
            action: RecordAction::from(action),
            container: Some(action.name().to_string()),
            id: None,
            reason: action.condition(),
            result,
            error: None,
            notes: Vec::new(),
            inspect: None,
            request: None,
        }
    }

    /// Append one record; with `sync`, on disk before this returns. The file work (and its
    /// fsync, which can take tens of milliseconds) runs on the blocking pool, so the actions
    /// in flight and the metrics endpoint go on meanwhile.
    async fn append(&self, record: &Record, sync: bool) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || append_line(&path, line, sync)).await;
        written
            .map_err(anyhow::Error::from)
            .and_then(|r| r)
            .with_context(|| format!("cannot write the audit log {}", self.path.display()))
    }
}

/// Appends of this process, one at a time. Each checks whether the log ends in a torn line (a
/// pass killed mid-write) before it writes; two at once would both see it and both start a new
/// line, leaving an empty one.
static APPENDING: Mutex<()> = Mutex::new(());

fn append_line(path: &Path, mut line: Vec<u8>, sync: bool) -> Result<()> {
    let _one_at_a_time = APPENDING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::ops::files::create_private_dir(dir)?;
        // Appending as root through a symlink planted in a shared directory would write into
        // any file on the host.
        crate::ops::files::trusted(dir, "audit log directory")?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // A crash can leave a torn last line; a record appended to it would be lost with it.
    let len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            line.insert(0, b'\n');
        }
    }
    // One write call per record: appends from concurrent writers never interleave.
    file.write_all(&line)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

fn existing_id(action: &Action) -> Option<&str> {
    match action {
        Action::Create { .. } => None,
        Action::Start { id, .. }
        | Action::Replace { id, .. }
        | Action::Remove { id, .. }
        | Action::PutBack { id, .. }
        | Action::Finish { id, .. } => Some(id),
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Every record in the log at `path`, oldest first. A line that does not parse (a torn last
/// line after a crash, a hand edit) is skipped and counted, never fatal: the rest of the log is
/// still the way back.
pub fn read(path: &Path) -> Result<(Vec<Record>, usize)> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the audit log {}", path.display()))?;
    let mut records = Vec::new();
    let mut skipped = 0;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the audit log {}", path.display()))?;
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => records.push(record),
            Err(_) if line.trim().is_empty() => {}
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

/// The latest removal of each container that has one, by name.
pub fn removals(records: &[Record]) -> Vec<&Record> {
    let mut latest: std::collections::BTreeMap<&str, &Record> = Default::default();
    for record in records.iter().filter(|r| r.inspect.is_some()) {
        if let Some(name) = &record.container {
            latest.insert(name, record);
        }
    }
    latest.into_values().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn remove(name: &str) -> Action {
        Action::Remove {
            name: name.into(),
            id: format!("id-{name}"),
            image: "busybox".into(),
            leftover: None,
        }
    }

    #[tokio::test]
    async fn removals_are_kept_with_their_inspect_and_results_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("audit.jsonl");
        let audit = Audit::new(path.clone());
        let x = remove("x");
        audit
            .removing(&x, "id-x", json!({"Id": "id-x"}))
            .await
            .unwrap();
        audit.result(&x, &Ok(vec![]), false).await.unwrap();
        let start = Action::Start {
            name: "web".into(),
            id: "id-web".into(),
            spec: serde_json::from_str::<crate::record::spec::ContainerSpec>(
                r#"{"image":"i","image_id":"s"}"#,
            )
            .unwrap(),
        };
        audit
            .result(&start, &Err(anyhow::anyhow!("cannot start: boom")), false)
            .await
            .unwrap();
        audit.refused("would remove 12 containers").await.unwrap();

        let (records, skipped) = read(&path).unwrap();
        assert_eq!(skipped, 0);
        let summary: Vec<(RecordAction, RecordResult, &str)> = records
            .iter()
            .map(|r| (r.action, r.result, r.reason.as_str()))
            .collect();
        use {RecordAction as A, RecordResult as R};
        assert_eq!(
            summary,
            [
                (A::Remove, R::Removing, "extra (image busybox)"),
                (A::Remove, R::Ok, "extra (image busybox)"),
                (A::Start, R::Failed, "stopped"),
                (A::Pass, R::Refused, "would remove 12 containers"),
            ]
        );
        assert_eq!(records[0].inspect, Some(json!({"Id": "id-x"})));
        assert_eq!(records[2].error.as_deref(), Some("cannot start: boom"));
        assert!(records.iter().all(|r| r.pass == records[0].pass));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// A pass acts on many containers at once; after a killed pass left a torn line, their
    /// records still start one new line between them, not one each. (Without the lock, a few
    /// of these rounds on this 2-core machine leave an empty line.)
    #[tokio::test]
    async fn concurrent_records_after_a_torn_line_leave_no_empty_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::new(path.clone());
        let actions: Vec<Action> = (0..16).map(|i| remove(&format!("c{i}"))).collect();
        for round in 1..=20 {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(b"{\"time\": \"2026-").unwrap();
            let done = Ok(Vec::new());
            let writes = actions.iter().map(|a| audit.result(a, &done, false));
            for written in futures_util::future::join_all(writes).await {
                written.unwrap();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("\n\n"), "round {round}: an empty line");
            let (records, skipped) = read(&path).unwrap();
            assert_eq!((records.len(), skipped), (16 * round, round));
        }
    }

    #[tokio::test]
    async fn a_torn_line_is_skipped_and_the_latest_removal_per_name_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::new(path.clone());
        audit
            .removing(&remove("x"), "1", json!({"n": 1}))
            .await
            .unwrap();
        audit
            .removing(&remove("y"), "2", json!({"n": 2}))
            .await
            .unwrap();
        audit
            .removing(&remove("x"), "3", json!({"n": 3}))
            .await
            .unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"time\": \"2026-").unwrap();

        audit
            .removing(&remove("z"), "4", json!({"n": 4}))
            .await
            .unwrap();

        let (records, skipped) = read(&path).unwrap();
        assert_eq!(
            (records.len(), skipped),
            (4, 1),
            "the record after a torn line is lost"
        );
        let latest: Vec<(Option<&str>, Option<&str>)> = removals(&records)
            .iter()
            .map(|r| (r.container.as_deref(), r.id.as_deref()))
            .collect();
        assert_eq!(
            latest,
            [
                (Some("x"), Some("3")),
                (Some("y"), Some("2")),
                (Some("z"), Some("4"))
            ]
        );
    }
}
