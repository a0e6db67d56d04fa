//! The `models` section: the model registry — what each model can do, what it costs, how fast it
//! is, where it may process data, and the endpoints that serve it.

use crate::validate::{field, fraction, http_url, ident, index, non_empty, non_negative, unique};
use crate::{ConfigError, SecretString};
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

/// Something a model can do; a request needing it is only routed to models that list it.
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

/// One entry of `models:`. Not active yet.
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
    /// Predicted quality from 0 to 1, for the `cheapest` routing strategy's threshold.
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
    /// (e.g. an Azure deployment or a dated model version).
    pub model: Option<String>,
    /// Azure OpenAI: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// Extra headers sent with every request (values are secrets).
    pub headers: Option<BTreeMap<String, SecretString>>,
}

impl ModelSpec {
    pub(crate) fn validate_all(models: &[ModelSpec], at: &str) -> Result<(), ConfigError> {
        let mut ids = BTreeSet::new();
        for (i, m) in models.iter().enumerate() {
            let at = index(at, i);
            ident(&field(&at, "id"), &m.id)?;
            unique(&mut ids, &field(&at, "id"), &m.id, "model id")?;
            if let Some(c) = &m.cost {
                let at = field(&at, "cost");
                non_negative(&field(&at, "input_per_1k"), c.input_per_1k)?;
                non_negative(&field(&at, "output_per_1k"), c.output_per_1k)?;
            }
            if let Some(q) = m.performance.as_ref().and_then(|p| p.quality) {
                fraction(&field(&field(&at, "performance"), "quality"), q)?;
            }
            for (j, e) in m.endpoints.iter().flatten().enumerate() {
                let at = index(&field(&at, "endpoints"), j);
                http_url(&field(&at, "url"), &e.url)?;
                if let Some(model) = &e.model {
                    non_empty(&field(&at, "model"), model)?;
                }
            }
        }
        Ok(())
    }
}
