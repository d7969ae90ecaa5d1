//! The soak's verdict: does a gateway's resource use grow after warm-up?
//!
//! Growth is judged on the *quiet checkpoints* (the load paused, in-flight work
//! settled), where a gateway that leaks nothing returns to the same footprint each time.
//! The checkpoints after warm-up are split in thirds by order; the median of the last
//! third is compared with the median of the first. A leak grows with the work done, so
//! it shows as a difference between the two; medians ignore one odd checkpoint (a
//! background job that happened to run); comparing thirds rather than the first and
//! last point measures the drift over most of the run, not one sample's noise.

use serde::Serialize;

/// What may differ between the first and last third without calling it growth:
/// the larger of `absolute` and `relative` × the first third's median.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

/// One metric of one gateway, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub gateway: usize,
    pub metric: &'static str,
    /// Checkpoints after warm-up that the judgement used.
    pub checkpoints: usize,
    pub first_third_median: f64,
    pub last_third_median: f64,
    pub growth: f64,
    pub allowed: f64,
    pub grew: bool,
}

/// Judge one series of checkpoint values (in time order, warm-up already removed).
/// `None` with fewer than 3 values: too few to split in thirds.
pub fn judge(
    gateway: usize,
    metric: &'static str,
    values: &[f64],
    tolerance: Tolerance,
) -> Option<Judgement> {
    if values.len() < 3 {
        return None;
    }
    let third = values.len() / 3;
    let first = median(&values[..third]);
    let last = median(&values[values.len() - third..]);
    let growth = last - first;
    let allowed = tolerance.absolute.max(tolerance.relative * first.abs());
    Some(Judgement {
        gateway,
        metric,
        checkpoints: values.len(),
        first_third_median: first,
        last_third_median: last,
        growth,
        allowed,
        grew: growth > allowed,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASKS: Tolerance = Tolerance {
        absolute: 4.0,
        relative: 0.0,
    };

    #[test]
    fn a_flat_series_with_noise_and_one_outlier_has_not_grown() {
        // The odd one (95: a background job caught running) is in the last third.
        let values = [
            40.0, 41.0, 40.0, 39.0, 40.0, 40.0, 41.0, 40.0, 40.0, 95.0, 42.0, 40.0,
        ];
        let judgement = judge(0, "tasks_alive", &values, TASKS).unwrap();
        assert!(!judgement.grew, "{judgement:?}");
        assert_eq!(judgement.first_third_median, 40.0);
        assert_eq!(judgement.last_third_median, 41.0);
    }

    #[test]
    fn a_steady_climb_is_growth() {
        // One task leaked per checkpoint: 11 more after 12 checkpoints.
        let values: Vec<f64> = (0..12).map(|i| 40.0 + f64::from(i)).collect();
        let judgement = judge(1, "tasks_alive", &values, TASKS).unwrap();
        assert!(judgement.grew, "{judgement:?}");
        assert_eq!(judgement.growth, 8.0);
        assert_eq!(judgement.gateway, 1);
    }

    #[test]
    fn the_relative_tolerance_scales_with_the_footprint() {
        let rss = Tolerance {
            absolute: 1024.0,
            relative: 0.05,
        };
        // 100 MiB, 3 MiB more at the end: within 5%.
        let flat = [
            102_400.0, 102_400.0, 102_400.0, 105_472.0, 105_472.0, 105_472.0,
        ];
        assert!(!judge(0, "rss_kib", &flat, rss).unwrap().grew);
        // 100 MiB, 8 MiB more: past 5% (5 MiB).
        let grown = [
            102_400.0, 102_400.0, 102_400.0, 110_592.0, 110_592.0, 110_592.0,
        ];
        assert!(judge(0, "rss_kib", &grown, rss).unwrap().grew);
    }

    #[test]
    fn fewer_than_three_checkpoints_give_no_verdict() {
        assert!(judge(0, "fds", &[1.0, 2.0], TASKS).is_none());
    }

    #[test]
    fn shrinking_is_not_growth() {
        let values = [60.0, 60.0, 60.0, 30.0, 30.0, 30.0];
        assert!(!judge(0, "fds", &values, TASKS).unwrap().grew);
    }
}
