//! The one retry back-off: delays that double from `base` up to `max`.
//!
//! Two users want two shapes of the same curve:
//! - crash-loop restarts and failed starts wait exactly `base·2ⁿ` (capped), because that
//!   is what Kubernetes users read in `back-off 40s restarting failed container`;
//! - reconnects and registry retries wait a random time in `[0, min(max, base·2ⁿ)]`
//!   ("full jitter"), so a thousand agents that lost the coordinator at the same moment
//!   do not all knock again at the same moment when it comes back.
//!
//! The jitter is a pure function of a random number passed in ([`Backoff::jittered`]),
//! so its bounds are testable; only [`Backoff::jitter`] and [`Retries`] draw one.

use std::time::Duration;

use super::random;

/// How long a container must have run for its crash-loop back-off to start over, as the
/// kubelet does (twice its 5-minute cap).
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// A doubling back-off: `base`, `2·base`, `4·base`, … never more than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The exact delay of step `n` (from 0): `min(max, base·2ⁿ)`, saturating rather than
    /// overflowing for any `n`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Delay before retrying something that failed `failures` times in a row (the first
    /// failure waits `base`).
    pub fn after_failures(&self, failures: u32) -> Duration {
        self.ceiling(failures.saturating_sub(1))
    }

    /// Delay before restart number `restarts + 1` of something that ran for `ran_for`:
    /// the first restart is immediate, then `base`, `2·base`, … up to `max`; a run of at
    /// least [`RESET_AFTER`] starts the sequence over, as the kubelet's crash-loop does.
    pub fn restart_delay(&self, restarts: u32, ran_for: Duration) -> Duration {
        if restarts == 0 || ran_for >= RESET_AFTER {
            return Duration::ZERO;
        }
        self.after_failures(restarts)
    }

    /// Full jitter of step `n` for the random number `random`: uniformly spread over
    /// `[0, ceiling(n)]`, both ends included (`0` gives zero, `u64::MAX` the ceiling).
    pub fn jittered(&self, n: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(n).as_nanos();
        let nanos = ceiling * u128::from(random) / u128::from(u64::MAX);
        // ceiling ≤ max, which came from a Duration, so the nanoseconds fit back into
        // one; saturate anyway rather than trust that.
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (nanos % 1_000_000_000) as u32)
    }

    /// Full jitter of step `n` with a fresh random number. Should the system's generator
    /// fail, the ceiling itself: still bounded, just not spread.
    pub fn jitter(&self, n: u32) -> Duration {
        match random::bytes::<8>() {
            Ok(bytes) => self.jittered(n, u64::from_le_bytes(bytes)),
            Err(_) => self.ceiling(n),
        }
    }
}

/// A retry loop's state: how many failures in a row, each waiting a jittered delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retries {
    backoff: Backoff,
    failures: u32,
}

impl Retries {
    pub const fn new(backoff: Backoff) -> Retries {
        Retries {
            backoff,
            failures: 0,
        }
    }

    /// Counts one more failure and returns how long to wait before the next attempt: a
    /// random time up to `base` after the first failure, up to `2·base` after the second,
    /// and so on up to `max`.
    pub fn after_failure(&mut self) -> Duration {
        let delay = self.backoff.jitter(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// A success: the next failure starts again from `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// No failure since the last success (or ever).
    pub fn is_fresh(&self) -> bool {
        self.failures == 0
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET: Backoff = Backoff {
        base: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn doubling_is_exact_and_capped() {
        let steps: Vec<u64> = (0..8).map(|n| KUBELET.ceiling(n).as_secs()).collect();
        assert_eq!(steps, [10, 20, 40, 80, 160, 300, 300, 300]);
        // Huge step numbers saturate instead of overflowing.
        assert_eq!(KUBELET.ceiling(u32::MAX), secs(300));
        let unbounded = Backoff {
            base: secs(1),
            max: Duration::MAX,
        };
        assert_eq!(unbounded.ceiling(200), secs(1 << 31));
    }

    #[test]
    fn failures_and_restarts_count_from_one() {
        assert_eq!(KUBELET.after_failures(1), secs(10));
        assert_eq!(KUBELET.after_failures(3), secs(40));
        assert_eq!(KUBELET.after_failures(0), secs(10));
        assert_eq!(KUBELET.restart_delay(0, secs(1)), Duration::ZERO);
        assert_eq!(KUBELET.restart_delay(1, secs(1)), secs(10));
        assert_eq!(KUBELET.restart_delay(4, secs(1)), secs(80));
        assert_eq!(KUBELET.restart_delay(30, secs(1)), secs(300));
    }

    #[test]
    fn a_long_run_resets_the_restart_delay() {
        assert_eq!(KUBELET.restart_delay(5, RESET_AFTER - secs(1)), secs(160));
        assert_eq!(KUBELET.restart_delay(5, RESET_AFTER), Duration::ZERO);
        assert_eq!(KUBELET.restart_delay(5, secs(3600)), Duration::ZERO);
    }

    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        for n in [0, 1, 3, 10, 40] {
            assert_eq!(KUBELET.jittered(n, 0), Duration::ZERO);
            assert_eq!(KUBELET.jittered(n, u64::MAX), KUBELET.ceiling(n));
        }
        assert_eq!(KUBELET.jittered(2, 1 << 63), secs(20));
        assert_eq!(KUBELET.jittered(2, 1 << 62), secs(10));
        // Monotonic in the random number.
        let spread: Vec<Duration> = (0..=16u64)
            .map(|i| KUBELET.jittered(1, (u64::MAX / 16).saturating_mul(i)))
            .collect();
        assert!(spread.windows(2).all(|w| w[0] <= w[1]), "{spread:?}");
    }

    #[test]
    fn random_jitter_stays_within_bounds_and_spreads() {
        let draws: Vec<Duration> = (0..64).map(|_| KUBELET.jitter(3)).collect();
        assert!(draws.iter().all(|d| *d <= secs(80)), "{draws:?}");
        // 64 draws from [0, 80 s] in nanoseconds: all equal would mean no jitter at all.
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
    }

    #[test]
    fn retries_grow_then_reset_after_a_success() {
        let reconnect = Backoff {
            base: secs(1),
            max: secs(30),
        };
        let mut retries = Retries::new(reconnect);
        assert!(retries.is_fresh());
        for ceiling in [1, 2, 4, 8, 16, 30, 30] {
            assert!(retries.after_failure() <= secs(ceiling));
        }
        assert_eq!(retries.failures(), 7);
        assert!(!retries.is_fresh());
        retries.reset();
        assert!(retries.is_fresh());
        assert!(retries.after_failure() <= secs(1));
        assert_eq!(retries.failures(), 1);
    }
}
