//! Reading ScalingPolicy manifests as users write them: multi-document YAML (or JSON), every
//! problem reported with its field path, unknown fields included (older API servers drop them
//! silently, so a typo such as `scaleInBelo` would otherwise vanish).

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::api::{FieldError, ScalingPolicy, validate};

/// The apiVersion of ScalingPolicy.
pub const API_VERSION: &str = "scalewise.dev/v1alpha1";
/// The kind of ScalingPolicy.
pub const KIND: &str = "ScalingPolicy";

/// A manifest that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {document}: not valid YAML: {message}")]
    Yaml { document: usize, message: String },
}

/// One document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based position in the file.
    pub index: usize,
    /// The 0-based position in the document's `items` when the object came from a `List`.
    pub item: Option<usize>,
    pub value: Value,
}

impl Document {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }

    pub fn api_version(&self) -> Option<&str> {
        self.str_at("/apiVersion")
    }

    pub fn kind(&self) -> Option<&str> {
        self.str_at("/kind")
    }

    /// Whether this document is a ScalingPolicy (of any version).
    pub fn is_scaling_policy(&self) -> bool {
        self.kind() == Some(KIND)
            && self
                .api_version()
                .is_some_and(|v| v.starts_with("scalewise.dev/"))
    }

    /// Where the object is in its file: `document 2`, or `document 2 items[0]` in a `List`.
    pub fn position(&self) -> String {
        match self.item {
            Some(i) => format!("document {} items[{i}]", self.index),
            None => format!("document {}", self.index),
        }
    }

    /// Whether this document is a list of objects: `kind: List` (as `kubectl get -o yaml`
    /// prints) or a typed list such as `ScalingPolicyList`, with an `items` array.
    pub fn is_list(&self) -> bool {
        self.item.is_none()
            && self.kind().is_some_and(|k| k.ends_with("List"))
            && self.value.get("items").is_some_and(Value::is_array)
    }

    /// The objects the document holds: each item of a list, or the document itself. Items of a
    /// typed list (`ScalingPolicyList`, as the API serves it) carry no apiVersion and kind;
    /// they get the list's.
    pub fn objects(self) -> Vec<Document> {
        if !self.is_list() {
            return vec![self];
        }
        let item_kind = self
            .kind()
            .and_then(|k| k.strip_suffix("List"))
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        let api_version = self.api_version().map(str::to_owned);
        let index = self.index;
        let Value::Object(mut map) = self.value else {
            return Vec::new();
        };
        let Some(Value::Array(items)) = map.remove("items") else {
            return Vec::new();
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, mut value)| {
                if let Value::Object(object) = &mut value
                    && let Some(kind) = &item_kind
                    && !object.contains_key("kind")
                {
                    object.insert("kind".into(), Value::String(kind.clone()));
                    if let Some(version) = &api_version {
                        object
                            .entry("apiVersion")
                            .or_insert_with(|| Value::String(version.clone()));
                    }
                }
                Document {
                    index,
                    item: Some(i),
                    value,
                }
            })
            .collect()
    }

    /// `namespace/name` as far as the document tells (just `name` without a namespace).
    pub fn display_name(&self) -> String {
        let name = self.str_at("/metadata/name").unwrap_or("<unnamed>");
        match self.str_at("/metadata/namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        }
    }
}

/// Splits YAML text into its non-empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    let mut documents = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| ManifestError::Yaml {
            document: i + 1,
            message: e.to_string(),
        })?;
        if !value.is_null() {
            documents.push(Document {
                index: i + 1,
                item: None,
                value,
            });
        }
    }
    Ok(documents)
}

