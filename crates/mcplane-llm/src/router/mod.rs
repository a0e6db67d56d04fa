//! The router: from a requested model id or alias to an ordered plan of endpoints, with the
//! reason for the order.
//!
//! 1. **Resolve** the name: a model id is its own single candidate; an alias lists candidates.
//! 2. **Eligibility**: a candidate must have the capabilities the request needs (`chat` or
//!    `embeddings`; `tools`, `vision`, `json_mode` when used), be able to express it (`n > 1` is
//!    impossible in Anthropic's format), fit it (context window ≥ estimated prompt + requested
//!    output; requested output ≤ `max_output_tokens`) and satisfy every data-residency
//!    requirement (`routing.data_residency` and the `x-mcplane-data-residency` header): its
//!    `compliance.data_residency` lists an acceptable region and at least one of its endpoints
//!    is in it. Each exclusion keeps its reason, for the error when nothing is left.
//! 3. **Order** the eligible candidates by the alias's strategy ([`score`]): `score`,
//!    `weighted`, `cheapest` or `latency`. A model id asked for directly is ordered by nothing.
//! 4. **Plan**: the primary and `fallbacks` more candidates, each with its eligible endpoints in
//!    config order (endpoints whose circuit is open go last; the dispatcher skips them while
//!    they refuse calls).
//!
//! The plan carries a one-line reason (the `x-mcplane-route-reason` header) and every
//! candidate's inputs and scores ([`CandidateView`]) for the decision log.

pub mod score;

use crate::health::{CircuitState, Health};
use crate::registry::{Model, Registry, Target};
use crate::{Format, tokens};
use mcplane_config::{Capability, RouteStrategy, RoutingWeights};
use std::fmt::Write as _;
use std::time::Instant;

/// Output tokens assumed when predicting a request's cost and the request sets no limit.
pub const DEFAULT_OUTPUT_ESTIMATE: u32 = 256;

/// What kind of call is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Chat completions / messages.
    Chat,
    /// Embeddings.
    Embeddings,
}

/// What a request needs from a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Tool calling.
    pub tools: bool,
    /// Image input.
    pub vision: bool,
    /// JSON mode / structured output.
    pub json_mode: bool,
    /// More than one choice (`n > 1`).
    pub choices: u32,
    /// Estimated prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens the request asks for at most.
    pub max_output: Option<u32>,
}

/// One routing question.
#[derive(Debug, Clone)]
pub struct RouteInput<'a> {
    /// The model id or alias asked for.
    pub requested: &'a str,
    /// The request id (keys the `weighted` split, so a retried request id lands the same way).
    pub request_id: &'a str,
    /// Chat or embeddings.
    pub kind: CallKind,
    /// What the request needs.
    pub needs: Needs,
    /// Residency requirements; each is a set of acceptable regions and all must hold.
    pub residency: &'a [Vec<String>],
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Model index in the registry.
    pub model: usize,
    /// Endpoint index within the model.
    pub endpoint: usize,
    /// Health slot of the endpoint.
    pub slot: usize,
}

/// A candidate as the router saw it (for the decision log).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CandidateView {
    /// Model id.
    pub model: String,
    /// Why it was excluded, if it was.
    pub excluded: Option<String>,
    /// Weighted score (0 to 1).
    pub score: f64,
    /// Performance part (0 to 1).
    pub performance: f64,
    /// Cost part (0 to 1).
    pub cost: f64,
    /// Availability part (0 to 1).
    pub availability: f64,
    /// Latency estimate used (observed EWMA, else the configured p95), milliseconds.
    pub latency_ms: Option<f64>,
    /// Predicted cost of this request in US dollars.
    pub predicted_cost_usd: f64,
    /// Predicted quality.
    pub quality: f64,
}

