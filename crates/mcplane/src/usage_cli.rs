//! `mcplane usage recent`: the latest model calls from the store (who, which model, tokens, cost,
//! latency, outcome); `mcplane usage spend`: totals by model, principal or tenant level since a
//! time. Tables or JSON. Reads the database `store.url` names; the gateway need not be running.

use clap::Args;
use mcplane_store::SpendBy;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `mcplane usage recent`.
#[derive(Args)]
pub struct Recent {
    /// Config file whose `store.url` is read (without one: `mcplane.db` here).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// How many calls, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    /// Only calls served by this model.
    #[arg(long)]
    model: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Recent {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let loaded = match &self.config {
            Some(p) => match mcplane_config::load(p) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return Ok(ExitCode::from(2));
                }
            },
            None => mcplane_config::parse("", &|_| None)?,
        };
        let store = match mcplane_store::Store::open(loaded.config.store.url.expose()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mcplane: store.url: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let calls = store
            .recent_calls(self.limit, self.model.as_deref())
            .await?;
        store.close().await;
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&calls)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        if calls.is_empty() {
            writeln!(out, "no model calls recorded yet")?;
            return Ok(ExitCode::SUCCESS);
        }
        writeln!(
            out,
            "{:<24} {:<16} {:<14} {:>6} {:>8} {:>8} {:>12} {:>9} {:>8}  OUTCOME",
            "REQUEST", "PRINCIPAL", "MODEL", "STATUS", "IN", "OUT", "COST USD", "LATENCY", "TTFT"
        )?;
        for c in &calls {
            let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>();
            writeln!(
                out,
                "{:<24} {:<16} {:<14} {:>6} {:>8} {:>8} {:>12.6} {:>7}ms {:>8}  {}",
                clip(&c.request_id, 24),
                clip(c.principal.as_deref().unwrap_or("-"), 16),
                clip(c.model.as_deref().unwrap_or("-"), 14),
                c.status,
                c.prompt_tokens,
                c.completion_tokens,
                c.cost_micros as f64 / 1e6,
                c.latency_ms,
                c.ttft_ms.map_or("-".into(), |t| format!("{t}ms")),
                c.outcome
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `mcplane usage spend`.
#[derive(Args)]
pub struct Spend {
    /// Config file whose `store.url` is read (without one: `mcplane.db` here).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Group by.
    #[arg(long, default_value = "model", value_parser = ["model", "principal", "org", "team", "project"])]
    by: String,
    /// How far back (`30d`, `12h`).
    #[arg(long, default_value = "30d")]
    since: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Spend {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let since: mcplane_config::HumanDuration =
            serde_json::from_value(serde_json::json!(self.since))
                .map_err(|e| anyhow::anyhow!("--since {:?}: {e} (e.g. 30d, 12h)", self.since))?;
        let loaded = match &self.config {
            Some(p) => match mcplane_config::load(p) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return Ok(ExitCode::from(2));
                }
            },
            None => mcplane_config::parse("", &|_| None)?,
        };
        let store = match mcplane_store::Store::open(loaded.config.store.url.expose()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mcplane: store.url: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let by = match self.by.as_str() {
            "principal" => SpendBy::Principal,
            "org" => SpendBy::Org,
            "team" => SpendBy::Team,
            "project" => SpendBy::Project,
            _ => SpendBy::Model,
        };
        let since_ms = mcplane_types::clock::now_ms()
            .saturating_sub(i64::try_from(since.0.as_millis()).unwrap_or(i64::MAX));
        let rows = store.spend(by, since_ms).await?;
        store.close().await;
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>12} {:>14}",
            self.by.to_uppercase(),
            "CALLS",
            "IN TOKENS",
            "OUT TOKENS",
            "COST USD"
        )?;
        let mut total = 0i64;
        for r in &rows {
            total += r.cost_micros;
            writeln!(
                out,
                "{:<24} {:>8} {:>12} {:>12} {:>14}",
                r.key,
                r.calls,
                r.prompt_tokens,
                r.completion_tokens,
                mcplane_types::MicroUsd::from_micros(r.cost_micros)
            )?;
        }
        writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>12} {:>14}",
            "TOTAL",
            rows.iter().map(|r| r.calls).sum::<i64>(),
            rows.iter().map(|r| r.prompt_tokens).sum::<i64>(),
            rows.iter().map(|r| r.completion_tokens).sum::<i64>(),
            mcplane_types::MicroUsd::from_micros(total)
        )?;
        Ok(ExitCode::SUCCESS)
    }
}
