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
