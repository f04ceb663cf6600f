//! Synthetic load traces, seeded so the same flags always write the same file.
//!
//! Every shape moves between a base and a peak rate, times a noise of about 5% (a random factor
//! from a seeded SplitMix64 generator):
//!
//! - `diurnal`: a day-night cycle of 24 hours, lowest at the start and highest 12 hours later;
//!   default 24 hours at 60-second steps.
//! - `spike`: the base rate until a quarter of the duration, a rise to the peak within 60 seconds,
//!   the peak for a fifth of the duration, and a fall back to the base over 5 minutes; default 1
//!   hour at 10-second steps.
//! - `ramp`: a linear rise from base to peak over 40% of the duration, the peak for 20%, and a
//!   linear fall back over the last 40%; default 1 hour at 10-second steps.

use super::error::SimulateError;
use super::trace::Trace;

/// The shapes `--generate` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    Diurnal,
    Spike,
    Ramp,
}

/// 2026-01-01T00:00:00Z: the first timestamp of generated traces.
pub const DEFAULT_START: i64 = 1_767_225_600;
/// The default base rate (requests per second).
pub const DEFAULT_BASE: f64 = 120.0;
/// The default peak rate (requests per second).
pub const DEFAULT_PEAK: f64 = 600.0;
/// The relative size of the noise (one standard deviation).
pub const NOISE: f64 = 0.05;

const DAY: i64 = 86_400;

