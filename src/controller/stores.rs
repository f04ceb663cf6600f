//! Waiting for the watch caches (reflector stores) the controller reads.

use std::time::Duration;

use kube::runtime::reflector::Store;

/// Waits until `store` has its first complete listing; false when its writer is gone.
///
/// kube-runtime's readiness signal wakes only the most recent waiter (it is a oneshot channel
/// with a single waker), and the controller itself waits on the policy store, so every other
/// waiter re-polls.
pub async fn until_ready<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}
