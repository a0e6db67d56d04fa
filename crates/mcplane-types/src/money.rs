//! Money as integer micro-dollars.
//!
//! Every amount mcplane keeps — prices, costs, budgets, reservations — is a whole number of
//! millionths of a US dollar ([`MicroUsd`]), so sums are exact and concurrent reservations never
//! drift. Floats appear only at the edges: the configuration writes dollars
//! ([`MicroUsd::from_usd`]) and headers and reports print them ([`MicroUsd`]'s `Display`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of US dollars in millionths (1 USD = 1,000,000). Negative amounts are allowed (a
/// refund or the difference between a reservation and the actual cost).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroUsd(i64);

impl MicroUsd {
    /// Zero dollars.
    pub const ZERO: MicroUsd = MicroUsd(0);
    /// The largest representable amount (about 9.2 trillion dollars).
    pub const MAX: MicroUsd = MicroUsd(i64::MAX);

    /// An amount of micro-dollars.
    pub const fn from_micros(micros: i64) -> MicroUsd {
        MicroUsd(micros)
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Converts dollars, rounding to the nearest micro-dollar (halves away from zero).
    /// `None` when `usd` is not finite or out of range.
    pub fn from_usd(usd: f64) -> Option<MicroUsd> {
        let micros = (usd * 1_000_000.0).round();
        // i64::MAX as f64 rounds up to 2^63, which is out of range.
        if micros.is_finite() && micros >= -(2f64.powi(63)) && micros < 2f64.powi(63) {
            Some(MicroUsd(micros as i64))
        } else {
            None
        }
    }

    /// The amount in dollars (for display and metrics; never for arithmetic).
    pub fn to_usd(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: MicroUsd) -> Option<MicroUsd> {
        self.0.checked_add(other.0).map(MicroUsd)
    }

    /// `self - other`, `None` on overflow.
    pub fn checked_sub(self, other: MicroUsd) -> Option<MicroUsd> {
        self.0.checked_sub(other.0).map(MicroUsd)
    }

    /// `self + other`, clamped to the representable range.
    pub fn saturating_add(self, other: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_add(other.0))
    }

    /// `self - other`, clamped to the representable range.
    pub fn saturating_sub(self, other: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for MicroUsd {
    /// Dollars with all six decimals, e.g. `0.002500` or `-1.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_convert_to_the_nearest_micro_dollar() {
        assert_eq!(
            MicroUsd::from_usd(0.0025),
            Some(MicroUsd::from_micros(2500))
        );
        assert_eq!(
            MicroUsd::from_usd(0.01),
            Some(MicroUsd::from_micros(10_000))
        );
        assert_eq!(
            MicroUsd::from_usd(1000.0),
            Some(MicroUsd::from_micros(1_000_000_000))
        );
        assert_eq!(
            MicroUsd::from_usd(0.0000005),
            Some(MicroUsd::from_micros(1))
        );
        assert_eq!(
            MicroUsd::from_usd(-0.0000015),
            Some(MicroUsd::from_micros(-2))
        );
        assert_eq!(MicroUsd::from_usd(f64::NAN), None);
        assert_eq!(MicroUsd::from_usd(f64::INFINITY), None);
        assert_eq!(MicroUsd::from_usd(1e13), None);
    }

    #[test]
    fn display_prints_six_decimals() {
        assert_eq!(MicroUsd::from_micros(2500).to_string(), "0.002500");
        assert_eq!(MicroUsd::from_micros(-1_000_001).to_string(), "-1.000001");
        assert_eq!(MicroUsd::ZERO.to_string(), "0.000000");
        assert_eq!(
            MicroUsd::from_micros(i64::MIN).to_string(),
            "-9223372036854.775808"
        );
    }

    #[test]
    fn arithmetic_checks_or_saturates() {
        let a = MicroUsd::from_micros(5);
        assert_eq!(a.checked_add(a), Some(MicroUsd::from_micros(10)));
        assert_eq!(MicroUsd::MAX.checked_add(a), None);
        assert_eq!(MicroUsd::MAX.saturating_add(a), MicroUsd::MAX);
        assert_eq!(a.saturating_sub(MicroUsd::from_micros(7)).micros(), -2);
    }
}
