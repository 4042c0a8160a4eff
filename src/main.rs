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

use ops::log;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return log::usage_error(&e),
    };
    // Before anything can fail or warn, so that every line on stderr has the asked shape.
    log::init(
        log::level(cli.verbose, cli.quiet),
        cli.log_format,
        &log::Sink::detect(),
    );
    match cmd::run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            log::fatal(&err);
            ExitCode::from(2)
        }
    }
}