/// The router's answer.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Endpoints to try, in order.
    pub steps: Vec<Step>,
    /// The alias, when one was asked for.
    pub alias: Option<String>,
    /// The strategy used (`direct` for a model id).
    pub strategy: &'static str,
    /// One-line reason (ASCII, for the `x-mcplane-route-reason` header).
    pub reason: String,
    /// Every candidate with its inputs and scores.
    pub candidates: Vec<CandidateView>,
    /// Prompt tokens estimated for the request.
    pub prompt_tokens: u64,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteError {
    /// No model or alias has that name.
    UnknownModel(String),
    /// The alias has no candidate in the registry.
    EmptyAlias(String),
    /// Every candidate was excluded; each with its reason.
    NoneEligible {
        /// The name asked for.
        requested: String,
        /// (model id, reason) for every candidate.
        reasons: Vec<(String, String)>,
    },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::UnknownModel(m) => write!(
                f,
                "the model {m:?} does not exist; GET /v1/models lists the models and aliases you can use"
            ),
            RouteError::EmptyAlias(a) => {
                write!(
                    f,
                    "the alias {a:?} has no model in the registry to route to"
                )
            }
            RouteError::NoneEligible { requested, reasons } => {
                write!(f, "no model can serve this request for {requested:?}: ")?;
                for (i, (m, r)) in reasons.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{m}: {r}")?;
                }
                Ok(())
            }
        }
    }
}

/// Routes requests over a registry with live health.
#[derive(Debug, Clone)]
pub struct Router {
    weights: RoutingWeights,
}

impl Router {
    /// A router scoring with `weights`.
    pub fn new(weights: RoutingWeights) -> Router {
        Router { weights }
    }

    /// Plans a call.
    pub fn plan(
        &self,
        registry: &Registry,
        health: &Health,
        input: &RouteInput<'_>,
        now: Instant,
    ) -> Result<Plan, RouteError> {
        let (candidates, alias, fallbacks) = match registry.resolve(input.requested) {
            None => return Err(RouteError::UnknownModel(input.requested.to_string())),
            Some(Target::Model(m)) => (vec![m.index], None, 0),
            Some(Target::Alias(a)) => {
                if a.candidates.is_empty() {
                    return Err(RouteError::EmptyAlias(a.name.clone()));
                }
                (a.candidates.clone(), Some(a), a.fallbacks)
            }
        };
        let mut eligible = Vec::new();
        let mut views = Vec::new();
        let mut reasons = Vec::new();
        for &i in &candidates {
            let m = registry.model_at(i);
            match eligibility(m, input) {
                Ok(endpoints) => {
                    eligible.push(score::Candidate::new(m, endpoints, health, input, now))
                }
                Err(why) => {
                    views.push(CandidateView {
                        model: m.id.clone(),
                        excluded: Some(why.clone()),
                        score: 0.0,
                        performance: 0.0,
                        cost: 0.0,
                        availability: 0.0,
                        latency_ms: None,
                        predicted_cost_usd: 0.0,
                        quality: m.quality,
                    });
                    reasons.push((m.id.clone(), why));
                }
            }
        }
        score::normalize(&mut eligible, &self.weights);
        let strategy = alias.map_or(RouteStrategy::Score, |a| a.strategy);
        let ordered = match alias {
            None => score::Ordered {
                order: (0..eligible.len()).collect(),
                summary: String::new(),
                excluded: Vec::new(),
            },
            Some(a) => score::order(a, &eligible, input.request_id, &self.weights),
        };
        for (idx, why) in &ordered.excluded {
            let c = &eligible[*idx];
            reasons.push((c.model.id.clone(), why.clone()));
        }
        for (idx, c) in eligible.iter().enumerate() {
            let excluded = ordered
                .excluded
                .iter()
                .find(|(i, _)| *i == idx)
                .map(|(_, w)| w.clone());
            views.push(c.view(excluded));
        }
        if ordered.order.is_empty() {
            return Err(RouteError::NoneEligible {
                requested: input.requested.to_string(),
                reasons,
            });
        }
        let mut steps = Vec::new();
        for &ci in ordered.order.iter().take(1 + fallbacks) {
            let c = &eligible[ci];
            let mut eps: Vec<_> = c.endpoints.to_vec();
            // Open circuits last (stable: config order otherwise).
            eps.sort_by_key(|&e| {
                health.view(c.model.endpoints[e].slot, now).state == CircuitState::Open
            });
            steps.extend(eps.into_iter().map(|e| Step {
                model: c.model.index,
                endpoint: e,
                slot: c.model.endpoints[e].slot,
            }));
        }
        let strategy_name = match (alias, strategy) {
            (None, _) => "direct",
            (Some(_), RouteStrategy::Score) => "score",
            (Some(_), RouteStrategy::Weighted) => "weighted",
            (Some(_), RouteStrategy::Cheapest) => "cheapest",
            (Some(_), RouteStrategy::Latency) => "latency",
        };
        let mut reason = match alias {
            None => format!("direct: {}", eligible[ordered.order[0]].model.id),
            Some(a) => format!("alias {} ({strategy_name}): {}", a.name, ordered.summary),
        };
        if !reasons.is_empty() {
            reason.push_str("; excluded ");
            for (i, (m, r)) in reasons.iter().enumerate() {
                if i > 0 {
                    reason.push_str(", ");
                }
                let _ = write!(reason, "{m} ({r})");
            }
        }
        Ok(Plan {
            steps,
            alias: alias.map(|a| a.name.clone()),
            strategy: strategy_name,
            reason: ascii(&reason),
            candidates: views,
            prompt_tokens: input.needs.prompt_tokens,
        })
    }
}

