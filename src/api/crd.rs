//! The CustomResourceDefinition, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::CustomResourceExt;
use serde_json::Value;

use super::ScalingPolicy;

/// The ScalingPolicy CRD as served to clusters.
///
/// Optional enum fields come out of the schema generator as `enum: [..., null]` with
/// `nullable: true`. API servers before 1.21 refuse such a CRD ("per-version schemas may not all
/// be set to identical values"), and kubectl's client-side validation refuses the `null`, so the
/// `null` members are removed: `nullable: true` already admits an absent value.
pub fn crd() -> CustomResourceDefinition {
    let crd = ScalingPolicy::crd();
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    drop_null_enum_members(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

/// The OpenAPI schema of the served version, as JSON.
pub fn schema() -> Value {
    crd()
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

fn drop_null_enum_members(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(members)) = map.get_mut("enum") {
                members.retain(|m| !m.is_null());
            }
            map.values_mut().for_each(drop_null_enum_members);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_enum_members),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a user writes is bounded in the schema (idiom 15), which also bounds the cost
    /// of every CEL rule an API server estimates: no string without `maxLength` (or an enum), no
    /// list without `maxItems`, no integer without `maximum`.
    #[test]
    fn every_spec_field_has_an_upper_limit_in_the_schema() {
        fn walk(node: &Value, path: &str, unbounded: &mut Vec<String>) {
            let types: Vec<&str> = match &node["type"] {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let has = |key: &str| node.get(key).is_some();
            for t in types {
                let missing = match t {
                    "string" if !has("enum") => (!has("maxLength")).then_some("maxLength"),
                    "array" => (!has("maxItems")).then_some("maxItems"),
                    "integer" => (!has("maximum")).then_some("maximum"),
                    _ => None,
                };
                if let Some(key) = missing {
                    unbounded.push(format!("{path}: no {key}"));
                }
            }
            if let Some(properties) = node["properties"].as_object() {
                for (name, child) in properties {
                    walk(child, &format!("{path}.{name}"), unbounded);
                }
            }
            if node.get("items").is_some() {
                walk(&node["items"], &format!("{path}[]"), unbounded);
            }
        }
        let schema = schema();
        let mut unbounded = Vec::new();
        walk(&schema["properties"]["spec"], "spec", &mut unbounded);
        assert!(unbounded.is_empty(), "unbounded fields: {unbounded:#?}");
        // The one CEL rule sits on spec itself, outside any list.
        assert_eq!(
            schema["properties"]["spec"]["x-kubernetes-validations"][0]["rule"],
            "self.minReplicas <= self.maxReplicas"
        );
    }

    #[test]
    fn no_enum_lists_null() {
        fn walk(node: &Value, path: &str, found: &mut Vec<String>) {
            match node {
                Value::Object(map) => {
                    if let Some(Value::Array(members)) = map.get("enum")
                        && members.iter().any(Value::is_null)
                    {
                        found.push(path.to_owned());
                    }
                    for (k, v) in map {
                        walk(v, &format!("{path}.{k}"), found);
                    }
                }
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, &format!("{path}[{i}]"), found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(&serde_json::to_value(crd()).unwrap(), "", &mut found);
        assert!(found.is_empty(), "enums listing null: {found:?}");
        // The optional enums stay optional.
        let schema = schema();
        let select = &schema["properties"]["spec"]["properties"]["behavior"]["properties"]["scaleOut"]
            ["properties"]["selectPolicy"];
        assert_eq!(
            select["enum"],
            serde_json::json!(["Max", "Min", "Disabled"])
        );
        assert_eq!(select["nullable"], true);
    }
}
