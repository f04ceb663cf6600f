//! The apply step of a reconcile: the writes of a [`Plan`], in its order. The target's replicas
//! through /scale first, then the status (server-side apply), then the events. A failed write
//! stops the writes after it and is returned; a failed event is logged and never fails the
//! reconcile.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::error::{Error, is_conflict};
use super::events::Publisher;
use super::plan::{Note, Plan};
use crate::api::{ScalingPolicy, ScalingPolicyStatus};

/// The field manager of every write scalewise makes.
pub const FIELD_MANAGER: &str = "scalewise";
/// How often a write that met a conflict (409) is sent again at once.
const CONFLICT_RETRIES: u32 = 3;

/// Where the writes go.
pub struct Writer<'a> {
    pub client: &'a Client,
    pub events: &'a Publisher,
    /// Whether this replica may write now (it leads, or runs without leader election).
    pub may_write: &'a (dyn Fn() -> bool + Sync),
}

impl Writer<'_> {
    /// Makes the writes of `plan` for `object`.
    pub async fn apply(&self, object: &ScalingPolicy, plan: &Plan) -> Result<(), Error> {
        let namespace = object.namespace().ok_or(Error::MissingNamespace)?;
        if let Some(replicas) = plan.scale {
            self.ensure_leader()?;
            let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
            scale_to(&deployments, &object.spec.target_ref.name, replicas).await?;
        }
        if let Some(status) = &plan.status {
            self.ensure_leader()?;
            write_status(self.client, &namespace, &object.name_any(), status).await?;
        }
        for note in &plan.events {
            self.publish(object, note).await;
        }
        Ok(())
    }

    /// Publishes one event about `object`; a failure is logged, never fatal.
    pub async fn publish(&self, object: &ScalingPolicy, note: &Note) {
        if let Err(e) = self
            .events
            .publish(
                &object.object_ref(&()),
                note.type_,
                note.reason,
                note.action,
                &note.note,
            )
            .await
        {
            warn!(
                name = object.name_any(),
                reason = note.reason,
                "cannot publish event: {e}"
            );
        }
    }

    fn ensure_leader(&self) -> Result<(), Error> {
        if (self.may_write)() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }
}

/// Sets the target's replicas through /scale, retrying conflicts.
async fn scale_to(deployments: &Api<Deployment>, target: &str, replicas: i32) -> Result<(), Error> {
    let patch = json!({ "spec": { "replicas": replicas } });
    let params = PatchParams::default();
    let mut attempt = 0;
    loop {
        match deployments
            .patch_scale(target, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(Error::ScaleWrite(e)),
        }
    }
}

/// Writes the whole status with server-side apply (fields scalewise no longer sets are removed).
async fn write_status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &ScalingPolicyStatus,
) -> Result<(), Error> {
    let api: Api<ScalingPolicy> = Api::namespaced(client.clone(), namespace);
    let body = json!({
        "apiVersion": ScalingPolicy::api_version(&()),
        "kind": ScalingPolicy::kind(&()),
        "status": serde_json::to_value(status).map_err(Error::Encode)?,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt = 0;
    loop {
        match api.patch_status(name, &params, &Patch::Apply(&body)).await {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(Error::StatusWrite(e)),
        }
    }
}
