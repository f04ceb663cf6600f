//! `scalewise check`: validate ScalingPolicy manifests offline.

use std::io::Write;
use std::path::PathBuf;

use super::{CommandError, Outcome, read_documents};
use crate::manifest::{Problem, read_policy};

/// Checks every ScalingPolicy in `files`, and each one in a `List` (`kubectl get sp -A -o yaml`).
/// Prints one line per problem to `out` (`FILE: namespace/name: field.path: message`) and notes
/// about skipped documents to `notes`.
pub fn run(
    files: &[PathBuf],
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
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
            if let Err(errors) = read_policy(document) {
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
