//! The refresh rule (SPEC §3).

use std::time::Duration;

/// Delay after a successful (re)SUBSCRIBE before the refresh is sent, for granted expiry `e`:
/// e > 1200 s → e − 600 s; e ≤ 1200 s → e / 2.
pub fn refresh_delay(granted: Duration) -> Duration {
    if granted > Duration::from_secs(1200) {
        granted - Duration::from_secs(600)
    } else {
        granted / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_rule() {
        let d = |s| refresh_delay(Duration::from_secs(s)).as_secs_f64();
        assert_eq!(d(3660), 3060.0);
        assert_eq!(d(1201), 601.0);
        assert_eq!(d(1200), 600.0);
        assert_eq!(d(660), 330.0);
        assert_eq!(d(31), 15.5);
        assert_eq!(d(0), 0.0);
    }
}
