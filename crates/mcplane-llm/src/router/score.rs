//! Scoring and the alias strategies.
//!
//! Each eligible candidate gets three parts, each from 0 to 1, relative to the other candidates
//! of the same request:
//!
//! - **performance** = fastest latency ÷ this latency, where latency is the observed EWMA of
//!   its best endpoint (time to the whole answer, or to the first event of a stream), else its
//!   configured `latency_p95_ms`; 1 for everyone when no candidate has a figure, 0.5 for a
//!   candidate without one when others have.
//! - **cost** = cheapest predicted cost ÷ this predicted cost, where the predicted cost of the
//!   request is `estimated prompt tokens × input price + expected output × output price`, the
//!   expected output being the request's `max_tokens` or [`super::DEFAULT_OUTPUT_ESTIMATE`].
//!   A free model scores 1 (and any priced one 0 next to it).
//! - **availability** = 1 − error-rate EWMA of its best endpoint, 0 while every endpoint's
//!   circuit is open.
//!
//! score = (w_p·performance + w_c·cost + w_a·availability) ÷ (w_p + w_c + w_a), with the
//! weights of `routing.weights`.
//!
//! Strategies:
//!
//! - `score`: highest score first.
//! - `weighted`: the primary is drawn from `split` with a number derived from the request id
//!   (FNV-1a, then SplitMix64, scaled to [0, 1)), so the same id always lands on the same model
//!   and a spread of ids follows the shares; the others follow by score.
//! - `cheapest` (the cost optimizer): only candidates whose predicted quality
//!   (`performance.quality`, 0 when not configured) is at least `quality_threshold`, ordered by
//!   quality ÷ predicted cost, highest first (free models first, by quality); the others are
//!   excluded, so a fallback never drops below the threshold.
//! - `latency`: lowest latency estimate first, score breaking ties.

use super::{CandidateView, DEFAULT_OUTPUT_ESTIMATE, RouteInput};
use crate::health::Health;
use crate::registry::{Alias, Model};
use mcplane_config::{RouteStrategy, RoutingWeights};
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::Instant;

/// An eligible candidate with its inputs and (after [`normalize`]) its scores.
#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    pub model: &'a Model,
    pub endpoints: Vec<usize>,
    pub latency_ms: Option<f64>,
    pub availability: f64,
    /// Predicted cost of the request in nano-dollars.
    pub predicted_nano: f64,
    pub performance: f64,
    pub cost: f64,
    pub score: f64,
}

impl<'a> Candidate<'a> {
    pub fn new(
        model: &'a Model,
        endpoints: Vec<usize>,
        health: &Health,
        input: &RouteInput<'_>,
        now: Instant,
    ) -> Candidate<'a> {
        let mut availability: f64 = 0.0;
        let mut observed: Option<f64> = None;
        for &e in &endpoints {
            let v = health.view(model.endpoints[e].slot, now);
            availability = availability.max(v.availability);
            if let Some(l) = v.latency_ms {
                observed = Some(observed.map_or(l, |o: f64| o.min(l)));
            }
        }
        let latency_ms = observed.or(model.latency_p95_ms.map(f64::from));
        let out = input.needs.max_output.unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
        let predicted_nano = (input.needs.prompt_tokens as f64
            * model.price.input_nano_per_1k as f64
            + f64::from(out) * model.price.output_nano_per_1k as f64)
            / 1000.0;
        Candidate {
            model,
            endpoints,
            latency_ms,
            availability,
            predicted_nano,
            performance: 0.0,
            cost: 0.0,
            score: 0.0,
        }
    }

    pub fn view(&self, excluded: Option<String>) -> CandidateView {
        CandidateView {
            model: self.model.id.clone(),
            excluded,
            score: self.score,
            performance: self.performance,
            cost: self.cost,
            availability: self.availability,
            latency_ms: self.latency_ms,
            predicted_cost_usd: self.predicted_nano / 1e9,
            quality: self.model.quality,
        }
    }

    /// Quality per predicted dollar (infinite for a free request).
    fn value(&self) -> f64 {
        if self.predicted_nano <= 0.0 {
            f64::INFINITY
        } else {
            self.model.quality / (self.predicted_nano / 1e9)
        }
    }
}

/// Fills in each candidate's performance, cost and weighted score.
pub(crate) fn normalize(cands: &mut [Candidate<'_>], w: &RoutingWeights) {
    let fastest = cands
        .iter()
        .filter_map(|c| c.latency_ms)
        .fold(f64::INFINITY, f64::min);
    let cheapest = cands
        .iter()
        .map(|c| c.predicted_nano)
        .fold(f64::INFINITY, f64::min);
    let total = w.performance + w.cost + w.availability;
    for c in cands.iter_mut() {
        c.performance = match c.latency_ms {
            _ if !fastest.is_finite() => 1.0,
            None => 0.5,
            Some(l) if l <= 0.0 => 1.0,
            Some(l) => (fastest.max(0.0) / l).clamp(0.0, 1.0),
        };
        c.cost = if c.predicted_nano <= 0.0 {
            1.0
        } else {
            (cheapest / c.predicted_nano).clamp(0.0, 1.0)
        };
        c.score = if total > 0.0 {
            (w.performance * c.performance + w.cost * c.cost + w.availability * c.availability)
                / total
        } else {
            0.0
        };
    }
}

/// The candidates in the order a strategy wants them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ordered {
    /// Indexes into the candidate list, best first.
    pub order: Vec<usize>,
    /// What decided it, for the route reason.
    pub summary: String,
    /// Candidates the strategy ruled out (index, why).
    pub excluded: Vec<(usize, String)>,
}

