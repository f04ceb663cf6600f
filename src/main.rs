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
        Command::Run(args) => return run(args),
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
        Command::Simulate(args) => commands::simulate::run(args, &mut stdout, &mut stderr),
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

/// `scalewise run`: logs and a runtime, then the controller until SIGTERM.
fn run(args: &scalewise::cli::RunArgs) -> ExitCode {
    scalewise::telemetry::init_tracing(args.log_format);
    let result = (|| -> anyhow::Result<()> {
        let config = commands::query::source_config(&args.prometheus)?;
        let metrics = std::sync::Arc::new(scalewise::telemetry::Metrics::new());
        let source = scalewise::metrics::PrometheusSource::new(config)?
            .with_query_limit(usize::from(args.max_concurrent_queries))
            .with_telemetry(metrics.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(commands::run::run(args, source, metrics))?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("scalewise: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn report(error: &CommandError) -> ExitCode {
    eprintln!("scalewise: {error}");
    ExitCode::from(error.exit_code())
}
