//! `guestlist forget NAME...`: drop entries from the list. The containers stay where they are;
//! the next pass treats them as extras.

use anyhow::{bail, Result};

use super::{print, Outcome, Settings};
use crate::cli::ForgetArgs;
use crate::record::state;

pub async fn run(settings: &Settings, args: ForgetArgs) -> Result<Outcome> {
    let _lock = settings.lock().await?;
    let mut state = settings.load_state()?;
    let unknown: Vec<&str> = args
        .names
        .iter()
        .filter(|n| state.entry(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        bail!(
            "not on the list in {}: {} (nothing was changed; `guestlist list` shows what is)",
            settings.state_path.display(),
            unknown.join(", ")
        );
    }
    state.containers.retain(|e| !args.names.contains(&e.name));
    state::save(&settings.state_path, &state)?;
    let mut out = String::new();
    for name in &args.names {
        out += &format!("forgot {name}\n");
    }
    out += &format!(
        "wrote {}: {} containers allowed\n",
        settings.state_path.display(),
        state.containers.len()
    );
    print(&out);
    Ok(Outcome::Clean)
}
