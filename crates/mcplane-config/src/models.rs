//! The `models` section: the model registry — what each model can do, what it costs, how fast it
//! is, where it may process data, and the endpoints that serve it.
//!
//! Lowered into [`ModelConfig`]s: capabilities sorted and deduplicated (`[chat]` when absent),
//! residency regions lower-cased, every model with at least one endpoint, Azure endpoints with
//! their `api_version`. Provider credentials come only from here; a client can never supply an
//! upstream URL or key.

use crate::validate::{field, fraction, http_url, ident, index, non_empty, non_negative, unique};
use crate::{ConfigError, Notice, SecretString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The wire format and authentication a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI's API.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Azure OpenAI (deployments, `api-version`).
    AzureOpenai,
    /// Google Gemini.
    Gemini,
    /// Any OpenAI-compatible server: vLLM, Ollama, llama.cpp, Together, Groq, …
    OpenaiCompatible,
}

impl Provider {
    /// The name as written in config (`openai`, `azure_openai`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::AzureOpenai => "azure_openai",
            Provider::Gemini => "gemini",
            Provider::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// Something a model can do; a request needing it is only routed to models that list it.
/// Streaming is assumed for every chat model (listing `streaming` is informational).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Chat completions.
    Chat,
    /// Tool (function) calling.
    Tools,
    /// Image input.
    Vision,
    /// JSON mode / structured output (`response_format`).
    JsonMode,
    /// Streaming responses.
    Streaming,
    /// Embeddings.
    Embeddings,
}

impl Capability {
    /// The name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Chat => "chat",
            Capability::Tools => "tools",
            Capability::Vision => "vision",
            Capability::JsonMode => "json_mode",
            Capability::Streaming => "streaming",
            Capability::Embeddings => "embeddings",
        }
    }
}

/// One entry of `models:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The name clients ask for (`model` in requests), unique in the registry.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Which provider's API serves it.
    pub provider: Provider,
    /// What it can do.
    #[schemars(extend("default" = ["chat"]))]
    pub capabilities: Option<Vec<Capability>>,
    /// Price, in US dollars.
    pub cost: Option<CostSpec>,
    /// Performance figures the router scores with.
    pub performance: Option<PerformanceSpec>,
    /// Where it may process data and which certifications it holds.
    pub compliance: Option<ComplianceSpec>,
    /// Endpoints serving it (one per region or account), tried in order by the router.
    pub endpoints: Option<Vec<EndpointSpec>>,
}

/// A model's price.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostSpec {
    /// US dollars per 1,000 input (prompt) tokens.
    pub input_per_1k: f64,
    /// US dollars per 1,000 output (completion) tokens.
    pub output_per_1k: f64,
}

/// A model's performance figures.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PerformanceSpec {
    /// 95th-percentile latency of a typical call, in milliseconds (a prior; live health refines it).
    pub latency_p95_ms: Option<u32>,
    /// Context window in tokens; requests estimated above it are not routed here.
    pub max_tokens: Option<u32>,
    /// Most tokens it can generate in one response.
    pub max_output_tokens: Option<u32>,
    /// Sustained requests per minute the provider allows.
    pub throughput_req_per_min: Option<u32>,
    /// Predicted quality from 0 to 1 (e.g. your eval suite's pass rate for this model): the
    /// numerator of the `cheapest` strategy's quality ÷ cost, and what its `quality_threshold`
    /// is compared with. A model without it counts as quality 0.
    pub quality: Option<f64>,
}

/// Where a model may process data.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceSpec {
    /// Regions data may be processed in (e.g. `us`, `eu`); requests requiring a residency are only
    /// routed to models listing it.
    pub data_residency: Option<Vec<String>>,
    /// Certifications held (e.g. `soc2`, `hipaa`, `iso27001`).
    pub certifications: Option<Vec<String>>,
}

/// One endpoint serving a model.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Region label, matched against data-residency requirements and shown in route reasons.
    pub region: Option<String>,
    /// Base URL of the provider's API (e.g. `https://api.openai.com/v1`).
    pub url: String,
    /// API key. Write it as `${ENV}`.
    pub api_key: Option<SecretString>,
    /// The provider's own name for the model at this endpoint, when it differs from `id`
    /// (e.g. a dated model version).
    pub model: Option<String>,
    /// Azure OpenAI: the deployment name in `/openai/deployments/{deployment}/…` (default: `model`,
    /// else the model's `id`).
    pub deployment: Option<String>,
    /// Azure OpenAI: the `api-version` query parameter (required for `azure_openai`).
    pub api_version: Option<String>,
    /// Extra headers sent with every request (values are secrets).
    pub headers: Option<BTreeMap<String, SecretString>>,
}

/// A validated registry entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The name clients ask for.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Which provider's API serves it.
    pub provider: Provider,
    /// What it can do, sorted, without duplicates (`[chat]` when not written).
    pub capabilities: Vec<Capability>,
    /// Price (`None`: free, e.g. a self-hosted model).
    pub cost: Option<CostSpec>,
    /// Performance figures.
    pub performance: PerformanceSpec,
    /// Residency regions (lower-cased) and certifications.
    pub compliance: ComplianceSpec,
    /// Endpoints, at least one, in the order the router tries them.
    pub endpoints: Vec<EndpointConfig>,
}

