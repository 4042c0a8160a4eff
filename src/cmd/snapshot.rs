//! `guestlist snapshot`: record the containers running now as the list, or add and refresh the
//! named ones in the existing list (how an operator approves a new or updated container).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

use super::{print, Outcome, Settings};
use crate::cli::SnapshotArgs;
use crate::error::Hint;
use crate::observe::{self, Capture};
use crate::plan::{Observed, REPLACEMENT_SUFFIX, SET_ASIDE_SUFFIX};
use crate::record::rules::{Claims, Orchestrator, Scope};
use crate::record::spec::EngineKind;
use crate::record::state::{self, Entry, LoadError, State, VERSION};

pub async fn run(settings: &Settings, args: SnapshotArgs) -> Result<Outcome> {
    if args.names.is_empty() {
        whole(settings, args).await
    } else {
        named(settings, args).await
    }
}

async fn whole(settings: &Settings, args: SnapshotArgs) -> Result<Outcome> {
    let _lock = settings.lock().await?;
    if settings.state_path.exists() && !args.force {
        return Err(anyhow::anyhow!(
            "state file {} already exists",
            settings.state_path.display()
        ))
        .context(Hint(
            "pass --force to replace it, or name containers to add or refresh just those".into(),
        ));
    }
    let engine = settings.connect().await?;
    let scope = Scope::new(args.scope);
    // Every orchestrator whose containers run here is found by their labels; the list then
    // believes those orchestrators' labels, and no others'.
    let finding = Claims {
        swarm: false,
        kubernetes: true,
        nomad: true,
    };
    let observed = observe::host(&engine, &scope, finding, Capture::All).await?;
    let (observed, managed): (Vec<Observed>, Vec<Observed>) =
        observed.into_iter().partition(|o| o.managed.is_none());
    let mut orchestrators: Vec<Orchestrator> = managed
        .iter()
        .filter_map(|o| o.managed)
        .chain(args.orchestrators.iter().copied())
        .filter(|o| *o != Orchestrator::Swarm)
        .collect();
    orchestrators.sort();
    orchestrators.dedup();
    let containers: Vec<Entry> = observed
        .into_iter()
        // A replacement under its temporary name, or the old container it set aside, is an
        // unfinished pass, not a container.
        .filter(|o| !o.name.ends_with(REPLACEMENT_SUFFIX) && !o.name.ends_with(SET_ASIDE_SUFFIX))
        // The container this snapshot runs in (`docker compose run --rm guestlist snapshot`)
        // is gone a moment later; on the list, it would be brought back for ever. Name it to
        // record it anyway.
        .filter(|o| !o.runs_guestlist)
        .filter(|o| o.running || args.all)
        .filter_map(entry)
        .collect();
    let mut state = State {
        version: VERSION,
        taken_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        engine: engine.info.clone(),
        scope,
        allow: args.allow,
        containers: Vec::new(),
        orchestrators: Some(orchestrators),
    };
    state.upsert(containers);
    state::save(&settings.state_path, &state)?;
    print(&recorded(settings, &state, state.containers.iter()));
    print(&left_out(&managed));
    print(&believed(&state));
    Ok(Outcome::Clean)
}

/// Which orchestrators' labels the new list believes, when any.
fn believed(state: &State) -> String {
    let known = state.orchestrators.as_deref().unwrap_or_default();
    known
        .iter()
        .map(|o| {
            format!(
                "{} runs here: a container its labels claim is its own (anywhere else they \
                 would make an extra)\n",
                o.name()
            )
        })
        .collect()
}

/// Which containers another orchestrator owns and the snapshot left out, by orchestrator.
fn left_out(managed: &[Observed]) -> String {
    let mut by: BTreeMap<Orchestrator, Vec<&str>> = BTreeMap::new();
    for o in managed {
        if let Some(orchestrator) = o.managed {
            by.entry(orchestrator).or_default().push(&o.name);
        }
    }
    by.iter()
        .map(|(orchestrator, names)| {
            format!(
                "left out {} containers managed by {} ({}): they are its own, never recorded, \
                 started, removed or replaced\n",
                names.len(),
                orchestrator.name(),
                names.join(", ")
            )
        })
        .collect()
}

