//! `guestlist list`: what the state file allows, without asking the engine.

use anyhow::Result;
use serde_json::json;

use super::{print, Outcome, Settings};
use crate::cli::{ListArgs, ReportFormat};
use crate::record::state::State;

pub fn run(settings: &Settings, args: ListArgs) -> Result<Outcome> {
    let state = settings.load_state()?;
    match args.format {
        ReportFormat::Text => print(&text(&state)),
        ReportFormat::Json => print(&format!("{}\n", as_json(&state))),
    }
    Ok(Outcome::Clean)
}

fn text(state: &State) -> String {
    let width = state
        .containers
        .iter()
        .map(|e| e.name.len())
        .chain(["NAME".len()])
        .max()
        .unwrap_or(0);
    let image_width = state
        .containers
        .iter()
        .map(|e| e.spec.image.len())
        .chain(["IMAGE".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "{:width$}  {:image_width$}  IMAGE ID      STATE\n",
        "NAME", "IMAGE"
    );
    for e in &state.containers {
        let id = e.spec.image_id.trim_start_matches("sha256:");
        out += &format!(
            "{:width$}  {:image_width$}  {:12}  {}\n",
            e.name,
            e.spec.image,
            id.get(..12).unwrap_or(id),
            if e.running { "running" } else { "stopped" }
        );
    }
    let join = |items: Vec<String>| match items.is_empty() {
        true => "none".to_string(),
        false => items.join(" "),
    };
    out += &format!(
        "{} allowed; scope: {}; allow rules: {}; snapshot taken {} on {}\n",
        state.containers.len(),
        state.scope,
        join(state.allow.iter().map(ToString::to_string).collect()),
        state.taken_at,
        state.engine.hostname
    );
    out
}

fn as_json(state: &State) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = state
        .containers
        .iter()
        .map(|e| {
            json!({
                "name": e.name, "image": e.spec.image, "image_id": e.spec.image_id,
                "running": e.running,
            })
        })
        .collect();
    json!({
        "scope": state.scope.selectors().map(ToString::to_string).collect::<Vec<_>>(),
        "allow": state.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "taken_at": state.taken_at,
        "engine": state.engine,
        "containers": containers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_allowed_container_then_scope_and_rules() {
        let state = crate::record::state::parse(
            r#"{"version": 1, "taken_at": "2026-11-25T12:00:00Z",
                "engine": {"endpoint": "", "id": "", "kind": "Docker", "version": "",
                           "api_version": "", "hostname": "web-1"},
                "scope": ["label=team=web"], "allow": ["name=ci-*"],
                "containers": [
                  {"name": "db", "running": false,
                   "spec": {"image": "postgres:16", "image_id": "sha256:0123456789abcdef000000000000000000000000000000000000000000000000"}},
                  {"name": "web", "spec": {"image": "nginx:1", "image_id": "sha256:fedcba9876543210000000000000000000000000000000000000000000000000"}}
                ]}"#,
        )
        .unwrap();
        assert_eq!(
            text(&state),
            "NAME  IMAGE        IMAGE ID      STATE\n\
             db    postgres:16  0123456789ab  stopped\n\
             web   nginx:1      fedcba987654  running\n\
             2 allowed; scope: label=team=web; allow rules: name=ci-*; snapshot taken \
             2026-11-25T12:00:00Z on web-1\n"
        );
        let json = as_json(&state);
        assert_eq!(json["containers"][0]["running"], false);
        assert_eq!(json["scope"][0], "label=team=web");
    }
}