/// Reads a ScalingPolicy document, returning every problem: an unsupported apiVersion, each
/// unknown field, a field of the wrong type, and every validation rule it breaks.
pub fn read_policy(document: &Document) -> Result<ScalingPolicy, Vec<FieldError>> {
    // serde reads a struct from a sequence too, field by field, and would name `[0]`.
    if !document.value.is_object() {
        return Err(vec![FieldError {
            path: "(document)".into(),
            message: "must be an object with apiVersion, kind, metadata and spec".into(),
        }]);
    }
    let mut errors = Vec::new();
    if document.api_version() != Some(API_VERSION) {
        errors.push(FieldError {
            path: "apiVersion".into(),
            message: format!(
                "must be {API_VERSION}, got {}",
                document
                    .api_version()
                    .map_or("nothing".into(), |v| format!("{v:?}"))
            ),
        });
    }
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let deserializer = serde_ignored::Deserializer::new(document.value.clone(), &mut record);
    let parsed: Result<ScalingPolicy, _> = serde_path_to_error::deserialize(deserializer);
    // The status is the operator's to write; a manifest may carry one from `kubectl get -o yaml`.
    // apiVersion and kind are checked above (kube reads them outside serde's view).
    unknown.retain(|path| {
        !(path == "status" || path.starts_with("status.") || path == "apiVersion" || path == "kind")
    });
    // The schema, for "did you mean", only when there is an unknown field to name: generating
    // it costs more than reading the policy.
    if !unknown.is_empty() {
        let schema = crate::api::crd::schema();
        for path in unknown {
            errors.push(FieldError {
                message: unknown_field_message(&schema, &path),
                path,
            });
        }
    }
    match parsed {
        Ok(policy) => {
            errors.extend(validate(&policy.spec));
            if errors.is_empty() {
                Ok(policy)
            } else {
                Err(errors)
            }
        }
        Err(e) => {
            let path = e.path().to_string();
            errors.push(FieldError {
                path: if path == "." {
                    "(document)".into()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            });
            Err(errors)
        }
    }
}

/// Formats a path reported by serde_ignored as `spec.metrics[2].scaleInBelo`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            // A key that is not a plain name (empty, or holding dots or brackets) is quoted, so
            // that the path still names it.
            let plain = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            let key = if plain {
                key.clone()
            } else {
                format!("{key:?}")
            };
            if parent.is_empty() {
                key
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// `unknown field`, with the closest allowed name when one is close.
fn unknown_field_message(schema: &Value, path: &str) -> String {
    let (parent, field) = match path.rfind('.') {
        Some(dot) => (&path[..dot], &path[dot + 1..]),
        None => ("", path),
    };
    let mut node = schema;
    for segment in parent.split('.').filter(|s| !s.is_empty()) {
        let (key, indexed) = match segment.find('[') {
            Some(bracket) => (&segment[..bracket], true),
            None => (segment, false),
        };
        node = &node["properties"][key];
        if indexed {
            node = &node["items"];
        }
    }
    let known: Vec<&str> = node["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let closest = known
        .iter()
        .map(|k| (edit_distance(&k.to_lowercase(), &field.to_lowercase()), *k))
        .filter(|(d, _)| *d <= 2.max(field.len() / 4))
        .min();
    let mut message = "unknown field (older API servers drop it silently)".to_owned();
    if let Some((_, suggestion)) = closest {
        message.push_str(&format!("; did you mean {suggestion}?"));
    } else if !known.is_empty() {
        message.push_str(&format!("; known fields here: {}", known.join(", ")));
    }
    message
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A problem found in a file, for `scalewise check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// `namespace/name`, or the document number when the object has no name.
    pub object: String,
    pub error: FieldError,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.object, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by tests/fuzz_manifest.rs: the document `?` (a null key) was reported with an
    /// empty path.
    #[test]
    fn an_unknown_key_that_is_not_a_plain_name_is_quoted_in_its_path() {
        let errors = read_policy(&parse_documents("?").unwrap()[0]).unwrap_err();
        assert!(errors.iter().any(|e| e.path == "\"\""), "{errors:?}");
        assert!(errors.iter().all(|e| !e.path.is_empty()), "{errors:?}");
        let docs = parse_documents("spec: {\"a.b\": 1}").unwrap();
        let errors = read_policy(&docs[0]).unwrap_err();
        assert!(
            errors.iter().any(|e| e.path == "spec.\"a.b\""),
            "{errors:?}"
        );
    }

    /// Found by tests/fuzz_manifest.rs: a document that is a sequence was read field by field
    /// and its problems named `[0]`.
    #[test]
    fn a_document_that_is_not_an_object_is_refused_as_a_whole() {
        let errors = read_policy(&parse_documents("[{}, {}]").unwrap()[0]).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "(document)");
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("scaleinbelow", "scaleinbelo"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("target", "target"), 0);
    }

    #[test]
    fn unknown_fields_are_reported_with_path_and_suggestion() {
        let docs = parse_documents(
            r#"
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata: {name: a, namespace: b}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: a}
  minReplicas: 1
  maxReplicas: 3
  metrics:
    - name: cpu
      cpu: {}
      scaleOutAbove: 70
      scaleInBelo: 30
"#,
        )
        .unwrap();
        let errors = read_policy(&docs[0]).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.metrics[0].scaleInBelo");
        assert!(
            errors[0].message.contains("did you mean scaleInBelow?"),
            "{}",
            errors[0].message
        );
    }
}
