//! guestlist: keep a Docker host running exactly the containers on its list.
//! Parses the command line, runs it, and turns the outcome into the exit code.

mod cli;
mod cmd;
mod engine;
mod error;
mod execute;
mod export;
mod guard;
mod notify;
mod observe;
mod ops;
mod plan;
mod record;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            error::print_error(&err);
            ExitCode::from(2)
        }
    }
}