async fn named(settings: &Settings, args: SnapshotArgs) -> Result<Outcome> {
    let _lock = settings.lock().await?;
    let mut state = match state::load(&settings.state_path) {
        Err(LoadError::NotFound(path)) => {
            return Err(anyhow!("no state file at {}", path.display())).context(Hint(
                "run `guestlist snapshot` without names first: a list of only the named \
                 containers would make every other container an extra"
                    .into(),
            ))
        }
        loaded => loaded?,
    };
    let engine = settings.connect_for(&state).await?;
    let wanted = args.names.iter().cloned().collect();
    let observed = observe::host(
        &engine,
        &state.scope,
        state.claims(),
        Capture::Named(&wanted),
    )
    .await?;
    let mut entries = Vec::new();
    for name in &args.names {
        let found = observed.iter().find(|o| &o.name == name);
        if let Some(orchestrator) = found.and_then(|o| o.managed) {
            bail!(
                "{name} is managed by {}: guestlist leaves its containers to it (nothing was \
                 changed)",
                orchestrator.name()
            );
        }
        match found.cloned().and_then(entry) {
            Some(entry) => entries.push(entry),
            None if state.scope.is_empty() => {
                bail!(
                    "no container named {name} on {} (nothing was changed; `docker ps -a` \
                     shows the names)",
                    engine.info.endpoint
                )
            }
            None => bail!(
                "no container named {name} within the scope {} (nothing was changed; give it \
                 the scope's labels, or check the name with `docker ps -a`)",
                state.scope
            ),
        }
    }
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    state.upsert(entries);
    state::save(&settings.state_path, &state)?;
    let refreshed = state.containers.iter().filter(|e| names.contains(&e.name));
    print(&recorded(settings, &state, refreshed));
    Ok(Outcome::Clean)
}

fn entry(o: Observed) -> Option<Entry> {
    Some(Entry {
        running: o.running,
        name: o.name,
        spec: o.spec?,
    })
}

fn recorded<'a>(
    settings: &Settings,
    state: &State,
    entries: impl Iterator<Item = &'a Entry>,
) -> String {
    let mut out = String::new();
    let podman = state.engine.kind == Some(EngineKind::Podman);
    for e in entries {
        let how = if e.running { "running" } else { "stopped" };
        out += &format!("recorded {} (image {}, {how})\n", e.name, e.spec.image);
        if podman {
            out += &unreported_by_podman(e);
        }
    }
    out += &format!(
        "wrote {}: {} containers allowed, scope {}, {} allow rules\n",
        settings.state_path.display(),
        state.containers.len(),
        state.scope,
        state.allow.len()
    );
    out
}

/// Podman 4.3 does not report the address a container asked for (`--ip`) nor the permissions
/// of its devices, so neither can be recorded: say so where it matters.
fn unreported_by_podman(entry: &Entry) -> String {
    let name = &entry.name;
    let mut out = String::new();
    for network in entry.spec.networks.keys().filter(|n| *n != "podman") {
        out += &format!(
            "  note: Podman does not report whether {name}'s address on {network} was chosen \
             with --ip: if {name} is recreated, it gets an address from the network's pool\n"
        );
    }
    let devices = entry
        .spec
        .host_config
        .get("Devices")
        .and_then(|d| d.as_array());
    for device in devices.into_iter().flatten() {
        let path = device["PathOnHost"].as_str().unwrap_or_default();
        out += &format!(
            "  note: Podman does not report the permissions of {name}'s device {path}: if \
             {name} is recreated, it gets rwm\n"
        );
    }
    out
}
