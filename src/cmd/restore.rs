//! `guestlist restore [NAME...]`: the way back from a removal. Without names, list what the
//! audit log can bring back; with names, put each container's last removed configuration back on
//! the list, so the next pass recreates it exactly as it was (volumes included: they were
//! never removed).

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};

use super::{print, Outcome, Settings};
use crate::cli::RestoreArgs;
use crate::error::Hint;
use crate::observe;
use crate::ops::audit::{self, Record};
use crate::record::state::{self, Entry};

pub async fn run(settings: &Settings, args: RestoreArgs) -> Result<Outcome> {
    let records = read(settings)?;
    let removals = audit::removals(&records);
    if args.names.is_empty() {
        print(&listing(settings, &removals));
        return Ok(Outcome::Clean);
    }
    let _lock = settings.lock().await?;
    let mut state = settings.load_state()?;
    let engine = settings.connect_for(&state).await?;
    let mut restored = Vec::new();
    for name in &args.names {
        let record = removals
            .iter()
            .find(|r| r.container.as_deref() == Some(name.as_str()))
            .ok_or_else(|| {
                anyhow!(
                    "no removal of {name} in the audit log {} (nothing was changed)",
                    settings.audit_path.display()
                )
            })
            .context(Hint(
                "`guestlist restore` without names lists what can be restored".into(),
            ))?;
        let inspect = record.inspect.as_ref().unwrap_or(&serde_json::Value::Null);
        let labels: HashMap<String, String> =
            serde_json::from_value(inspect["Config"]["Labels"].clone()).unwrap_or_default();
        if !state.scope.contains(&labels) {
            bail!(
                "{name} as removed at {} is outside the scope of {}: guestlist would not see it \
                 after creating it (nothing was changed)",
                record.time,
                settings.state_path.display()
            );
        }
        let spec = observe::capture_recorded(&engine, inspect)
            .await
            .with_context(|| format!("cannot read the recorded configuration of {name}"))?;
        let running = inspect["State"]["Running"].as_bool().unwrap_or(true);
        restored.push((
            Entry {
                name: name.clone(),
                running,
                spec,
            },
            *record,
        ));
    }
    let mut out = String::new();
    for (entry, record) in &restored {
        out += &format!(
            "restored {} to the list as it was removed at {} ({}: {})\n",
            entry.name, record.time, record.action, record.reason
        );
    }
    state.upsert(restored.into_iter().map(|(entry, _)| entry));
    state::save(&settings.state_path, &state)?;
    out += &format!(
        "wrote {}: {} containers allowed; `guestlist enforce` creates what is missing\n",
        settings.state_path.display(),
        state.containers.len()
    );
    print(&out);
    Ok(Outcome::Clean)
}

fn read(settings: &Settings) -> Result<Vec<Record>> {
    let path = &settings.audit_path;
    if !path.exists() {
        return Err(anyhow!("no audit log at {}", path.display())).context(Hint(
            "nothing was removed by guestlist with this audit log; pass --audit-log PATH if it \
             is elsewhere"
                .into(),
        ));
    }
    let (records, skipped) = audit::read(path)?;
    if skipped > 0 {
        crate::ops::log::warning(&format!(
            "skipped {skipped} unreadable lines in {}",
            path.display()
        ));
    }
    Ok(records)
}

fn listing(settings: &Settings, removals: &[&Record]) -> String {
    if removals.is_empty() {
        return format!(
            "no removals in {}: nothing to restore\n",
            settings.audit_path.display()
        );
    }
    let width = removals
        .iter()
        .filter_map(|r| r.container.as_ref().map(String::len))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for r in removals {
        let name = r.container.as_deref().unwrap_or_default();
        let id = r.id.as_deref().unwrap_or_default();
        out += &format!(
            "{name:width$}  removed {} ({}: {}), id {}\n",
            r.time,
            r.action,
            r.reason,
            id.get(..12).unwrap_or(id)
        );
    }
    out += "restore one with `guestlist restore NAME`, then `guestlist enforce`\n";
    out
}
