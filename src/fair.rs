//! Slots shared fairly between tenants (namespaces): reconciles and Prometheus queries are
//! served in turn, one namespace after another, so that one namespace's backlog never waits ahead
//! of another namespace's next request, and no namespace holds more than its share of the slots
//! (total / namespaces with work, at least one) — a server that hangs holds at most its own
//! namespace's share.
//!
//! Depends on nothing else in the crate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Slots shared by keys (namespaces), granted in turn.
#[derive(Debug)]
pub struct FairSlots {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    total: usize,
    free: usize,
    /// Slots held, per key (only keys holding some).
    held: HashMap<String, usize>,
    /// Waiters per key, first come first served within a key.
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Keys with waiters, in the order they are served.
    turn: VecDeque<String>,
}

/// A slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    state: Arc<Mutex<State>>,
    key: String,
    /// How long the request waited for it.
    pub waited: Duration,
}

impl FairSlots {
    /// `total` slots (at least one).
    pub fn new(total: usize) -> Self {
        let total = total.max(1);
        Self {
            state: Arc::new(Mutex::new(State {
                total,
                free: total,
                held: HashMap::new(),
                waiting: HashMap::new(),
                turn: VecDeque::new(),
            })),
        }
    }

    /// Waits for a slot for `key`.
    pub async fn acquire(&self, key: &str) -> Slot {
        let started = Instant::now();
        let receiver = {
            let mut state = lock(&self.state);
            if state.turn.is_empty() && state.free > 0 && state.under_share(key, true) {
                state.take(key);
                None
            } else {
                let (tx, rx) = oneshot::channel();
                let queue = state.waiting.entry(key.to_owned()).or_default();
                queue.push_back(tx);
                if queue.len() == 1 {
                    state.turn.push_back(key.to_owned());
                }
                // A slot may be free for this key even though others wait for theirs.
                state.grant();
                Some(rx)
            }
        };
        if let Some(rx) = receiver {
            // The sender is only dropped with the state, which this holds: a closed channel
            // cannot happen, and would only mean the slot was given.
            let _ = rx.await;
        }
        Slot {
            state: self.state.clone(),
            key: key.to_owned(),
            waited: started.elapsed(),
        }
    }

    /// Slots held by `key` now.
    pub fn held(&self, key: &str) -> usize {
        lock(&self.state).held.get(key).copied().unwrap_or(0)
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// The keys with work: holding slots or waiting for one (`key` counted when `joining`).
    fn active(&self, key: &str, joining: bool) -> usize {
        let mut keys = self.held.len();
        for k in self.waiting.keys() {
            if !self.held.contains_key(k) {
                keys = keys.saturating_add(1);
            }
        }
        if joining && !self.held.contains_key(key) && !self.waiting.contains_key(key) {
            keys = keys.saturating_add(1);
        }
        keys.max(1)
    }

    /// Whether `key` holds less than its share of the slots.
    fn under_share(&self, key: &str, joining: bool) -> bool {
        let share = self
            .total
            .checked_div(self.active(key, joining))
            .unwrap_or(self.total)
            .max(1);
        self.held.get(key).copied().unwrap_or(0) < share
    }

    fn take(&mut self, key: &str) {
        self.free = self.free.saturating_sub(1);
        let held = self.held.entry(key.to_owned()).or_insert(0);
        *held = held.saturating_add(1);
    }

    /// Gives free slots to waiters, key after key, each under its share.
    fn grant(&mut self) {
        let mut passes = self.turn.len();
        while self.free > 0 && passes > 0 {
            let Some(key) = self.turn.pop_front() else {
                break;
            };
            passes = passes.saturating_sub(1);
            if !self.under_share(&key, false) {
                self.turn.push_back(key);
                continue;
            }
            let Some(queue) = self.waiting.get_mut(&key) else {
                continue;
            };
            let mut granted = false;
            while let Some(waiter) = queue.pop_front() {
                if waiter.send(()).is_ok() {
                    granted = true;
                    break;
                }
                // The waiter gave up (its reconcile was cancelled): the next one.
            }
            let more = !queue.is_empty();
            if !more {
                self.waiting.remove(&key);
            }
            if granted {
                self.take(&key);
                // Served: others first.
                passes = self.turn.len().saturating_add(usize::from(more));
            }
            if more {
                self.turn.push_back(key);
            }
        }
    }

    fn give_back(&mut self, key: &str) {
        if let Some(held) = self.held.get_mut(key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.held.remove(key);
            }
        }
        self.free = self.free.saturating_add(1).min(self.total);
        self.grant();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.state).give_back(&self.key);
    }
}

