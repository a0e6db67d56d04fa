//! `mcplane policy test`: what the configured `policies:` decide for a sample request — the
//! effect, the deciding rule, every rule that applied and the obligations attached — without
//! running the gateway. The sample principal, operation and request attributes come from flags.

use clap::Args;
use mcplane_core::policy::{PolicySet, RequestAttributes, decision_json};
use mcplane_types::operation::annotations_with_defaults;
use mcplane_types::{AuthMethod, MicroUsd, Operation, Principal, PrincipalKind, Tenancy, ToolRef};
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// The sample request of `mcplane policy test`.
#[derive(Args)]
pub struct PolicyTest {
    /// Config file whose `policies:` are evaluated.
    #[arg(long, short)]
    config: PathBuf,
    /// The caller's id.
    #[arg(long, default_value = "sample-user")]
    subject: String,
    /// A role of the caller (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// The caller's org.
    #[arg(long)]
    org: Option<String>,
    /// The caller's team.
    #[arg(long)]
    team: Option<String>,
    /// The caller's project.
    #[arg(long)]
    project: Option<String>,
    /// A tool call: `SERVER/TOOL`.
    #[arg(long, conflicts_with_all = ["model", "list"])]
    tool: Option<String>,
    /// The tool's MCP annotations as JSON (unset hints take the spec's defaults).
    #[arg(long, requires = "tool")]
    annotations: Option<String>,
    /// The tool call's arguments as JSON.
    #[arg(long, requires = "tool")]
    arguments: Option<String>,
    /// A model call to this model id or alias.
    #[arg(long, conflicts_with = "list")]
    model: Option<String>,
    /// Estimated tokens of the model call.
    #[arg(long, default_value_t = 1000, requires = "model")]
    estimated_tokens: u64,
    /// Estimated cost of the model call in USD.
    #[arg(long, default_value_t = 0.0, requires = "model")]
    estimated_cost_usd: f64,
    /// A list operation instead: tools, prompts, resources or models.
    #[arg(long, value_parser = ["tools", "prompts", "resources", "models"])]
    list: Option<String>,
    /// `request.data_classification`.
    #[arg(long)]
    classification: Option<String>,
    /// `request.environment`.
    #[arg(long)]
    environment: Option<String>,
    /// `request.headers` entry `NAME=VALUE` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
}

fn json_arg(what: &str, text: Option<&str>) -> anyhow::Result<Option<Value>> {
    text.map(|t| {
        serde_json::from_str(t).map_err(|e| anyhow::anyhow!("--{what} is not valid JSON: {e}"))
    })
    .transpose()
}

impl PolicyTest {
    fn operation(&self) -> anyhow::Result<Operation> {
        if let Some(tool) = &self.tool {
            let (server, name) = tool
                .split_once('/')
                .filter(|(s, n)| !s.is_empty() && !n.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--tool must be SERVER/TOOL, e.g. files/read"))?;
            let annotations = json_arg("annotations", self.annotations.as_deref())?;
            return Ok(Operation::CallTool {
                tool: ToolRef {
                    server: server.into(),
                    name: name.into(),
                    annotations: annotations_with_defaults(annotations.as_ref()),
                },
                arguments: json_arg("arguments", self.arguments.as_deref())?
                    .unwrap_or_else(|| serde_json::json!({})),
            });
        }
        if let Some(model) = &self.model {
            let cost = MicroUsd::from_usd(self.estimated_cost_usd)
                .ok_or_else(|| anyhow::anyhow!("--estimated-cost-usd is out of range"))?;
            return Ok(Operation::ModelCall {
                model: model.clone(),
                estimated_tokens: self.estimated_tokens,
                estimated_cost: cost,
            });
        }
        Ok(match self.list.as_deref() {
            Some("prompts") => Operation::ListPrompts,
            Some("resources") => Operation::ListResources,
            Some("models") => Operation::ListModels,
            Some(_) => Operation::ListTools,
            None => anyhow::bail!("say what the request does: --tool, --model or --list"),
        })
    }

    fn principal(&self) -> Principal {
        Principal {
            id: self.subject.clone(),
            kind: PrincipalKind::User,
            tenancy: Tenancy {
                org: self.org.clone(),
                team: self.team.clone(),
                project: self.project.clone(),
            },
            roles: self.roles.iter().cloned().collect(),
            attributes: Default::default(),
            auth: AuthMethod::Anonymous,
        }
    }

    fn request(&self) -> anyhow::Result<RequestAttributes> {
        let mut headers = std::collections::BTreeMap::new();
        for h in &self.headers {
            let (k, v) = h
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--header must be NAME=VALUE, got {h:?}"))?;
            headers.insert(k.trim().to_ascii_lowercase(), v.to_string());
        }
        Ok(RequestAttributes {
            data_classification: self.classification.clone(),
            environment: self.environment.clone(),
            headers,
        })
    }

    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let loaded = match mcplane_config::load(&self.config) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{}: {e}", self.config.display());
                return Ok(ExitCode::from(2));
            }
        };
        let specs = loaded.config.pending.policies.clone().unwrap_or_default();
        let set = match PolicySet::compile(&specs, "policies") {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}: {e}", self.config.display());
                return Ok(ExitCode::from(2));
            }
        };
        let decision = set.decide(&self.principal(), &self.operation()?, &self.request()?);
        let j = decision_json(&decision);
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        match j["deciding_rule"].as_str() {
            Some(rule) => match j["reason"].as_str() {
                Some(reason) => writeln!(out, "deny, by rule {rule}: {reason}")?,
                None => writeln!(out, "allow, by rule {rule}")?,
            },
            None => writeln!(out, "allow (no rule denies it)")?,
        }
        let list = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
        };
        writeln!(
            out,
            "rules that applied: {}",
            list(&j["matched"]).unwrap_or_else(|| "none".into())
        )?;
        if let Some(rule) = j["require_approval"].as_str() {
            writeln!(out, "requires approval (rule {rule})")?;
        }
        if let Some(to) = list(&j["route_to"]) {
            writeln!(out, "route to: {to}")?;
        }
        if let Some(r) = list(&j["redact"]) {
            writeln!(out, "redact: {r}")?;
        }
        if let Some(l) = j["log"].as_str() {
            writeln!(out, "log: {l}")?;
        }
        if let Some(s) = j["shadow"].as_object() {
            writeln!(
                out,
                "shadow: {}% to {}",
                s["percent"],
                s["to"].as_str().unwrap_or("")
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
