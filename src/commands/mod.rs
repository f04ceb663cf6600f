//! The offline subcommands: `crd`, `check` and `decide`. Each writes to the writers it is given
//! and returns how the process should exit, so tests can call them directly.

pub mod check;
pub mod crd;
pub mod decide;
pub mod pods;
pub mod prometheus;
pub mod query;
pub mod run;
pub mod simulate;

use std::io::Read;
use std::path::Path;

use crate::api::ValidationErrors;
use crate::metrics::{ConfigError, MetricsError};

/// How a command ended, as an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran and found problems (invalid manifests, failed metrics).
    Problems,
}

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command line is wrong: exit 2.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Manifest {
        path: String,
        source: crate::manifest::ManifestError,
    },
    /// The file holds no ScalingPolicy.
    #[error("{file}: no ScalingPolicy in the file")]
    NoPolicy { file: String },
    /// The file holds more than one ScalingPolicy.
    #[error("{file}: {count} ScalingPolicies in the file; give a file with exactly one")]
    ManyPolicies { file: String, count: usize },
    /// The policy cannot be read as a ScalingPolicy: one line per problem.
    #[error("{}", lines(file, policy, source))]
    Unreadable {
        file: String,
        policy: String,
        #[source]
        source: ValidationErrors,
    },
    /// The policy is not valid (its spec, or the queries of its metrics).
    #[error("{file}: {policy}: {source}")]
    InvalidPolicy {
        file: String,
        policy: String,
        #[source]
        source: ValidationErrors,
    },
    /// The policy's metrics cannot be read from where it says.
    #[error("{file}: {policy}: {source}")]
    PolicyMetrics {
        file: String,
        policy: String,
        #[source]
        source: MetricsError,
    },
    /// The metrics cannot be read at all.
    #[error("{0}")]
    Metrics(#[source] MetricsError),
    /// The metrics settings are unusable.
    #[error("{0}")]
    Config(#[source] ConfigError),
    /// A `--state` file is not a ScalingPolicy status.
    #[error("{file}: not a ScalingPolicy status: {}: {}", .source.path(), .source.inner())]
    State {
        file: String,
        #[source]
        source: serde_path_to_error::Error<serde_yaml_ng::Error>,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The simulation cannot run (a trace, a model file, a plot, a backtest's range query).
    #[error("{0}")]
    Simulate(#[source] crate::simulate::SimulateError),
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot encode output: {0}")]
    Encode(#[source] EncodeError),
}

/// Why output cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
}

impl From<EncodeError> for CommandError {
    fn from(error: EncodeError) -> Self {
        Self::Encode(error)
    }
}

/// Each problem on a line of its own, after the file and the policy.
fn lines(file: &str, policy: &str, errors: &ValidationErrors) -> String {
    let lines: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{file}: {policy}: {e}"))
        .collect();
    lines.join("\n")
}

impl CommandError {
    /// The exit status: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Reads a manifest file (or standard input for `-`) and splits it into its documents; returns
/// the file's name for messages too.
pub fn read_documents(
    path: &Path,
) -> Result<(String, Vec<crate::manifest::Document>), CommandError> {
    let file = path.display().to_string();
    let text = read_input(path)?;
    let documents =
        crate::manifest::parse_documents(&text).map_err(|source| CommandError::Manifest {
            path: file.clone(),
            source,
        })?;
    Ok((file, documents))
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<String, CommandError> {
    let name = path.display().to_string();
    let result = if name == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|source| CommandError::Read { path: name, source })
}
