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
        let name = format!("{}.{:x}", key.object, now.as_nanosecond());
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
