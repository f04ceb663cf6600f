//! The seasonal forecast of `spec.forecast`: a floor of replicas from what a metric did at the
//! same time of past seasons.
//!
//! The method is the highest of recent same-time windows: the forecast for a time `t` is the
//! highest value of the metric's history within one step of `t - k * season`, for each season of
//! the policy and `k` = 1 and 2 (the same time yesterday and the day before, last week and the
//! week before). It exists only when every one of those windows holds a point, so no forecast is
//! made before the history covers two full seasons of the longest season. The highest is taken
//! because the forecast only ever raises a floor: a forecast too low leaves the reactive metrics
//! in charge, one too high costs replicas, and its accuracy gate measures that cost.
//!
//! Accuracy is the weighted absolute percentage error (WAPE) over the trailing
//! `accuracyWindow`: for each point of the window, what the forecast would have said for it from
//! the history before it, against what the metric read, `Σ|forecast - actual| / Σ|actual|`.
//! It is recomputed from the history at every refresh, so nothing of it lives only in memory.
//! The floor is `ceil(forecast(now + start-up delay) / targetPerReplica)`: the replicas that
//! must be started now to be serving when the forecast load arrives.
//!
//! Everything here is a pure function of the history, the rule and the time: the controller,
//! the simulator and the CLI get the same answer from the same inputs.

use jiff::SignedDuration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decision::{Decision, Floor};
pub use crate::api::policy::FORECAST_RULE;
use crate::api::policy::ForecastRule;
use crate::api::{ForecastStatus, forecast_state};
use crate::text::{Precision, Resolution, duration, number};

/// Seasons back each season is looked at: the forecast needs two full seasons of history.
pub const SEASONS_BACK: i64 = 2;

/// A metric's history at a fixed step: `values[i]` is the value at `start + i * step` seconds,
/// `None` where the server had no point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The first point's time, in Unix seconds.
    pub start: i64,
    /// Seconds between points, at least 1.
    pub step: i64,
    pub values: Vec<Option<f64>>,
}

impl History {
    /// An empty history starting at `start` with `step` seconds between points.
    pub fn new(start: i64, step: i64) -> Self {
        Self {
            start,
            step: step.max(1),
            values: Vec::new(),
        }
    }

    /// The time of point `i`.
    fn time(&self, i: usize) -> i64 {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.start.saturating_add(i.saturating_mul(self.step))
    }

    /// The index of the first point at or after `t`.
    fn index_at_or_after(&self, t: i64) -> usize {
        let offset = t.saturating_sub(self.start);
        if offset <= 0 {
            return 0;
        }
        // Ceiling division, on positive numbers.
        let steps = offset
            .saturating_add(self.step.saturating_sub(1))
            .checked_div(self.step)
            .unwrap_or(0);
        usize::try_from(steps).unwrap_or(usize::MAX)
    }

    /// The time of the oldest point with a value.
    pub fn oldest(&self) -> Option<i64> {
        self.values
            .iter()
            .position(Option::is_some)
            .map(|i| self.time(i))
    }

    /// The time of the newest point with a value.
    pub fn newest(&self) -> Option<i64> {
        self.values
            .iter()
            .rposition(Option::is_some)
            .map(|i| self.time(i))
    }

    /// The highest value of the points within `[from, to]`, when one has a value.
    fn highest(&self, from: i64, to: i64) -> Option<f64> {
        let first = self.index_at_or_after(from);
        let mut best: Option<f64> = None;
        for (i, value) in self.values.iter().enumerate().skip(first) {
            if self.time(i) > to {
                break;
            }
            if let Some(v) = value {
                best = Some(best.map_or(*v, |b: f64| b.max(*v)));
            }
        }
        best
    }

    /// The value of the point at exactly `t`, when there is one.
    fn at(&self, t: i64) -> Option<f64> {
        let offset = t.checked_sub(self.start)?;
        if offset < 0 || offset.checked_rem(self.step)? != 0 {
            return None;
        }
        let i = usize::try_from(offset.checked_div(self.step)?).ok()?;
        self.values.get(i).copied().flatten()
    }

