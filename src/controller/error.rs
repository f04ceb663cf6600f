//! Reconcile errors, each with a fixed category used as event reason and metric label.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ScalingPolicy has no namespace")]
    MissingNamespace,
    #[error("cannot read the target's /scale: {0}")]
    ScaleRead(#[source] kube::Error),
    #[error(
        "cannot read the policy from the API server, which this replica does before its first evaluation of a policy it took over: {0}"
    )]
    PolicyRead(#[source] kube::Error),
    #[error("cannot scale the target: {0}")]
    ScaleWrite(#[source] kube::Error),
    #[error("cannot write the policy's status: {0}")]
    StatusWrite(#[source] kube::Error),
    #[error(
        "cannot record the scale from {from} to {to} in the policy's status before making it, so the target was not scaled: {source}"
    )]
    IntentNotRecorded {
        from: i32,
        to: i32,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the target was deleted and created again while this policy decided; deciding again for the new object"
    )]
    TargetReplaced,
    #[error("cannot encode the policy's status: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("this replica is no longer the leader, or could not renew its lease in time")]
    NotLeader,
    #[error("the API server did not answer the {call} call within {}s", after.as_secs())]
    Timeout {
        call: &'static str,
        after: std::time::Duration,
    },
    #[error("the reconcile panicked: {0}")]
    Panicked(String),
    #[error(
        "the target was scaled from {decided_from} to {now} by someone else while this policy decided; deciding again from {now}"
    )]
    TargetChanged { decided_from: i32, now: i32 },
    #[error("{0}")]
    Discovery(String),
    #[error("a scale was planned without a read of the target (a bug): not scaling")]
    ScaleUnread,
}

impl Error {
    /// A fixed, bounded label: never free text.
    pub fn category(&self) -> &'static str {
        match self {
            Self::MissingNamespace => "InvalidObject",
            Self::ScaleRead(_) => "ScaleReadFailed",
            Self::PolicyRead(_) => "PolicyReadFailed",
            Self::ScaleWrite(_) => "ScaleWriteFailed",
            Self::StatusWrite(_) => "StatusWriteFailed",
            Self::IntentNotRecorded { .. } => "IntentNotRecorded",
            Self::TargetReplaced => "TargetReplaced",
            Self::Encode(_) => "EncodeFailed",
            Self::NotLeader => "NotLeader",
            Self::Timeout { .. } => "ApiTimeout",
            Self::Panicked(_) => "ReconcilePanicked",
            Self::TargetChanged { .. } => "TargetChanged",
            Self::Discovery(_) => "DiscoveryFailed",
            Self::ScaleUnread => "InternalError",
        }
    }

    /// Whether this error from patching the target's /scale means the patch certainly did not
    /// happen: the API server refused it (4xx), or a fresh read showed a concurrent change. A
    /// dropped connection or a server error may have been applied anyway.
    pub fn certainly_not_applied(&self) -> bool {
        match self {
            Self::TargetChanged { .. } | Self::TargetReplaced | Self::ScaleRead(_) => true,
            Self::ScaleWrite(kube::Error::Api(status)) => (400..500).contains(&status.code),
            _ => false,
        }
    }

    /// The error with its whole cause chain, for events.
    pub fn chain(&self) -> String {
        crate::text::error_chain(self, crate::text::Causes::New)
    }
}

/// Whether an API error is a conflict (409) worth retrying at once.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Whether an API error says the object does not exist (404).
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
