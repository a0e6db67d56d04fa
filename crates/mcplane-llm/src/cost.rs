//! What a call costs, in integer micro-dollars.
//!
//! The registry gives prices as US dollars per 1,000 tokens (`cost: { input_per_1k: 0.0025,
//! output_per_1k: 0.01 }`). Rounding rules, chosen so budgets never under-count:
//!
//! 1. A configured price is converted once to whole **nano-dollars per 1,000 tokens**, rounded to
//!    the nearest (halves away from zero). That is exact for any price written with up to nine
//!    decimals (`0.0025` → 2,500,000; `0.00015` → 150,000), so the float never leaks further.
//! 2. A call's cost is `prompt × input + completion × output` nano-dollar-tokens per 1,000,
//!    computed exactly in 128-bit integers, then divided by 1,000,000 (to micro-dollars) rounding
//!    **up**: a call is never charged less than it cost, and at most one micro-dollar more.
//!    Input and output are summed before rounding, so a call rounds once.
//!
//! Cached input tokens are charged at the input price (the registry has no cache price), which
//! over-estimates calls that hit a provider's prompt cache.

use crate::LlmError;
use crate::json::invalid;
use crate::usage::Usage;
use mcplane_config::CostSpec;
use mcplane_types::MicroUsd;

/// A model's price, in nano-dollars per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Price {
    /// Nano-dollars per 1,000 input tokens.
    pub input_nano_per_1k: u64,
    /// Nano-dollars per 1,000 output tokens.
    pub output_nano_per_1k: u64,
}

impl Price {
    /// Free (models without a configured price).
    pub const FREE: Price = Price {
        input_nano_per_1k: 0,
        output_nano_per_1k: 0,
    };

    /// A price from US dollars per 1,000 tokens. Errors name `cost.input_per_1k` or
    /// `cost.output_per_1k` when a price is negative, not finite or above a million dollars.
    pub fn from_usd_per_1k(input: f64, output: f64) -> Result<Price, LlmError> {
        Ok(Price {
            input_nano_per_1k: nano(input, "cost.input_per_1k")?,
            output_nano_per_1k: nano(output, "cost.output_per_1k")?,
        })
    }

    /// The price of a registry entry.
    pub fn from_spec(spec: &CostSpec) -> Result<Price, LlmError> {
        Price::from_usd_per_1k(spec.input_per_1k, spec.output_per_1k)
    }

    /// The cost of a call with these token counts (rounded up to the micro-dollar).
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> MicroUsd {
        let total = u128::from(prompt_tokens) * u128::from(self.input_nano_per_1k)
            + u128::from(completion_tokens) * u128::from(self.output_nano_per_1k);
        let micros = total.div_ceil(1_000_000);
        MicroUsd::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The cost of a call's usage.
    pub fn cost_of(&self, usage: &Usage) -> MicroUsd {
        self.cost(usage.prompt_tokens, usage.completion_tokens)
    }
}

const MAX_USD_PER_1K: f64 = 1_000_000.0;

fn nano(usd: f64, at: &str) -> Result<u64, LlmError> {
    if !usd.is_finite() || usd < 0.0 {
        return Err(invalid(at, format!("{usd} is not a non-negative price")));
    }
    if usd > MAX_USD_PER_1K {
        return Err(invalid(
            at,
            format!("{usd} dollars per 1k tokens is too large"),
        ));
    }
    Ok((usd * 1e9).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_convert_exactly() {
        let p = Price::from_usd_per_1k(0.0025, 0.01).unwrap();
        assert_eq!(p.input_nano_per_1k, 2_500_000);
        assert_eq!(p.output_nano_per_1k, 10_000_000);
        let p = Price::from_usd_per_1k(0.00015, 0.0006).unwrap();
        assert_eq!(p.input_nano_per_1k, 150_000);
        assert_eq!(p.output_nano_per_1k, 600_000);
        let p = Price::from_usd_per_1k(0.000000001, 0.0).unwrap();
        assert_eq!(p.input_nano_per_1k, 1);
    }

    #[test]
    fn costs_round_up_once_per_call() {
        let p = Price::from_usd_per_1k(0.0025, 0.01).unwrap();
        // 1000 × 2.5 µ$ + 500 × 10 µ$ = 2500 + 5000
        assert_eq!(p.cost(1000, 500).micros(), 7500);
        // 1 token of input: 2.5 µ$ → 3 µ$
        assert_eq!(p.cost(1, 0).micros(), 3);
        // 1 + 1 tokens: 2.5 + 10 = 12.5 → 13 (rounded once, not 3 + 10)
        assert_eq!(p.cost(1, 1).micros(), 13);
        assert_eq!(p.cost(0, 0), MicroUsd::ZERO);
        assert_eq!(Price::FREE.cost(1_000_000, 1_000_000), MicroUsd::ZERO);
        let u = Usage::new(2000, 1000);
        assert_eq!(p.cost_of(&u).micros(), 15_000);
    }

    #[test]
    fn huge_counts_saturate() {
        let p = Price::from_usd_per_1k(MAX_USD_PER_1K, MAX_USD_PER_1K).unwrap();
        assert_eq!(p.cost(u64::MAX, u64::MAX), MicroUsd::MAX);
    }

    #[test]
    fn bad_prices_name_their_field() {
        let e = Price::from_usd_per_1k(-1.0, 0.0).unwrap_err();
        assert!(e.to_string().starts_with("cost.input_per_1k:"), "{e}");
        let e = Price::from_usd_per_1k(0.0, f64::NAN).unwrap_err();
        assert!(e.to_string().starts_with("cost.output_per_1k:"), "{e}");
        assert!(Price::from_usd_per_1k(2e6, 0.0).is_err());
    }
}