    /// Records `value` at `t` (the simulator's way of building the history the controller reads
    /// with a range query): a point is kept when `t` falls on the step; points skipped are gaps.
    /// A time before the last point, or off the step, is ignored.
    pub fn record(&mut self, t: i64, value: Option<f64>) {
        let offset = t.saturating_sub(self.start);
        if offset < 0 || offset.checked_rem(self.step) != Some(0) {
            return;
        }
        let Some(i) = offset
            .checked_div(self.step)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if i < self.values.len() {
            return;
        }
        self.values.resize(i, None);
        self.values.push(value.filter(|v| v.is_finite()));
    }

    /// Drops the points before `t`, keeping the step's alignment.
    pub fn forget_before(&mut self, t: i64) {
        let first = self.index_at_or_after(t).min(self.values.len());
        if first == 0 {
            return;
        }
        self.values.drain(..first);
        let first = i64::try_from(first).unwrap_or(i64::MAX);
        self.start = self.start.saturating_add(first.saturating_mul(self.step));
    }
}

/// The forecast for time `t` from `history`: the highest value within one step of `t - k *
/// season` for every season and `k` in 1..=[`SEASONS_BACK`]; `None` unless every one of those
/// windows holds a point.
pub fn predict(history: &History, seasons: &[SignedDuration], t: i64) -> Option<f64> {
    let half = history.step;
    let mut best: Option<f64> = None;
    for season in seasons {
        let season = season.as_secs();
        for k in 1..=SEASONS_BACK {
            let center = t.saturating_sub(season.saturating_mul(k));
            let v = history.highest(center.saturating_sub(half), center.saturating_add(half))?;
            best = Some(best.map_or(v, |b: f64| b.max(v)));
        }
    }
    best
}

/// Where the forecast stands at one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForecastState {
    /// Not enough history yet (two full seasons of the longest, and half of the accuracy
    /// window scored).
    Learning,
    /// Its error over the accuracy window is above `maxError`: it has no say.
    Inaccurate,
    /// It sets a floor (or, in shadow mode, records the floor it would set).
    Ready,
}

impl ForecastState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learning => forecast_state::LEARNING,
            Self::Inaccurate => forecast_state::INACCURATE,
            Self::Ready => forecast_state::READY,
        }
    }
}

/// The forecast's assessment at `now`: its state, the forecast value and floor for now plus the
/// start-up delay, and its measured error.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub state: ForecastState,
    /// The forecast of the metric at `now + horizon`, when there is one.
    pub value: Option<f64>,
    /// `ceil(value / targetPerReplica)`, when Ready.
    pub floor: Option<i32>,
    /// WAPE over the accuracy window, when at least half of its points were scored.
    pub error: Option<f64>,
    /// Points of the accuracy window scored (with both a value and a forecast).
    pub scored: usize,
    /// Seconds ahead the forecast looks (the start-up delay).
    pub horizon: SignedDuration,
    /// One line for humans: `floor 5: forecast 230 req/s in 2m at 50 per replica (error 12%)`.
    pub message: String,
}

/// Assesses the forecast of `rule` at `now` (Unix seconds) from `history`, looking `horizon`
/// ahead, its accuracy measured at `now`.
pub fn assess(
    history: &History,
    rule: &ForecastRule,
    now: i64,
    horizon: SignedDuration,
) -> Assessment {
    assess_measured(history, rule, now, horizon, &measure(history, rule, now))
}

/// The forecast's accuracy over the window ending at `at`, measured once per read of the
/// history ([`measure`]): it depends on the history alone, not on the evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Points of the window with both a value and a forecast.
    pub scored: usize,
    /// Points the window holds.
    pub expected: usize,
    /// WAPE over the scored points.
    pub error: f64,
}

/// Measures the forecast's accuracy over `rule`'s accuracy window ending at `at`: for each
/// point, what the forecast would have said for it from the history before it, against what the
/// metric read.
pub fn measure(history: &History, rule: &ForecastRule, at: i64) -> Accuracy {
    let (scored, expected, error) = accuracy(history, rule, at);
    Accuracy {
        scored,
        expected,
        error,
    }
}

