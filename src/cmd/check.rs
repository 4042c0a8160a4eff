//! `guestlist check [PATH]`: validate a state file without asking the engine, so that CI can
//! refuse a hand-edited list before it ships. Changes nothing. It reads the file as `diff`,
//! `enforce` and `list` do (`state::load`), so it refuses what they would refuse, a file or
//! directory that others can write included.

use anyhow::{Context, Result};

use super::{print, Outcome, Settings};
use crate::cli::CheckArgs;
use crate::error::Hint;
use crate::record::state::{self, LoadError};

pub fn run(settings: &Settings, args: CheckArgs) -> Result<Outcome> {
    let path = args.path.unwrap_or_else(|| settings.state_path.clone());
    let state = match state::load(&path) {
        Ok(state) => state,
        Err(LoadError::NotFound(path)) => {
            anyhow::bail!("no state file at {}", path.display())
        }
        Err(LoadError::Malformed(e)) => {
            return Err(e).context(Hint(
                "fix what is named above by hand (the file was not modified); the Docker \
                 Engine API reference names every field a create request takes"
                    .into(),
            ))
        }
        Err(LoadError::Other(e)) => return Err(e),
    };
    print(&format!(
        "valid: {}: {} containers allowed, {} scope selectors, {} allow rules\n",
        path.display(),
        state.containers.len(),
        state.scope.len(),
        state.allow.len()
    ));
    Ok(Outcome::Clean)
}