impl Shape {
    /// The shape's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Diurnal => "diurnal",
            Self::Spike => "spike",
            Self::Ramp => "ramp",
        }
    }

    /// Seconds a trace of this shape lasts unless `--duration` says otherwise.
    pub fn default_duration(self) -> i64 {
        match self {
            Self::Diurnal => DAY,
            Self::Spike | Self::Ramp => 3600,
        }
    }

    /// Seconds between rows unless `--step` says otherwise.
    pub fn default_step(self) -> i64 {
        match self {
            Self::Diurnal => 60,
            Self::Spike | Self::Ramp => 10,
        }
    }

    /// The rate without noise at `t` seconds into a trace of `duration` seconds.
    pub fn level(self, t: i64, duration: i64, base: f64, peak: f64) -> f64 {
        let span = peak - base;
        let d = duration.max(1) as f64;
        let t_f = t as f64;
        match self {
            Self::Diurnal => {
                let phase = t.rem_euclid(DAY) as f64 / DAY as f64;
                base + span * (1.0 - (std::f64::consts::TAU * phase).cos()) / 2.0
            }
            Self::Spike => {
                let rise_at = 0.25 * d;
                let rise = 60.0;
                let hold = 0.2 * d;
                let fall = 300.0;
                if t_f < rise_at {
                    base
                } else if t_f < rise_at + rise {
                    base + span * (t_f - rise_at) / rise
                } else if t_f < rise_at + rise + hold {
                    peak
                } else if t_f < rise_at + rise + hold + fall {
                    peak - span * (t_f - rise_at - rise - hold) / fall
                } else {
                    base
                }
            }
            Self::Ramp => {
                let up = 0.4 * d;
                let hold = 0.2 * d;
                if t_f < up {
                    base + span * t_f / up
                } else if t_f < up + hold {
                    peak
                } else {
                    peak - span * ((t_f - up - hold) / (d - up - hold)).min(1.0)
                }
            }
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Generator {
    pub shape: Shape,
    pub seed: u64,
    /// Seconds the trace covers.
    pub duration: i64,
    /// Seconds between rows.
    pub step: i64,
    /// The first timestamp.
    pub start: i64,
    pub base: f64,
    pub peak: f64,
}

impl Generator {
    /// A generator with the shape's defaults.
    pub fn new(shape: Shape, seed: u64) -> Self {
        Self {
            shape,
            seed,
            duration: shape.default_duration(),
            step: shape.default_step(),
            start: DEFAULT_START,
            base: DEFAULT_BASE,
            peak: DEFAULT_PEAK,
        }
    }

    /// Checks the parameters, with the flag at fault in the message.
    pub fn check(&self) -> Result<(), SimulateError> {
        if self.step < 1 {
            return Err(SimulateError::Parameter(format!(
                "--step must be at least 1s, got {}s",
                self.step
            )));
        }
        if self.duration < 2 * self.step {
            return Err(SimulateError::Parameter(format!(
                "--duration must be at least two steps ({}s), got {}s",
                2 * self.step,
                self.duration
            )));
        }
        if !(self.base.is_finite() && self.base >= 0.0) {
            return Err(SimulateError::Parameter(format!(
                "--base-load must be a number >= 0, got {}",
                self.base
            )));
        }
        if !(self.peak.is_finite() && self.peak >= self.base) {
            return Err(SimulateError::Parameter(format!(
                "--peak-load must be a number >= --base-load ({}), got {}",
                self.base, self.peak
            )));
        }
        Ok(())
    }

    /// The trace: one row per step, the shape's level times the seeded noise.
    pub fn generate(&self) -> Trace {
        let mut rng = SplitMix64(self.seed);
        let rows = (self.duration / self.step.max(1)).max(0);
        let rates = (0..rows)
            .map(|i| {
                let t = i * self.step;
                let level = self.shape.level(t, self.duration, self.base, self.peak);
                let factor = (1.0 + NOISE * rng.standard_normal()).max(0.0);
                // Three decimals, as the file holds them.
                ((level * factor) * 1000.0).round() / 1000.0
            })
            .collect();
        Trace {
            start: self.start,
            step: self.step,
            rates,
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood): a small, fast, well-mixed generator whose output depends
/// only on the seed, so traces are the same on every machine and every version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// About normal with mean 0 and deviation 1: the sum of three uniforms, centred and scaled
    /// (Irwin-Hall), made of additions only, so it is exact on every platform.
    fn standard_normal(&mut self) -> f64 {
        (self.next_f64() + self.next_f64() + self.next_f64() - 1.5) * 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
        let a = Generator::new(Shape::Spike, 7).generate();
        let b = Generator::new(Shape::Spike, 7).generate();
        let c = Generator::new(Shape::Spike, 8).generate();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.rates.len(), 360);
        assert_eq!(a.step, 10);
        assert_eq!(a.start, DEFAULT_START);
    }

    #[test]
    fn a_spike_rises_from_base_to_peak_and_falls_back() {
        let s = Shape::Spike;
        // Duration 3600: rise at 900 s, peak from 960 s to 1680 s, back at base from 1980 s.
        assert_eq!(s.level(0, 3600, 100.0, 1000.0), 100.0);
        assert_eq!(s.level(930, 3600, 100.0, 1000.0), 550.0);
        assert_eq!(s.level(1000, 3600, 100.0, 1000.0), 1000.0);
        assert_eq!(s.level(1830, 3600, 100.0, 1000.0), 550.0);
        assert_eq!(s.level(2000, 3600, 100.0, 1000.0), 100.0);
    }

    #[test]
    fn a_day_starts_at_its_lowest_and_peaks_twelve_hours_later() {
        let d = Shape::Diurnal;
        assert_eq!(d.level(0, DAY, 100.0, 1000.0), 100.0);
        assert!((d.level(6 * 3600, DAY, 100.0, 1000.0) - 550.0).abs() < 1e-9);
        assert!((d.level(12 * 3600, DAY, 100.0, 1000.0) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_rises_holds_and_falls() {
        let r = Shape::Ramp;
        assert_eq!(r.level(0, 1000, 0.0, 400.0), 0.0);
        assert_eq!(r.level(200, 1000, 0.0, 400.0), 200.0);
        assert_eq!(r.level(500, 1000, 0.0, 400.0), 400.0);
        assert_eq!(r.level(800, 1000, 0.0, 400.0), 200.0);
    }

    #[test]
    fn bad_parameters_name_their_flag() {
        let mut g = Generator::new(Shape::Ramp, 1);
        g.peak = 10.0;
        assert_eq!(
            g.check().unwrap_err().to_string(),
            "--peak-load must be a number >= --base-load (120), got 10"
        );
        let mut g = Generator::new(Shape::Ramp, 1);
        g.duration = 10;
        assert_eq!(
            g.check().unwrap_err().to_string(),
            "--duration must be at least two steps (20s), got 10s"
        );
    }
}