/// [`assess`] with the accuracy [`measure`]d when the history was read.
pub fn assess_measured(
    history: &History,
    rule: &ForecastRule,
    now: i64,
    horizon: SignedDuration,
    measured: &Accuracy,
) -> Assessment {
    let longest = rule.seasons.iter().map(|s| s.as_secs()).max().unwrap_or(0);
    let needed = longest.saturating_mul(SEASONS_BACK);
    let have = history
        .oldest()
        .map_or(0, |oldest| now.saturating_sub(oldest).max(0));
    let ahead = now.saturating_add(horizon.as_secs().max(0));
    let value = predict(history, &rule.seasons, ahead);
    let mut a = Assessment {
        state: ForecastState::Learning,
        value,
        floor: None,
        error: None,
        scored: 0,
        horizon,
        message: String::new(),
    };
    // One step of slack: the range query's first point is at most one step after its start.
    if have.saturating_add(history.step) < needed {
        a.message = format!(
            "learning: {} of history, it needs {} (two of its longest season)",
            secs(have),
            secs(needed)
        );
        return a;
    }

    let Accuracy {
        scored,
        expected,
        error,
    } = *measured;
    a.scored = scored;
    if scored.saturating_mul(2) < expected || scored == 0 {
        a.message = format!(
            "learning: {scored} of the {expected} points of the last {} could be scored against what the metric read",
            secs(rule.accuracy_window.as_secs())
        );
        return a;
    }
    a.error = Some(error);
    let shown_error = percent(error);
    if error > rule.max_error {
        a.state = ForecastState::Inaccurate;
        a.message = format!(
            "inaccurate: error {shown_error} over the last {} is above maxError {}: no say",
            secs(rule.accuracy_window.as_secs()),
            percent(rule.max_error)
        );
        return a;
    }
    let Some(value) = value else {
        a.message = format!(
            "learning: no history at the same time of the past seasons for {} ahead",
            secs(horizon.as_secs())
        );
        return a;
    };
    let floor = replicas_for(value, rule.per_replica);
    a.state = ForecastState::Ready;
    a.floor = Some(floor);
    a.message = format!(
        "floor {floor}: {} forecast {} ahead at {} per replica (error {shown_error})",
        number(value, Precision::Human),
        secs(horizon.as_secs()),
        number(rule.per_replica, Precision::Human),
    );
    a
}

/// Start-up delay a forecast assumes when the policy does not say and none is measured.
pub const DEFAULT_STARTUP_DELAY: SignedDuration = SignedDuration::from_mins(1);

/// How far ahead the forecast looks, and where that came from: the policy's `startupDelay`,
/// else `measured` (the controller: the target's pods; the simulator: its model's), else 1m.
pub fn horizon(
    rule: &ForecastRule,
    measured: Option<(SignedDuration, &'static str)>,
) -> (SignedDuration, &'static str) {
    if let Some(delay) = rule.startup_delay {
        return (delay, "spec.forecast.startupDelay");
    }
    measured.unwrap_or((DEFAULT_STARTUP_DELAY, "default (nothing to measure it on)"))
}

/// `ceil(value / per_replica)` as a replica count (saturating; 0 for a value of 0 or less).
pub fn replicas_for(value: f64, per_replica: f64) -> i32 {
    let wanted = (value / per_replica).ceil();
    if wanted.is_nan() || wanted <= 0.0 {
        0
    } else if wanted >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        // In (0, i32::MAX): exact.
        #[allow(clippy::cast_possible_truncation)]
        let n = wanted as i32;
        n
    }
}

