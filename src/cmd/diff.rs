//! `guestlist diff`: observe and plan, then say what drifted. Changes nothing.

use anyhow::Result;

use super::{print, Outcome, Settings};
use crate::cli::{DiffArgs, ReportFormat};
use crate::{observe, plan, report};

pub async fn run(settings: &Settings, args: DiffArgs) -> Result<Outcome> {
    let state = settings.load_state()?;
    let engine = settings.connect_for(&state).await?;
    let plan = plan::plan(&state, &observe::allowed(&engine, &state).await?);
    match args.format {
        ReportFormat::Text => print(&report::plan_text(&plan, &[])),
        ReportFormat::Json => print(&format!("{}\n", report::plan_json(&plan))),
    }
    Ok(if plan.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Drift
    })
}
