//! `scalewise check`: validate ScalingPolicy manifests offline.

use std::io::Write;
use std::path::PathBuf;

use super::{CommandError, Outcome, read_documents};
use crate::api::{FieldError, Policy};
use crate::cli::TenancyArgs;
use crate::manifest::{Problem, read_policy};
use crate::metrics::QueryPlan;
use crate::metrics::tenancy::Rules;

/// How `check` scopes each policy's queries, as the operator would.
pub struct Scoping {
    /// The namespace of manifests without one.
    namespace: String,
    label: String,
    rules: Result<Rules, String>,
}

impl Scoping {
    pub fn new(namespace: Option<&str>, tenancy: &TenancyArgs) -> Self {
        Self {
            namespace: namespace
                .unwrap_or(crate::metrics::plan::DEFAULT_NAMESPACE)
                .to_owned(),
            label: tenancy.namespace_label.clone(),
            rules: super::prometheus::rules(tenancy),
        }
    }
}

/// Checks every ScalingPolicy in `files`, and each one in a `List` (`kubectl get sp -A -o yaml`).
/// Prints one line per problem to `out` (`FILE: namespace/name: field.path: message`) and notes
/// about skipped documents to `notes`.
pub fn run(
    files: &[PathBuf],
    scoping: &Scoping,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let rules = scoping.rules.clone().map_err(CommandError::Usage)?;
    let mut problems = Vec::new();
    let mut checked = 0usize;
    for path in files {
        let (file, documents) = read_documents(path)?;
        for document in documents
            .into_iter()
            .flat_map(crate::manifest::Document::objects)
        {
            let document = &document;
            if !document.is_scaling_policy() {
                let what = format!(
                    "{}/{}",
                    document.api_version().unwrap_or("?"),
                    document.kind().unwrap_or("?")
                );
                writeln!(
                    notes,
                    "{file}: {} ({what}) skipped: not a ScalingPolicy",
                    document.position()
                )?;
                continue;
            }
            checked += 1;
            let read = read_policy(document).and_then(|policy| {
                // Its queries as the operator scopes them: reading another namespace is refused.
                let namespace = policy
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or(&scoping.namespace);
                let resolved = Policy::resolve(&policy.spec).map_err(|e| e.0)?;
                QueryPlan::scoped(&resolved, rules.scope_for(namespace, &scoping.label))
                    .map(|_| ())
                    .map_err(|e| e.0)
            });
            if let Err(errors) = read {
                let errors: Vec<FieldError> = errors;
                let object = document.display_name();
                problems.extend(errors.into_iter().map(|error| Problem {
                    file: file.clone(),
                    object: object.clone(),
                    error,
                }));
            }
        }
    }
    for problem in &problems {
        writeln!(out, "{problem}")?;
    }
    if checked == 0 {
        writeln!(notes, "no ScalingPolicy found")?;
    }
    Ok(if problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}