/// The forecast's error over the accuracy window ending at `now`: (points scored, points the
/// window holds, WAPE). A window whose actual values are all 0 has error 0 when every forecast
/// was 0 too, and infinite otherwise.
fn accuracy(history: &History, rule: &ForecastRule, now: i64) -> (usize, usize, f64) {
    let from = now.saturating_sub(rule.accuracy_window.as_secs());
    let step = history.step;
    let expected = usize::try_from(
        rule.accuracy_window
            .as_secs()
            .checked_div(step)
            .unwrap_or(0)
            .max(1),
    )
    .unwrap_or(usize::MAX);
    let (mut scored, mut error, mut total) = (0usize, 0.0_f64, 0.0_f64);
    let mut t = history
        .start
        .saturating_add(
            history
                .index_at_or_after(from.saturating_add(1))
                .try_into()
                .unwrap_or(i64::MAX)
                .saturating_mul(step),
        )
        .max(history.start);
    while t <= now {
        if let (Some(actual), Some(forecast)) = (history.at(t), predict(history, &rule.seasons, t))
        {
            scored = scored.saturating_add(1);
            error += (forecast - actual).abs();
            total += actual.abs();
        }
        t = t.saturating_add(step);
    }
    let wape = if total > 0.0 {
        error / total
    } else if error == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    (scored, expected, wape)
}

fn secs(s: i64) -> String {
    duration(
        std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)),
        Resolution::Seconds,
    )
}

fn percent(fraction: f64) -> String {
    if fraction.is_finite() {
        format!("{}%", number(fraction * 100.0, Precision::Human))
    } else {
        "unbounded (the metric read 0 throughout)".to_owned()
    }
}

/// The engine's floor from an assessment, when it is Ready.
pub fn floor(a: &Assessment, rule: &ForecastRule) -> Option<Floor> {
    match (a.state, a.floor) {
        (ForecastState::Ready, Some(replicas)) => Some(Floor {
            replicas,
            shadow: rule.shadow,
            reason: a.message.clone(),
        }),
        _ => None,
    }
}

/// `status.forecast` from an assessment (before the decision: [`record`] completes it).
pub fn status_of(
    a: &Assessment,
    rule: &ForecastRule,
    horizon_source: &str,
    read: Option<Time>,
    since: Option<Time>,
) -> ForecastStatus {
    ForecastStatus {
        mode: mode(rule).to_owned(),
        state: a.state.as_str().to_owned(),
        value: a.value,
        floor_replicas: a.floor,
        raised: false,
        error: a.error,
        max_error: rule.max_error,
        points_scored: i32::try_from(a.scored).unwrap_or(i32::MAX),
        horizon_seconds: a.horizon.as_secs(),
        horizon_source: horizon_source.to_owned(),
        history_read_time: read,
        history_since: since,
        message: a.message.clone(),
    }
}

/// `status` completed with what the floor did to `decision`.
pub fn record(mut status: ForecastStatus, decision: &Decision) -> ForecastStatus {
    if let Some(outcome) = &decision.forecast {
        status.raised = outcome.raised;
        status.message = match (outcome.raised, outcome.shadow) {
            (true, true) => format!(
                "shadow: would raise the proposal from {} to {}: {}",
                outcome.reactive, outcome.floor, status.message
            ),
            (true, false) => format!(
                "raised the proposal from {} to {}: {}",
                outcome.reactive, outcome.floor, status.message
            ),
            (false, true) => format!(
                "shadow: the metrics proposed {}, at or above the floor: {}",
                outcome.reactive, status.message
            ),
            (false, false) => format!(
                "the metrics proposed {}, at or above the floor: {}",
                outcome.reactive, status.message
            ),
        };
    }
    status
}

