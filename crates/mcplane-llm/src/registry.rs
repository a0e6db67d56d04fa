//! The model registry: what `/v1/…` can serve, built once from the validated config.
//!
//! Each [`Model`] has its [`Price`] in integer nano-dollars, its capabilities, performance
//! figures, residency regions and [`Endpoint`]s. Every endpoint of every model has a *slot*, a
//! dense index the health table ([`crate::health`]) keys on. [`Alias`]es are virtual model names
//! with a strategy (see [`crate::router`]).
//!
//! Credentials live here and only here: an endpoint's URL, key and extra headers come from the
//! config file; nothing a client sends can change them.

use crate::Format;
use crate::cost::Price;
use crate::error::LlmError;
use mcplane_config::{
    AliasConfig, Capability, EndpointConfig, ModelConfig, Provider, RouteStrategy, RoutingConfig,
    SecretString,
};
use std::collections::HashMap;

/// One model of the registry.
#[derive(Debug, Clone)]
pub struct Model {
    /// Position in [`Registry::models`].
    pub index: usize,
    /// The id clients ask for.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// The provider API.
    pub provider: Provider,
    /// The wire format of that API.
    pub format: Format,
    /// Capabilities (sorted).
    pub capabilities: Vec<Capability>,
    /// Price per 1k tokens.
    pub price: Price,
    /// Whether a price was configured (a model without one is free: self-hosted).
    pub priced: bool,
    /// Context window in tokens.
    pub context_window: Option<u32>,
    /// Most output tokens per response.
    pub max_output_tokens: Option<u32>,
    /// Prior p95 latency in milliseconds.
    pub latency_p95_ms: Option<u32>,
    /// Requests per minute the provider allows.
    pub throughput_req_per_min: Option<u32>,
    /// Predicted quality, 0 to 1 (0 when not configured).
    pub quality: f64,
    /// Whether `quality` was configured.
    pub quality_known: bool,
    /// Regions the model may process data in (lower-case).
    pub data_residency: Vec<String>,
    /// Certifications.
    pub certifications: Vec<String>,
    /// Endpoints, in config order.
    pub endpoints: Vec<Endpoint>,
}

impl Model {
    /// Whether the model lists `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// One endpoint serving a model.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Health-table slot (unique across the registry).
    pub slot: usize,
    /// Position in its model's endpoint list.
    pub index: usize,
    /// `model-id@region` or `model-id#index`: how logs, headers and error bodies name it.
    pub label: String,
    /// Region label (lower-case).
    pub region: Option<String>,
    /// Base URL without a trailing `/`.
    pub url: String,
    /// API key.
    pub api_key: Option<SecretString>,
    /// The provider's name for the model here.
    pub upstream_model: String,
    /// Azure deployment.
    pub deployment: String,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Extra headers (override the provider's defaults, e.g. `anthropic-version`).
    pub headers: Vec<(String, SecretString)>,
}

impl Endpoint {
    /// Whether the endpoint's region satisfies a residency region: no region label (the
    /// model's residency list is trusted), the same label, or a label in it (`eu-west-1` is in
    /// `eu`).
    pub fn in_region(&self, region: &str) -> bool {
        match &self.region {
            None => true,
            Some(r) => {
                r == region
                    || (r.starts_with(region) && r.as_bytes().get(region.len()) == Some(&b'-'))
            }
        }
    }
}

/// A virtual model name.
#[derive(Debug, Clone)]
pub struct Alias {
    /// The name.
    pub name: String,
    /// Candidate model indexes, in config order.
    pub candidates: Vec<usize>,
    /// How the primary is picked.
    pub strategy: RouteStrategy,
    /// Candidates tried after the primary fails.
    pub fallbacks: usize,
    /// `weighted`: share per candidate, aligned with `candidates`.
    pub split: Vec<f64>,
    /// `cheapest`: least quality.
    pub quality_threshold: f64,
}

/// What a requested name resolves to.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A model id.
    Model(&'a Model),
    /// An alias.
    Alias(&'a Alias),
}

/// The whole registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    models: Vec<Model>,
    aliases: Vec<Alias>,
    by_name: HashMap<String, Entry>,
    slots: usize,
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Model(usize),
    Alias(usize),
}

impl Registry {
    /// Builds the registry from the validated config.
    pub fn new(models: &[ModelConfig], routing: &RoutingConfig) -> Result<Registry, LlmError> {
        let mut reg = Registry::default();
        for (i, m) in models.iter().enumerate() {
            let model = reg.model(i, m)?;
            reg.by_name.insert(model.id.clone(), Entry::Model(i));
            reg.models.push(model);
        }
        for (i, a) in routing.aliases.iter().enumerate() {
            let alias = reg.alias(a);
            reg.by_name.insert(alias.name.clone(), Entry::Alias(i));
            reg.aliases.push(alias);
        }
        Ok(reg)
    }

