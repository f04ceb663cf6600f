//! Label selectors in their string form, as a `/scale` subresource's `status.selector` carries
//! them (`app=web,tier in (a,b),!canary`): parsed once, matched against a pod's labels.
//!
//! The grammar is apimachinery's (`k8s.io/apimachinery/pkg/labels`): requirements separated by
//! commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`,
//! `key notin (v1,v2)`, `key>N` or `key<N`. An empty selector matches every pod.

use std::collections::BTreeMap;
use std::fmt;

/// The longest selector parsed (a /scale status is written by a controller, but a custom
/// resource's can hold anything).
pub const MAX_SELECTOR_BYTES: usize = 16 * 1024;

/// A parsed label selector: every requirement must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector(Vec<Requirement>);

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// Why a selector text does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the label selector {text:?} does not parse: {why}")]
pub struct SelectorError {
    text: String,
    why: String,
}

impl Selector {
    /// Parses the string form of a label selector.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |why: String| SelectorError {
            text: crate::text::shorten(text, 200),
            why,
        };
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(fail(format!(
                "it is longer than {MAX_SELECTOR_BYTES} bytes"
            )));
        }
        let mut requirements = Vec::new();
        for term in split_terms(text).map_err(fail)? {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(fail("an empty requirement between commas".into()));
            }
            requirements.push(requirement(term).map_err(fail)?);
        }
        Ok(Self(requirements))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    /// A label every pod it matches carries (its first `key=value` requirement), to find the
    /// candidates by; `None` when it has none.
    pub fn equality(&self) -> Option<(&str, &str)> {
        self.0.iter().find_map(|r| match r {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }

    /// Whether the selector has no requirement (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = |key: &str| labels.get(key).map(String::as_str);
        match self {
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
            Self::Equals(k, v) => value(k) == Some(v.as_str()),
            Self::NotEquals(k, v) => value(k) != Some(v.as_str()),
            Self::In(k, vs) => value(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Self::NotIn(k, vs) => !value(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Self::GreaterThan(k, n) => value(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Self::LessThan(k, n) => value(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::GreaterThan(k, n) => format!("{k}>{n}"),
                Requirement::LessThan(k, n) => format!("{k}<{n}"),
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

/// The requirements of a selector: split at the commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => {
                if depth > 0 {
                    return Err("nested parentheses".into());
                }
                depth = 1;
            }
            ')' => {
                if depth == 0 {
                    return Err("a ')' without its '('".into());
                }
                depth = 0;
            }
            ',' if depth == 0 => {
                terms.push(text.get(start..i).unwrap_or_default());
                start = i.saturating_add(1);
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("a '(' without its ')'".into());
    }
    terms.push(text.get(start..).unwrap_or_default());
    Ok(terms)
}

/// One requirement's text.
fn requirement(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key.trim())?));
    }
    for (op, make) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = term.split_once(op) {
            return Ok(make(key_of(key.trim())?, value_of(value.trim())?));
        }
    }
    for (op, greater) in [(">", true), ("<", false)] {
        if let Some((key, n)) = term.split_once(op) {
            let n: i64 = n
                .trim()
                .parse()
                .map_err(|_| format!("{term:?}: {op} needs an integer"))?;
            let key = key_of(key.trim())?;
            return Ok(if greater {
                Requirement::GreaterThan(key, n)
            } else {
                Requirement::LessThan(key, n)
            });
        }
    }
    if let Some(open) = term.find('(') {
        let head = term.get(..open).unwrap_or_default().trim();
        let inner = term
            .get(open.saturating_add(1)..)
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| format!("{term:?}: the value list must end with ')'"))?;
        let values = inner
            .split(',')
            .map(|v| value_of(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| format!("{term:?}: expected `key in (...)` or `key notin (...)`"))?;
        let key = key_of(key.trim())?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("{term:?}: unknown operator {other:?}")),
        };
    }
    Ok(Requirement::Exists(key_of(term)?))
}

/// A label key: an optional DNS-subdomain prefix and `/`, and a name of letters, digits, `-`,
/// `_` and `.`.
fn key_of(key: &str) -> Result<String, String> {
    let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
    let ok = !name.is_empty()
        && name.len() <= 63
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!("{key:?} is not a label key"))
    }
}

/// A label value: empty, or up to 63 letters, digits, `-`, `_` and `.`.
fn value_of(value: &str) -> Result<String, String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not a label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn equality_and_sets_match_as_in_kubernetes() {
        let s = Selector::parse("app=web,tier in (front, edge),!canary,track!=beta").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("canary", "")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("track", "beta")
        ])));
        assert_eq!(
            s.to_string(),
            "app=web,tier in (front,edge),!canary,track!=beta"
        );
    }

    #[test]
    fn the_forms_a_deployment_and_a_statefulset_write_parse() {
        let s = Selector::parse("app.kubernetes.io/name=checkout,env notin (dev),release").unwrap();
        assert!(s.matches(&labels(&[
            ("app.kubernetes.io/name", "checkout"),
            ("release", "1")
        ])));
        assert!(!s.matches(&labels(&[("app.kubernetes.io/name", "checkout")])));
        assert!(
            Selector::parse("app==x")
                .unwrap()
                .matches(&labels(&[("app", "x")]))
        );
        assert!(
            Selector::parse("gen>3")
                .unwrap()
                .matches(&labels(&[("gen", "4")]))
        );
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        let s = Selector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn broken_selectors_say_what_is_wrong() {
        for (text, why) in [
            ("app=web,", "empty requirement"),
            ("tier in (a,b", "without its ')'"),
            ("tier in a,b)", "without its '('"),
            ("tier within (a)", "unknown operator"),
            ("app=we b", "not a label value"),
            ("a b c", "not a label key"),
            ("gen>x", "needs an integer"),
        ] {
            let e = Selector::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
        let long = "a=b,".repeat(5000);
        assert!(
            Selector::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
    }
}
