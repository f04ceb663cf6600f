//! The command line, declared with clap. Nothing but definitions lives here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::decide::OutputFormat;

/// scalewise: a Kubernetes autoscaler that is safe when metrics fail and explains every decision.
#[derive(Debug, Parser)]
#[command(name = "scalewise", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ScalingPolicy CustomResourceDefinition as YAML.
    Crd,

    /// Validate ScalingPolicy manifests offline: exit 0 when all are valid, 1 with one line per
    /// problem (`FILE: namespace/name: field.path: message`).
    Check {
        /// A manifest file (multi-document YAML); `-` reads standard input. Repeatable.
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },

    /// Run the decision engine once on given metric values, exactly as the controller would.
    Decide {
        /// The file holding the ScalingPolicy.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,

        /// The target's current replicas (its /scale spec.replicas).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        replicas: i32,

        /// A metric's value: NAME=NUMBER, or NAME=unavailable|empty|stale|invalid for a failed
        /// read. Every metric of the policy needs one. Repeatable.
        #[arg(long = "metric", value_name = "NAME=VALUE")]
        metrics: Vec<String>,

        /// The status of the previous evaluation (the `state` of an earlier `--output json`), to
        /// chain evaluations.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,

        /// The evaluation time (RFC 3339, such as 2026-01-01T12:00:00Z). Default: now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<jiff::Timestamp>,

        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
