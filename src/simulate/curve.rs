//! The HPA's trade-off curve (`--hpa-sweep`): the HPA run at a range of CPU targets gives points
//! (SLO minutes, replica-hours), and a policy is judged against the piecewise-linear line through
//! them rather than against one target the policy's own thresholds would pick.

use std::str::FromStr;

/// The most points a sweep may run (each is a whole simulation).
pub const MAX_POINTS: usize = 50;
/// The highest CPU utilization target, in percent, the flags take.
pub const MAX_TARGET: u32 = 1000;

/// `--hpa-sweep FROM:TO:STEP`: CPU targets in whole percents, as an HPA's
/// `averageUtilization` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sweep {
    pub from: u32,
    pub to: u32,
    pub step: u32,
}

impl Sweep {
    /// The targets, from `from` to at most `to`.
    pub fn targets(&self) -> Vec<u32> {
        let step = usize::try_from(self.step.max(1)).unwrap_or(usize::MAX);
        (self.from..=self.to).step_by(step).collect()
    }
}

impl FromStr for Sweep {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [from, to, step] = parts.as_slice() else {
            return Err(format!(
                "{text:?} is not FROM:TO:STEP (three whole percents, such as 40:90:10)"
            ));
        };
        let number = |what: &str, part: &str| {
            part.trim().parse::<u32>().map_err(|_| {
                format!("{what} {part:?} of {text:?} is not a whole number of percent")
            })
        };
        let (from, to, step) = (
            number("FROM", from)?,
            number("TO", to)?,
            number("STEP", step)?,
        );
        if from < 1 || to > MAX_TARGET {
            return Err(format!(
                "{text:?}: targets must lie between 1 and {MAX_TARGET} percent"
            ));
        }
        if from > to {
            return Err(format!("{text:?}: FROM ({from}) is above TO ({to})"));
        }
        if step < 1 {
            return Err(format!("{text:?}: STEP must be at least 1"));
        }
        let sweep = Self { from, to, step };
        let points = sweep.targets().len();
        if points > MAX_POINTS {
            return Err(format!(
                "{text:?} runs {points} targets, more than {MAX_POINTS}: take a larger STEP"
            ));
        }
        Ok(sweep)
    }
}

/// A `--hpa-target` value: a whole percent from 1 to [`MAX_TARGET`].
pub fn parse_target(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_TARGET).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a CPU utilization target: a whole percent from 1 to {MAX_TARGET}"
        )),
    }
}

/// The label of the HPA swept at `target`.
pub fn label(target: u32) -> String {
    format!("{SWEPT}{target}")
}

/// Whether `label` is one of a sweep's HPAs ([`label`]).
pub fn is_swept(label: &str) -> bool {
    label.starts_with(SWEPT)
}

/// What every swept HPA's label starts with.
const SWEPT: &str = "hpa@";

/// One run on the curve: its SLO minutes and replica-hours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub slo_minutes: f64,
    pub replica_hours: f64,
}

/// Where a policy lies against the curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// At the policy's SLO minutes, the curve needs `curve` replica-hours, more than the policy.
    Below { curve: f64 },
    /// The curve needs `curve` replica-hours, no more than the policy.
    Above { curve: f64 },
    /// The policy has more SLO minutes than every point (`most`): the curve does not reach it.
    Beyond { most: f64 },
    /// No point to compare with.
    Empty,
}