/// Whether `m` can serve the request; its eligible endpoint indexes, or why not.
fn eligibility(m: &Model, input: &RouteInput<'_>) -> Result<Vec<usize>, String> {
    let needs = &input.needs;
    match input.kind {
        CallKind::Chat if !m.can(Capability::Chat) => {
            return Err("not a chat model".into());
        }
        CallKind::Embeddings if !m.can(Capability::Embeddings) => {
            return Err("not an embeddings model".into());
        }
        _ => {}
    }
    for (needed, cap, what) in [
        (needs.tools, Capability::Tools, "tool calling"),
        (needs.vision, Capability::Vision, "image input"),
        (needs.json_mode, Capability::JsonMode, "JSON mode"),
    ] {
        if needed && !m.can(cap) {
            return Err(format!("no {what} (capability {})", cap.as_str()));
        }
    }
    if needs.choices > 1 && m.format == Format::Anthropic {
        return Err(format!(
            "n = {} is not possible with the Anthropic API",
            needs.choices
        ));
    }
    if let (Some(max), Some(limit)) = (needs.max_output, m.max_output_tokens)
        && max > limit
    {
        return Err(format!(
            "max tokens {max} exceeds its max_output_tokens {limit}"
        ));
    }
    if let Some(window) = m.context_window {
        let need = needs
            .prompt_tokens
            .saturating_add(u64::from(needs.max_output.unwrap_or(0)));
        if need > u64::from(window) {
            return Err(format!("context window {window} < estimated {need} tokens"));
        }
    }
    let mut endpoints: Vec<usize> = (0..m.endpoints.len()).collect();
    for regions in input.residency {
        let allowed: Vec<&String> = regions
            .iter()
            .filter(|r| m.data_residency.contains(r))
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "data residency {} required, model allows [{}]",
                regions.join("|"),
                m.data_residency.join(", ")
            ));
        }
        endpoints.retain(|&e| allowed.iter().any(|r| m.endpoints[e].in_region(r)));
        if endpoints.is_empty() {
            return Err(format!("no endpoint in region {}", regions.join("|")));
        }
    }
    Ok(endpoints)
}

/// What a chat request needs, estimated with the tokenizer of the name asked for.
pub fn chat_needs(req: &crate::ChatRequest) -> Needs {
    let estimate = tokens::estimate_chat(req, &req.model);
    Needs {
        tools: req.uses_tools(),
        vision: req.uses_images(),
        json_mode: req.uses_json_mode(),
        choices: req.sampling.n.unwrap_or(1),
        prompt_tokens: estimate.prompt_tokens,
        max_output: estimate.max_completion_tokens,
    }
}

/// Keeps a header value printable ASCII.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