fn by_score(cands: &[Candidate<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&a, &b| cmp_desc(cands[a].score, cands[b].score));
    order
}

fn cmp_desc(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

fn score_summary(cands: &[Candidate<'_>], order: &[usize], w: &RoutingWeights) -> String {
    let mut s = String::new();
    for (i, &c) in order.iter().take(4).enumerate() {
        if i > 0 {
            s.push_str(" > ");
        }
        let c = &cands[c];
        let _ = write!(
            s,
            "{} {:.3} (perf {:.2} cost {:.2} avail {:.2})",
            c.model.id, c.score, c.performance, c.cost, c.availability
        );
    }
    let _ = write!(
        s,
        " [weights perf {} cost {} avail {}]",
        w.performance, w.cost, w.availability
    );
    s
}

/// A number in [0, 1) derived from the request id (the `weighted` split's draw).
pub fn bucket(request_id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in request_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Orders an alias's eligible candidates by its strategy.
pub(crate) fn order(
    alias: &Alias,
    cands: &[Candidate<'_>],
    request_id: &str,
    w: &RoutingWeights,
) -> Ordered {
    let ranked = by_score(cands);
    match alias.strategy {
        RouteStrategy::Score => Ordered {
            summary: score_summary(cands, &ranked, w),
            order: ranked,
            excluded: Vec::new(),
        },
        RouteStrategy::Weighted => {
            let share = |c: &Candidate<'_>| {
                alias
                    .candidates
                    .iter()
                    .position(|&i| i == c.model.index)
                    .map_or(0.0, |p| alias.split[p])
            };
            let total: f64 = cands.iter().map(share).sum();
            if total <= 0.0 {
                return Ordered {
                    summary: format!(
                        "no eligible candidate has a split share; by score: {}",
                        score_summary(cands, &ranked, w)
                    ),
                    order: ranked,
                    excluded: Vec::new(),
                };
            }
            let u = bucket(request_id);
            let mut acc = 0.0;
            let mut pick = None;
            for (i, c) in cands.iter().enumerate() {
                let s = share(c) / total;
                if s <= 0.0 {
                    continue;
                }
                acc += s;
                pick = Some(i);
                if u < acc {
                    break;
                }
            }
            let pick = pick.unwrap_or(ranked[0]);
            let mut order = vec![pick];
            order.extend(ranked.iter().copied().filter(|&i| i != pick));
            let mut summary = format!("draw {u:.3} -> {} (split", cands[pick].model.id);
            for c in cands {
                let _ = write!(summary, " {} {:.2}", c.model.id, share(c) / total);
            }
            summary.push(')');
            Ordered {
                order,
                summary,
                excluded: Vec::new(),
            }
        }
        RouteStrategy::Cheapest => {
            let threshold = alias.quality_threshold;
            let mut excluded = Vec::new();
            let mut order = Vec::new();
            for (i, c) in cands.iter().enumerate() {
                if c.model.quality >= threshold {
                    order.push(i);
                } else if c.model.quality_known {
                    excluded.push((
                        i,
                        format!("quality {} < threshold {threshold}", c.model.quality),
                    ));
                } else {
                    excluded.push((i, "no performance.quality configured".to_string()));
                }
            }
            order.sort_by(|&a, &b| {
                cmp_desc(cands[a].value(), cands[b].value())
                    .then(cmp_desc(cands[a].model.quality, cands[b].model.quality))
                    .then(cmp_desc(cands[a].score, cands[b].score))
            });
            let mut summary = format!("quality >= {threshold}, by quality per predicted $:");
            for (n, &i) in order.iter().take(4).enumerate() {
                let c = &cands[i];
                let v = c.value();
                let _ = write!(
                    summary,
                    "{} {} q {} / ${:.6} = {}",
                    if n == 0 { "" } else { " >" },
                    c.model.id,
                    c.model.quality,
                    c.predicted_nano / 1e9,
                    if v.is_finite() {
                        format!("{v:.1}")
                    } else {
                        "free".to_string()
                    }
                );
            }
            Ordered {
                order,
                summary,
                excluded,
            }
        }
        RouteStrategy::Latency => {
            let mut order: Vec<usize> = (0..cands.len()).collect();
            let lat = |i: usize| cands[i].latency_ms.unwrap_or(f64::INFINITY);
            order.sort_by(|&a, &b| {
                lat(a)
                    .partial_cmp(&lat(b))
                    .unwrap_or(Ordering::Equal)
                    .then(cmp_desc(cands[a].score, cands[b].score))
            });
            let mut summary = String::new();
            for (n, &i) in order.iter().take(4).enumerate() {
                if n > 0 {
                    summary.push_str(" < ");
                }
                let c = &cands[i];
                match c.latency_ms {
                    Some(l) => {
                        let _ = write!(summary, "{} {l:.0}ms", c.model.id);
                    }
                    None => {
                        let _ = write!(summary, "{} (no latency figure)", c.model.id);
                    }
                }
            }
            Ordered {
                order,
                summary,
                excluded: Vec::new(),
            }
        }
    }
}
