//! The target as one reconcile read it.

/// The target's /scale as read: its replicas, its uid and the resourceVersion they were read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRead {
    pub replicas: i32,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}
