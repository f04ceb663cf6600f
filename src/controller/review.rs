//! Who may read the operator's `/metrics`, asked of the API server as kube-rbac-proxy asks: a
//! TokenReview of the client's bearer token, then a SubjectAccessReview of `get` on the
//! non-resource URL `/metrics` for the user it names. Both kinds are cluster-scoped (the chart
//! binds the operator to `system:auth-delegator` for them, even in `watchNamespaces` mode).

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::telemetry::secure::{Authorize, Verdict};

/// Reviews tokens with the operator's own client, each call within `timeout`.
pub struct ApiReview {
    pub client: Client,
    pub timeout: Duration,
}

impl ApiReview {
    async fn verdict(&self, token: &str) -> Result<Verdict, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = tokio::time::timeout(
            self.timeout,
            Api::<TokenReview>::all(self.client.clone()).create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| "the TokenReview timed out".to_owned())?
        .map_err(|e| format!("TokenReview: {e}"))?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Ok(Verdict::Unauthenticated(
                status
                    .error
                    .unwrap_or_else(|| "not authenticated".to_owned()),
            ));
        }
        let user = status.user.unwrap_or_default();
        let name = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".to_owned()),
                    verb: Some("get".to_owned()),
                }),
                resource_attributes: None,
            },
            ..SubjectAccessReview::default()
        };
        let decided = tokio::time::timeout(
            self.timeout,
            Api::<SubjectAccessReview>::all(self.client.clone())
                .create(&PostParams::default(), &access),
        )
        .await
        .map_err(|_| "the SubjectAccessReview timed out".to_owned())?
        .map_err(|e| format!("SubjectAccessReview: {e}"))?;
        Ok(if decided.status.is_some_and(|s| s.allowed) {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(crate::text::shorten(&name, 253))
        })
    }
}

impl Authorize for ApiReview {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(self.verdict(token))
    }
}