    fn model(&mut self, index: usize, m: &ModelConfig) -> Result<Model, LlmError> {
        let price = match &m.cost {
            Some(c) => Price::from_spec(c).map_err(|e| LlmError::Invalid {
                at: format!("models[{index}]"),
                reason: e.to_string(),
            })?,
            None => Price::FREE,
        };
        let endpoints = m
            .endpoints
            .iter()
            .enumerate()
            .map(|(j, e)| {
                let slot = self.slots;
                self.slots += 1;
                endpoint(slot, j, &m.id, e)
            })
            .collect();
        Ok(Model {
            index,
            id: m.id.clone(),
            name: m.name.clone(),
            provider: m.provider,
            format: Format::of(m.provider),
            capabilities: m.capabilities.clone(),
            price,
            priced: m.cost.is_some(),
            context_window: m.performance.max_tokens,
            max_output_tokens: m.performance.max_output_tokens,
            latency_p95_ms: m.performance.latency_p95_ms,
            throughput_req_per_min: m.performance.throughput_req_per_min,
            quality: m.performance.quality.unwrap_or(0.0),
            quality_known: m.performance.quality.is_some(),
            data_residency: m.compliance.data_residency.clone().unwrap_or_default(),
            certifications: m.compliance.certifications.clone().unwrap_or_default(),
            endpoints,
        })
    }

    fn alias(&self, a: &AliasConfig) -> Alias {
        let candidates: Vec<usize> = a
            .candidates
            .iter()
            .filter_map(|c| match self.by_name.get(c) {
                Some(Entry::Model(i)) => Some(*i),
                _ => None,
            })
            .collect();
        let split = candidates
            .iter()
            .map(|&i| {
                a.split
                    .iter()
                    .find(|(id, _)| *id == self.models[i].id)
                    .map_or(0.0, |(_, share)| *share)
            })
            .collect();
        Alias {
            name: a.name.clone(),
            candidates,
            strategy: a.strategy,
            fallbacks: a.fallbacks as usize,
            split,
            quality_threshold: a.quality_threshold.unwrap_or(0.0),
        }
    }

    /// What `name` (a model id or an alias) refers to.
    pub fn resolve(&self, name: &str) -> Option<Target<'_>> {
        match self.by_name.get(name)? {
            Entry::Model(i) => Some(Target::Model(&self.models[*i])),
            Entry::Alias(i) => Some(Target::Alias(&self.aliases[*i])),
        }
    }

    /// Every model, in config order.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The model at `index`.
    pub fn model_at(&self, index: usize) -> &Model {
        &self.models[index]
    }

    /// Every alias, by name.
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// How many endpoint slots there are.
    pub fn slot_count(&self) -> usize {
        self.slots
    }

    /// Whether the registry has no models.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

fn endpoint(slot: usize, index: usize, model_id: &str, e: &EndpointConfig) -> Endpoint {
    let region = e.region.as_ref().map(|r| r.trim().to_ascii_lowercase());
    let label = match &region {
        Some(r) => format!("{model_id}@{r}"),
        None if index == 0 => model_id.to_string(),
        None => format!("{model_id}#{index}"),
    };
    Endpoint {
        slot,
        index,
        label,
        region,
        url: e.url.clone(),
        api_key: e.api_key.clone(),
        upstream_model: e.upstream_model.clone(),
        deployment: e.deployment.clone(),
        api_version: e.api_version.clone(),
        headers: e.headers.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(yaml: &str) -> Registry {
        let c = mcplane_config::parse(yaml, &|_| None).unwrap().config;
        Registry::new(&c.models, &c.routing).unwrap()
    }

    #[test]
    fn models_aliases_and_slots() {
        let r = registry(
            "models:
  - id: a
    provider: openai
    cost: { input_per_1k: 0.001, output_per_1k: 0.002 }
    performance: { quality: 0.9 }
    endpoints: [{ url: 'http://x/v1', region: US-East-1 }, { url: 'http://y/v1' }]
  - id: b
    provider: anthropic
    endpoints: [{ url: 'http://z' }]
routing:
  aliases: { ab: { candidates: [b, a], strategy: weighted, split: { a: 3 } } }
",
        );
        let Some(Target::Model(a)) = r.resolve("a") else {
            panic!("a")
        };
        assert_eq!(a.price.input_nano_per_1k, 1_000_000);
        assert_eq!(a.endpoints[0].label, "a@us-east-1");
        assert_eq!(a.endpoints[1].label, "a#1");
        assert_eq!((a.endpoints[0].slot, a.endpoints[1].slot), (0, 1));
        assert_eq!(r.model_at(1).endpoints[0].slot, 2);
        assert_eq!(r.slot_count(), 3);
        assert_eq!(r.model_at(1).format, Format::Anthropic);
        let Some(Target::Alias(ab)) = r.resolve("ab") else {
            panic!("ab")
        };
        assert_eq!(ab.candidates, [1, 0]);
        assert_eq!(ab.split, [0.0, 3.0]);
        assert!(r.resolve("c").is_none());
    }

    #[test]
    fn endpoint_regions_match_residency() {
        let r = registry(
            "models:
  - id: a
    provider: openai
    endpoints: [{ url: 'http://x/v1', region: eu-west-1 }, { url: 'http://y/v1', region: eu }, { url: 'http://z/v1' }, { url: 'http://w/v1', region: europe }]
",
        );
        let e = &r.model_at(0).endpoints;
        assert!(e[0].in_region("eu"));
        assert!(e[1].in_region("eu"));
        assert!(e[2].in_region("eu"));
        assert!(!e[3].in_region("eu"));
        assert!(!e[0].in_region("us"));
    }
}
