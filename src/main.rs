//! The `scalewise` binary: parse the command line, dispatch, and turn errors into exit codes.

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
        Command::Run(args) => return run(args),
        Command::Crd => commands::crd::run(&mut stdout),
        Command::Check {
            files,
            namespace,
            tenancy,
        } => commands::check::run(
            files,
            &commands::check::Scoping::new(namespace.as_deref(), tenancy),
            &mut stdout,
            &mut stderr,
        ),
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
        Command::Simulate(args) => commands::simulate::run(args, &mut stdout, &mut stderr),
        Command::Query {
            policy,
            replicas,
            namespace,
            pods,
            coalesced,
            output,
            prometheus,
        } => commands::query::run(
            &QueryArgs {
                policy,
                replicas: *replicas,
                namespace: namespace.as_deref(),
                pods: *pods,
                coalesced: *coalesced,
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

/// `scalewise run`: the controller until SIGTERM; an error with its whole cause chain.
fn run(args: &scalewise::cli::RunArgs) -> ExitCode {
    match commands::run::start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = scalewise::text::error_chain(&error, scalewise::text::Causes::All);
            tracing::error!("{chain}");
            eprintln!("scalewise: {chain}");
            ExitCode::from(1)
        }
    }
}

fn report(error: &CommandError) -> ExitCode {
    eprintln!("scalewise: {error}");
    ExitCode::from(error.exit_code())
}