/// A per-key budget of events per period (a token bucket): each key may spend `per_period` at
/// once and earns them back evenly over `period`. Reserving past the budget is allowed and
/// queues: the answer is how long the caller waits for its turn, so one key's backlog delays
/// only that key.
#[derive(Debug)]
pub struct Budget {
    per_period: f64,
    period: Duration,
    /// Per key: the tokens left (negative: reserved ahead) at an instant.
    keys: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Keys remembered at most; past it, keys with a full budget are forgotten.
const BUDGET_KEYS: usize = 100_000;

impl Budget {
    /// `per_period` events per `period` for each key (at least one event, and a period of at
    /// least a millisecond).
    pub fn new(per_period: u32, period: Duration) -> Self {
        Self {
            per_period: f64::from(per_period.max(1)),
            period: period.max(Duration::from_millis(1)),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The events of one period.
    pub fn per_period(&self) -> u32 {
        // Built from a u32 and never changed.
        self.per_period as u32
    }

    /// Spends one event of `key` at `now`: how long to wait before it may happen (zero within
    /// the budget).
    pub fn reserve_at(&self, key: &str, now: Instant) -> Duration {
        let rate = self.per_period / self.period.as_secs_f64();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= BUDGET_KEYS && !keys.contains_key(key) {
            let full = self.per_period;
            keys.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < full
            });
        }
        let (tokens, at) = keys.entry(key.to_owned()).or_insert((self.per_period, now));
        let earned = now.saturating_duration_since(*at).as_secs_f64() * rate;
        *tokens = (*tokens + earned).min(self.per_period) - 1.0;
        *at = now;
        if *tokens >= -1e-9 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-*tokens / rate).unwrap_or(Duration::MAX)
        }
    }

    /// [`Budget::reserve_at`] now.
    pub fn reserve(&self, key: &str) -> Duration {
        self.reserve_at(key, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves at once if `f` is ready, else None.
    async fn now<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_free_slot_is_taken_at_once() {
        let slots = FairSlots::new(2);
        let a = slots.acquire("a").await;
        let b = slots.acquire("b").await;
        assert_eq!((slots.held("a"), slots.held("b")), (1, 1));
        drop((a, b));
        assert_eq!(slots.held("a"), 0);
    }

    #[tokio::test]
    async fn one_namespace_backlog_never_waits_ahead_of_another_namespace() {
        let slots = Arc::new(FairSlots::new(1));
        let first = slots.acquire("busy").await;
        // The busy namespace queues many requests, then another namespace asks once.
        let mut backlog = Vec::new();
        for _ in 0..20 {
            let s = slots.clone();
            backlog.push(tokio::spawn(async move { s.acquire("busy").await }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = slots.clone();
        let mut quiet = tokio::spawn(async move { s.acquire("quiet").await });
        tokio::time::sleep(Duration::from_millis(20)).await;

        // The busy namespace asked first: the freed slot is its turn.
        drop(first);
        assert!(now(&mut quiet).await.is_none());
        let mut served = None;
        for h in &mut backlog {
            if let Some(slot) = now(h).await {
                served = Some(slot.unwrap());
                break;
            }
        }
        assert!(served.is_some(), "one of the backlog was served");
        // At the next release the quiet namespace is served, not the 19 others of the busy one.
        drop(served);
        let slot = now(&mut quiet)
            .await
            .expect("served after one release")
            .unwrap();
        assert_eq!(slots.held("busy"), 0);
        drop(slot);
        for h in backlog {
            h.abort();
        }
    }

    #[tokio::test]
    async fn a_namespace_holds_at_most_its_share_while_others_wait() {
        let slots = Arc::new(FairSlots::new(4));
        // A hung server: this namespace's requests never end.
        let mut hung = Vec::new();
        for _ in 0..4 {
            hung.push(slots.acquire("hung").await);
        }
        assert_eq!(slots.held("hung"), 4, "alone, it may use every slot");
        let s = slots.clone();
        let waiting = tokio::spawn(async move { s.acquire("ok").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The hung namespace gives one back; with two namespaces at work its share is 2.
        drop(hung.pop());
        let ok = now(waiting).await.expect("served").unwrap();
        drop(hung.pop());
        let s = slots.clone();
        let more_hung = tokio::spawn(async move { s.acquire("hung").await });
        let s = slots.clone();
        let more_ok = tokio::spawn(async move { s.acquire("ok").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // hung holds 2 (its share), ok holds 1, one slot is free: it goes to ok, not hung.
        assert_eq!(slots.held("hung"), 2);
        assert_eq!(slots.held("ok"), 2);
        assert!(now(more_ok).await.is_some());
        assert!(
            now(more_hung).await.is_none(),
            "over its share while another works"
        );
        drop(ok);
        drop(hung);
    }

    /// About `secs` seconds (the budget's arithmetic is in floating point).
    fn about(d: Duration, secs: f64) -> bool {
        (d.as_secs_f64() - secs).abs() < 1e-6
    }

    #[test]
    fn a_namespace_over_its_budget_waits_and_another_does_not() {
        let budget = Budget::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.reserve_at("noisy", t0), Duration::ZERO);
        }
        // The 4th and 5th wait for the tokens earned back: one every 20 s.
        assert!(about(budget.reserve_at("noisy", t0), 20.0));
        assert!(about(budget.reserve_at("noisy", t0), 40.0));
        // Another namespace is not touched.
        assert_eq!(budget.reserve_at("quiet", t0), Duration::ZERO);
        // A minute later the noisy one has earned 3 back, of which 2 were reserved ahead.
        let later = t0 + Duration::from_secs(60);
        assert!(about(budget.reserve_at("noisy", later), 0.0));
        assert!(about(budget.reserve_at("noisy", later), 20.0));
        // Earning stops at the budget: an idle hour gives no burst beyond it.
        let idle = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(about(budget.reserve_at("noisy", idle), 0.0));
        }
        assert!(budget.reserve_at("noisy", idle) > Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_slot_on() {
        let slots = Arc::new(FairSlots::new(1));
        let held = slots.acquire("a").await;
        let s = slots.clone();
        let gave_up = tokio::spawn(async move { s.acquire("b").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gave_up.abort();
        let s = slots.clone();
        let next = tokio::spawn(async move { s.acquire("c").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(now(next).await.is_some());
    }
}