pub fn mode(rule: &ForecastRule) -> &'static str {
    if rule.shadow { "Shadow" } else { "Active" }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rule(seasons: &[i64], window: i64) -> ForecastRule {
        ForecastRule {
            metric: "load".into(),
            per_replica: 10.0,
            seasons: seasons
                .iter()
                .map(|s| SignedDuration::from_secs(*s))
                .collect(),
            step: SignedDuration::from_secs(60),
            refresh: SignedDuration::from_secs(600),
            accuracy_window: SignedDuration::from_secs(window),
            max_error: 0.3,
            shadow: false,
            startup_delay: None,
        }
    }

    /// A history from 0 with one point a minute for `minutes`, from `f(t)`.
    fn history(minutes: i64, f: impl Fn(i64) -> f64) -> History {
        let mut h = History::new(0, 60);
        for m in 0..minutes {
            h.record(m * 60, Some(f(m * 60)));
        }
        h
    }

    /// A daily-shaped load with a one-hour season: 100 at the top of each hour's second half.
    fn hourly(t: i64) -> f64 {
        if t % 3600 >= 1800 { 100.0 } else { 20.0 }
    }

    #[test]
    fn no_forecast_before_two_full_seasons() {
        let r = rule(&[3600], 1800);
        let h = history(100, hourly);
        let a = assess(&h, &r, 99 * 60, SignedDuration::from_secs(120));
        assert_eq!(a.state, ForecastState::Learning);
        assert_eq!(a.floor, None);
        assert!(a.message.contains("it needs 2h"), "{}", a.message);
    }

    #[test]
    fn a_repeating_season_is_forecast_exactly_and_sets_the_floor() {
        let r = rule(&[3600], 1800);
        let h = history(230, hourly);
        // Now 229 minutes (in the second half of the hour: 100), horizon 2m: 100 at 231 min.
        let now = 229 * 60;
        let a = assess(&h, &r, now, SignedDuration::from_secs(120));
        assert_eq!(a.state, ForecastState::Ready, "{}", a.message);
        // Within one step of the season's edges the highest neighbour is taken.
        assert_eq!(a.value, Some(100.0));
        assert_eq!(a.floor, Some(10));
        assert!(a.error.is_some_and(|e| e < 0.3), "{:?}", a.error);
        assert!(
            a.message.starts_with("floor 10: 100 forecast 2m ahead"),
            "{}",
            a.message
        );
    }

    #[test]
    fn an_unpredictable_metric_is_inaccurate_and_has_no_floor() {
        let r = rule(&[3600], 1800);
        // The last half hour is ten times what the past seasons saw.
        let h = history(200, |t| if t > 170 * 60 { 1000.0 } else { hourly(t) });
        let a = assess(&h, &r, 199 * 60, SignedDuration::from_secs(60));
        assert_eq!(a.state, ForecastState::Inaccurate, "{}", a.message);
        assert_eq!(a.floor, None);
        assert!(a.message.contains("above maxError 30%"), "{}", a.message);
    }

    #[test]
    fn gaps_in_the_accuracy_window_keep_it_learning() {
        let r = rule(&[3600], 1800);
        let mut h = history(170, hourly);
        // Thirty minutes without data, then one point.
        h.record(199 * 60, Some(20.0));
        let a = assess(&h, &r, 199 * 60, SignedDuration::from_secs(60));
        assert_eq!(a.state, ForecastState::Learning, "{}", a.message);
        assert!(a.message.contains("could be scored"), "{}", a.message);
    }

    #[test]
    fn a_history_recorded_off_the_step_keeps_its_points_only() {
        let mut h = History::new(0, 60);
        h.record(30, Some(1.0));
        h.record(120, Some(2.0));
        h.record(60, Some(9.0));
        h.record(180, Some(f64::NAN));
        assert_eq!(h.values, vec![None, None, Some(2.0), None]);
        h.forget_before(100);
        assert_eq!((h.start, h.values.len()), (120, 2));
    }

    proptest! {
        /// The same history, rule and time give the same assessment, and the floor is never
        /// below what the forecast value needs nor set without two seasons.
        #[test]
        fn deterministic_and_never_without_two_seasons(
            values in proptest::collection::vec(proptest::option::of(0.0f64..1000.0), 0..400),
            season in 5i64..120,
            now_offset in 0i64..400,
            horizon in 0i64..600,
        ) {
            let r = rule(&[season * 60], 1800);
            let h = History { start: 0, step: 60, values };
            let now = now_offset * 60;
            let a = assess(&h, &r, now, SignedDuration::from_secs(horizon));
            let b = assess(&h.clone(), &r, now, SignedDuration::from_secs(horizon));
            prop_assert_eq!(&a, &b);
            if a.state == ForecastState::Ready {
                let oldest = h.oldest().unwrap_or(now);
                prop_assert!(now - oldest + 60 >= 2 * season * 60);
                let value = a.value.unwrap_or(f64::NAN);
                let floor = a.floor.unwrap_or(-1);
                prop_assert!(f64::from(floor) * 10.0 >= value);
                prop_assert!(a.error.is_some_and(|e| e <= r.max_error));
            } else {
                prop_assert_eq!(a.floor, None);
            }
        }
    }
}