impl ModelConfig {
    /// Whether the model lists `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// A validated endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Region label (as written).
    pub region: Option<String>,
    /// Base URL, without a trailing `/`.
    pub url: String,
    /// API key; `None` when not configured or empty.
    pub api_key: Option<SecretString>,
    /// The provider's name for the model here (the model's `id` unless `model` was written).
    pub upstream_model: String,
    /// Azure OpenAI deployment (`deployment`, else `model`, else the model's `id`).
    pub deployment: String,
    /// Azure OpenAI `api-version`.
    pub api_version: Option<String>,
    /// Extra headers, in name order.
    pub headers: Vec<(String, SecretString)>,
}

impl ModelSpec {
    /// Validates the whole list (ids first, so a duplicate is reported before anything else in
    /// a later entry) and lowers it; notices for endpoints without a key.
    pub(crate) fn lower_all(
        models: Vec<ModelSpec>,
        at: &str,
        notices: &mut Vec<Notice>,
    ) -> Result<Vec<ModelConfig>, ConfigError> {
        let mut ids = BTreeSet::new();
        for (i, m) in models.iter().enumerate() {
            let at = index(at, i);
            ident(&field(&at, "id"), &m.id)?;
            unique(&mut ids, &field(&at, "id"), &m.id, "model id")?;
        }
        models
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.lower(&index(at, i), notices))
            .collect()
    }

    fn lower(self, at: &str, notices: &mut Vec<Notice>) -> Result<ModelConfig, ConfigError> {
        if let Some(c) = &self.cost {
            let at = field(at, "cost");
            non_negative(&field(&at, "input_per_1k"), c.input_per_1k)?;
            non_negative(&field(&at, "output_per_1k"), c.output_per_1k)?;
            if c.input_per_1k > 1e6 || c.output_per_1k > 1e6 {
                return Err(ConfigError::invalid(
                    at,
                    "more than a million dollars per 1k tokens; prices are US dollars per 1,000 tokens",
                ));
            }
        }
        if let Some(q) = self.performance.as_ref().and_then(|p| p.quality) {
            fraction(&field(&field(at, "performance"), "quality"), q)?;
        }
        let mut capabilities = self.capabilities.unwrap_or_else(|| vec![Capability::Chat]);
        capabilities.sort();
        capabilities.dedup();
        if self.provider == Provider::Anthropic && capabilities.contains(&Capability::Embeddings) {
            return Err(ConfigError::invalid(
                field(at, "capabilities"),
                "provider anthropic has no embeddings API; remove `embeddings`",
            ));
        }
        let mut endpoints = Vec::new();
        for (j, e) in self.endpoints.unwrap_or_default().into_iter().enumerate() {
            let at = index(&field(at, "endpoints"), j);
            endpoints.push(e.lower(&at, &self.id, self.provider, notices)?);
        }
        if endpoints.is_empty() {
            return Err(ConfigError::invalid(
                field(at, "endpoints"),
                "at least one endpoint is required (url and api_key of the provider serving this model)",
            ));
        }
        let mut compliance = self.compliance.unwrap_or_default();
        if let Some(regions) = compliance.data_residency.as_mut() {
            for r in regions.iter_mut() {
                *r = r.trim().to_ascii_lowercase();
            }
        }
        Ok(ModelConfig {
            id: self.id,
            name: self.name,
            provider: self.provider,
            capabilities,
            cost: self.cost,
            performance: self.performance.unwrap_or_default(),
            compliance,
            endpoints,
        })
    }
}

impl EndpointSpec {
    fn lower(
        self,
        at: &str,
        id: &str,
        provider: Provider,
        notices: &mut Vec<Notice>,
    ) -> Result<EndpointConfig, ConfigError> {
        let url = http_url(&field(at, "url"), &self.url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::invalid(
                field(at, "url"),
                "must be a base URL without ?query or #fragment (keys go in api_key)",
            ));
        }
        for (key, v) in [
            ("model", &self.model),
            ("deployment", &self.deployment),
            ("api_version", &self.api_version),
            ("region", &self.region),
        ] {
            if let Some(v) = v {
                non_empty(&field(at, key), v)?;
            }
        }
        if provider == Provider::AzureOpenai && self.api_version.is_none() {
            return Err(ConfigError::invalid(
                field(at, "api_version"),
                "required for provider azure_openai (e.g. \"2024-10-21\")",
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in self.headers.unwrap_or_default() {
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid_name {
                return Err(ConfigError::invalid(
                    field(&field(at, "headers"), &name),
                    "not a valid HTTP header name",
                ));
            }
            if value
                .expose()
                .bytes()
                .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
            {
                return Err(ConfigError::invalid(
                    field(&field(at, "headers"), &name),
                    "the value contains control characters",
                ));
            }
            headers.push((name, value));
        }
        let api_key = self.api_key.filter(|k| !k.is_empty());
        if api_key.is_none() && provider != Provider::OpenaiCompatible {
            notices.push(Notice {
                path: field(at, "api_key"),
                message: format!(
                    "not set: requests to this {} endpoint are sent without a key",
                    provider.as_str()
                ),
            });
        }
        let upstream_model = self.model.unwrap_or_else(|| id.to_string());
        Ok(EndpointConfig {
            region: self.region,
            url: self.url.trim_end_matches('/').to_string(),
            api_key,
            deployment: self.deployment.unwrap_or_else(|| upstream_model.clone()),
            upstream_model,
            api_version: self.api_version,
            headers,
        })
    }
}