/// The curve's replica-hours at `slo_minutes`: the piecewise-linear line through the points in
/// order of SLO minutes (of points with the same SLO minutes, the one with the fewest
/// replica-hours). Left of the first point (fewer SLO minutes than any swept HPA) it is the first
/// point's replica-hours: fewer SLO minutes cost at least as much, so a policy found below it is
/// below the true curve too. `None` right of the last point.
pub fn at(points: &[Point], slo_minutes: f64) -> Option<f64> {
    let mut sorted: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.slo_minutes.is_finite() && p.replica_hours.is_finite())
        .collect();
    sorted.sort_by(|a, b| {
        a.slo_minutes
            .total_cmp(&b.slo_minutes)
            .then(a.replica_hours.total_cmp(&b.replica_hours))
    });
    sorted.dedup_by(|later, kept| later.slo_minutes == kept.slo_minutes);
    let first = sorted.first()?;
    if slo_minutes <= first.slo_minutes {
        return Some(first.replica_hours);
    }
    sorted.windows(2).find_map(|pair| {
        let (a, b) = (pair[0], pair[1]);
        (slo_minutes <= b.slo_minutes).then(|| {
            let share = (slo_minutes - a.slo_minutes) / (b.slo_minutes - a.slo_minutes);
            a.replica_hours + share * (b.replica_hours - a.replica_hours)
        })
    })
}

/// Where `policy` lies against the curve through `points`.
pub fn judge(points: &[Point], policy: Point) -> Verdict {
    if points.is_empty() {
        return Verdict::Empty;
    }
    match at(points, policy.slo_minutes) {
        Some(curve) if policy.replica_hours < curve => Verdict::Below { curve },
        Some(curve) => Verdict::Above { curve },
        None => Verdict::Beyond {
            most: points
                .iter()
                .map(|p| p.slo_minutes)
                .fold(f64::NEG_INFINITY, f64::max),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(slo_minutes: f64, replica_hours: f64) -> Point {
        Point {
            slo_minutes,
            replica_hours,
        }
    }

    #[test]
    fn a_sweep_lists_its_targets_and_refuses_what_it_cannot_run() {
        let s: Sweep = "40:90:10".parse().expect("a sweep");
        assert_eq!(s.targets(), vec![40, 50, 60, 70, 80, 90]);
        assert_eq!(
            "50:55:10".parse::<Sweep>().map(|s| s.targets()),
            Ok(vec![50])
        );
        for (text, says) in [
            ("40:90", "FROM:TO:STEP"),
            ("a:90:10", "FROM \"a\""),
            ("0:90:10", "between 1 and 1000"),
            ("40:1001:10", "between 1 and 1000"),
            ("90:40:10", "FROM (90) is above TO (40)"),
            ("40:90:0", "STEP must be at least 1"),
            ("1:1000:1", "more than 50"),
        ] {
            let e = text.parse::<Sweep>().expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(parse_target("50"), Ok(50));
        assert!(parse_target("0").is_err() && parse_target("50.5").is_err());
    }

    #[test]
    fn the_curve_is_linear_between_points_and_flat_before_the_first() {
        // Out of order, with a dominated point at the same SLO minutes.
        let points = [p(10.0, 100.0), p(0.0, 200.0), p(10.0, 120.0), p(20.0, 80.0)];
        assert_eq!(at(&points, 5.0), Some(150.0));
        assert_eq!(at(&points, 10.0), Some(100.0));
        assert_eq!(at(&points, 15.0), Some(90.0));
        assert_eq!(at(&points, 0.0), Some(200.0));
        assert_eq!(at(&[p(3.0, 50.0)], 1.0), Some(50.0));
        assert_eq!(at(&points, 20.5), None);
        assert_eq!(at(&[], 1.0), None);
    }

    #[test]
    fn a_policy_is_below_only_with_fewer_replica_hours_than_the_curve_at_its_slo_minutes() {
        let points = [p(0.0, 200.0), p(10.0, 100.0)];
        assert_eq!(
            judge(&points, p(5.0, 140.0)),
            Verdict::Below { curve: 150.0 }
        );
        assert_eq!(
            judge(&points, p(5.0, 150.0)),
            Verdict::Above { curve: 150.0 }
        );
        assert_eq!(
            judge(&points, p(12.0, 10.0)),
            Verdict::Beyond { most: 10.0 }
        );
        assert_eq!(judge(&[], p(1.0, 1.0)), Verdict::Empty);
    }
}
