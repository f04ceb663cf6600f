//! The `scalewise` binary: parse the command line and dispatch.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use scalewise::cli::{Cli, Command};
use scalewise::commands::{self, CommandError, Outcome, decide::DecideArgs, query::QueryArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let result = match &cli.command {
        Command::Crd => commands::crd::run(&mut stdout),
        Command::Check { files } => commands::check::run(files, &mut stdout, &mut stderr),
        Command::Decide {
            policy,
            replicas,
            metrics,
            state,
            now,
            output,
        } => commands::decide::run(
            &DecideArgs {
                policy,
                replicas: *replicas,
                metrics,
                state: state.as_deref(),
                now: *now,
                output: *output,
            },
            &mut stdout,
        ),
        Command::Query {
            policy,
            replicas,
            output,
            prometheus,
        } => commands::query::run(
            &QueryArgs {
                policy,
                replicas: *replicas,
                output: *output,
                prometheus,
            },
            &mut stdout,
        ),
    };
    let _ = stdout.flush();
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(error) => report(&error),
    }
}

fn report(error: &CommandError) -> ExitCode {
    eprintln!("scalewise: {error}");
    ExitCode::from(error.exit_code())
}
