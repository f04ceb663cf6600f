//! Kubernetes events (events.k8s.io/v1) about ScalingPolicies.
//!
//! Repeats of the same event (same object, type, reason, action and note) within six minutes
//! update one Event's series count instead of creating new objects, so a repeated fight over a
//! target stays one event with a count. Unlike kube-runtime's `Recorder`, the note is part of
//! what makes two events the same: every scale action keeps its own explanation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// How long a published event is remembered for counting repeats.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// The longest name of an object (a DNS subdomain), such as an Event.
const MAX_NAME_LENGTH: usize = 253;

/// The name of an Event about `object` created at `nanos` (nanoseconds since the epoch):
/// `object.<nanos in hex>`, as before, whenever that is a DNS subdomain of at most 253
/// characters. Otherwise (a policy name of more than 220 characters, or one that is not a DNS
/// subdomain) the object's name is cut, made lower-case letters, digits, '-' and '.', and
/// followed by a stable hash of the whole name (`-1a2b3c4d`), so that events of two policies
/// whose names share a long prefix keep apart.
pub fn event_name(object: &str, nanos: i128) -> String {
    let suffix = format!(".{:x}", nanos.unsigned_abs());
    let whole = format!("{object}{suffix}");
    if whole.len() <= MAX_NAME_LENGTH && is_subdomain(&whole) {
        return whole;
    }
    let hash = format!("-{:08x}", fnv1a(object.as_bytes()));
    let room = MAX_NAME_LENGTH
        .saturating_sub(suffix.len())
        .saturating_sub(hash.len());
    let kept: String = object
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(room)
        .collect();
    // Every dot-separated label must start and end with a letter or digit.
    let mut labels: Vec<&str> = kept
        .split('.')
        .map(|l| l.trim_matches('-'))
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() {
        labels.push("scalingpolicy");
    }
    format!("{}{hash}{suffix}", labels.join("."))
}

/// A 32-bit FNV-1a hash: short, stable across versions and platforms.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Whether `name` is a DNS subdomain: dot-separated labels of lower-case letters, digits and
/// '-', each starting and ending with a letter or digit.
fn is_subdomain(name: &str) -> bool {
    name.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-')
    })
}

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    object: String,
    uid: String,
    type_: EventType,
    reason: String,
    action: String,
    note: String,
}

#[derive(Clone, Debug)]
struct Published {
    /// The Event object's name.
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes events as the controller `controller`, instance `instance`.
pub struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Published>>,
}

impl Publisher {
    pub fn new(client: Client, controller: impl Into<String>, instance: impl Into<String>) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            published: Mutex::default(),
        }
    }

    /// Publishes one event about `regarding` (which must carry a namespace and name).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let key = Key {
            namespace: namespace.clone(),
            object: regarding.name.clone().unwrap_or_default(),
            uid: regarding.uid.clone().unwrap_or_default(),
            type_,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.to_owned(),
        };
        let now = Timestamp::now();
        let repeat = {
            let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
            published.retain(|_, p| now.duration_since(p.last).unsigned_abs() < SERIES_WINDOW);
            published.get_mut(&key).map(|p| {
                p.count = p.count.saturating_add(1);
                p.last = now;
                p.clone()
            })
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(p) = repeat {
            let series = EventSeries {
                count: p.count,
                last_observed_time: MicroTime(now),
            };
            let patch = serde_json::json!({ "series": series });
            match api
                .patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // The event expired or was deleted: publish it anew.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = event_name(&key.object, now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_.as_str().to_owned()),
            reason: Some(reason.to_owned()),
            action: Some(action.to_owned()),
            note: Some(note.to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        published.insert(
            key,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i128 = 1_767_225_600_123_456_789;

    #[test]
    fn an_ordinary_policy_name_keeps_the_event_name_it_always_had() {
        assert_eq!(event_name("checkout", NOW), format!("checkout.{NOW:x}"));
        assert_eq!(event_name("web.shop-1", NOW), format!("web.shop-1.{NOW:x}"));
    }

    #[test]
    fn a_253_character_policy_name_gives_a_valid_event_name_of_at_most_253() {
        let long = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        assert_eq!(long.len(), 253);
        let name = event_name(&long, NOW);
        assert!(name.len() <= MAX_NAME_LENGTH, "{} bytes", name.len());
        assert!(is_subdomain(&name), "{name}");
        assert!(name.starts_with(&"a".repeat(126)), "{name}");
        assert!(name.ends_with(&format!("-{:08x}.{NOW:x}", fnv1a(long.as_bytes()))));
        // The same inputs give the same name.
        assert_eq!(event_name(&long, NOW), name);
    }

    #[test]
    fn long_names_with_a_common_prefix_get_different_event_names() {
        let a = format!("{}-a", "x".repeat(250));
        let b = format!("{}-b", "x".repeat(250));
        assert_ne!(event_name(&a, NOW), event_name(&b, NOW));
    }

    #[test]
    fn a_cut_never_leaves_a_label_ending_in_a_dash_or_a_dot() {
        for cut in 200..253 {
            let object = format!("{}{}", "a-.".repeat(cut / 3), "b".repeat(253 - cut / 3 * 3));
            let name = event_name(&object, NOW);
            assert!(name.len() <= MAX_NAME_LENGTH, "{name}");
            assert!(is_subdomain(&name), "{name}");
        }
    }

    #[test]
    fn names_that_are_not_subdomains_still_give_valid_event_names() {
        for object in [
            "",
            "-",
            "...",
            "Web_Shop",
            "ünïcode",
            "a..b",
            &"Ä".repeat(300),
        ] {
            let name = event_name(object, NOW);
            assert!(name.len() <= MAX_NAME_LENGTH, "{object:?}: {name}");
            assert!(is_subdomain(&name), "{object:?}: {name}");
        }
        assert!(is_subdomain(&event_name("web", -1)));
    }
}
