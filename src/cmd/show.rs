//! `guestlist show NAME...`: recorded containers as the docker commands that recreate them, as
//! a compose file, or as their JSON record. No engine needed. This is also the way out: the
//! list as commands or compose services, for whoever leaves guestlist behind.

use anyhow::{anyhow, bail, Context, Result};

use super::{print, Outcome, Settings};
use crate::cli::{ShowArgs, ShowFormat};
use crate::error::Hint;
use crate::export;
use crate::record::state::Entry;

pub fn run(settings: &Settings, args: ShowArgs) -> Result<Outcome> {
    let state = settings.load_state()?;
    let mut entries: Vec<&Entry> = Vec::new();
    for name in &args.names {
        match state.entry(name) {
            Some(entry) => entries.push(entry),
            None => {
                return Err(anyhow!(
                    "{name} is not on the list in {}",
                    settings.state_path.display()
                ))
                .context(Hint("`guestlist list` shows what is".into()))
            }
        }
    }
    let text = match args.format {
        ShowFormat::Json => {
            let records: Vec<&Entry> = entries;
            format!("{}\n", serde_json::to_string_pretty(&records)?)
        }
        ShowFormat::Run => {
            let mut out = String::new();
            for entry in entries {
                match export::run_script(entry) {
                    Ok(script) => out += &script,
                    Err(fields) => bail!(inexpressible(&entry.name, "docker commands", &fields)),
                }
            }
            out
        }
        ShowFormat::Compose => match export::compose_file(&entries) {
            Ok(text) => text,
            Err((name, fields)) => bail!(inexpressible(&name, "a compose service", &fields)),
        },
    };
    print(&text);
    Ok(Outcome::Clean)
}

fn inexpressible(name: &str, format: &str, fields: &[String]) -> String {
    format!(
        "{name} cannot be written as {format} exactly: {} (nothing was printed; --format \
         json shows the whole record)",
        fields.join(", ")
    )
}
