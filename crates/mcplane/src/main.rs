//! The `mcplane` binary: the composition root.
//!
//! Parses the command line, sets up logging, loads the config and wires the crates together:
//! upstream supervisors → the MCP [`Gateway`](mcplane_mcp::gateway::Gateway) → the downstream
//! server core → HTTP or stdio transports. Only this crate picks concrete adapters.

mod governance;
mod keys_cli;
mod policy_cli;
mod reload;
mod runtime;
mod usage_cli;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// One gateway and control plane for AI agents' models and tools.
#[derive(Parser)]
#[command(name = "mcplane", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway over HTTP (MCP at /mcp, legacy SSE at /sse, health at /healthz, /readyz).
    Serve {
        /// Config file. Without one, mcplane serves the built-in demo server as its one upstream.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address, overriding `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file and print what is wrong, with key paths.
    Check {
        /// Config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway as one MCP server over stdin/stdout (for desktop clients that launch it).
    Stdio {
        /// Config file. Without one, the built-in demo server is the one upstream.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the built-in demo MCP server (stdio by default; Streamable HTTP with --listen).
    DemoServer {
        /// Serve Streamable HTTP at this address instead of stdio.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Policies: `mcplane policy test` shows what `policies:` decide for a sample request.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// API keys: `mcplane keys create|list|revoke`.
    Keys {
        #[command(subcommand)]
        command: keys_cli::KeysCommand,
    },
    /// Model calls recorded in the store: `mcplane usage recent`.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// The model registry.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum UsageCommand {
    /// The latest model calls: who, which model, tokens, cost, latency, time to first token.
    Recent(usage_cli::Recent),
    /// Spend by model, principal, org, team or project since a time.
    Spend(usage_cli::Spend),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// The decision, the deciding rule, every rule that applied and the obligations attached,
    /// for a sample principal, operation and request.
    Test(Box<policy_cli::PolicyTest>),
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Print the registry's models and aliases from a config file (no secrets).
    List {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::init_logging();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        match cli.command {
            Command::Serve { config, listen } => runtime::serve(config.as_deref(), listen).await,
            Command::Check { config } => check(&config),
            Command::Stdio { config } => runtime::stdio(config.as_deref()).await,
            Command::DemoServer { listen } => runtime::demo_server(listen).await,
            Command::Models {
                command: ModelsCommand::List { config, json },
            } => models_list(config.as_deref(), json),
            Command::Policy {
                command: PolicyCommand::Test(t),
            } => t.run(),
            Command::Usage {
                command: UsageCommand::Recent(r),
            } => r.run().await,
            Command::Usage {
                command: UsageCommand::Spend(sp),
            } => sp.run().await,
            Command::Keys { command } => command.run().await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match mcplane_config::load(path) {
        Ok(loaded) => {
            if let Err(e) = governance::validate(&loaded.config) {
                eprintln!("{}: {e:#}", path.display());
                return Ok(ExitCode::from(2));
            }
            for n in &loaded.notices {
                eprintln!("note: {}: {}", n.path, n.message);
            }
            let c = &loaded.config;
            eprintln!(
                "{}: OK ({} MCP server(s), {} virtual server(s), {} model(s), {} alias(es); listen {})",
                path.display(),
                c.mcp.servers.len(),
                c.mcp.virtual_servers.len(),
                c.models.len(),
                c.routing.aliases.len(),
                c.server.listen
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Ok(ExitCode::from(2))
        }
    }
}

/// `mcplane models list`: the registry as a table (or JSON) on stdout. Keys are shown only as
/// set or not.
fn models_list(path: Option<&std::path::Path>, json: bool) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let loaded = match path {
        Some(p) => match mcplane_config::load(p) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                return Ok(ExitCode::from(2));
            }
        },
        None => mcplane_config::parse("", &|_| None)?,
    };
    let c = &loaded.config;
    let mut out = std::io::stdout().lock();
    if json {
        let models: Vec<serde_json::Value> = c
            .models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id,
                    "name": m.name,
                    "provider": m.provider.as_str(),
                    "capabilities": m.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "cost": m.cost.as_ref().map(|c| serde_json::json!({"input_per_1k": c.input_per_1k, "output_per_1k": c.output_per_1k})),
                    "performance": m.performance,
                    "compliance": m.compliance,
                    "endpoints": m.endpoints.iter().map(|e| serde_json::json!({
                        "region": e.region,
                        "url": e.url,
                        "model": e.upstream_model,
                        "deployment": (m.provider == mcplane_config::Provider::AzureOpenai).then_some(&e.deployment),
                        "api_version": e.api_version,
                        "api_key": if e.api_key.is_some() { "set" } else { "none" },
                        "headers": e.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let aliases: Vec<serde_json::Value> = c
            .routing
            .aliases
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "strategy": a.strategy,
                    "candidates": a.candidates,
                    "fallbacks": a.fallbacks,
                    "split": a.split.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "quality_threshold": a.quality_threshold,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"models": models, "aliases": aliases})
            )?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if c.models.is_empty() {
        writeln!(out, "no models configured (add a `models:` section)")?;
        return Ok(ExitCode::SUCCESS);
    }
    let dash = || "-".to_string();
    let mut rows = vec![[
        "ID".to_string(),
        "PROVIDER".into(),
        "CAPABILITIES".into(),
        "$IN/1K".into(),
        "$OUT/1K".into(),
        "CONTEXT".into(),
        "P95 MS".into(),
        "QUALITY".into(),
        "RESIDENCY".into(),
        "ENDPOINTS".into(),
    ]];
    for m in &c.models {
        let endpoints = m
            .endpoints
            .iter()
            .map(|e| {
                let target = if m.provider == mcplane_config::Provider::AzureOpenai {
                    format!(
                        "deployment {}, api-version {}",
                        e.deployment,
                        e.api_version.as_deref().unwrap_or("-")
                    )
                } else {
                    format!("model {}", e.upstream_model)
                };
                format!(
                    "{}{} ({target}, key {})",
                    e.region
                        .as_ref()
                        .map(|r| format!("{r}: "))
                        .unwrap_or_default(),
                    e.url,
                    if e.api_key.is_some() { "set" } else { "none" }
                )
            })
            .collect::<Vec<_>>()
            .join(" | ");
        rows.push([
            m.id.clone(),
            m.provider.as_str().into(),
            m.capabilities
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(","),
            m.cost
                .as_ref()
                .map_or_else(dash, |c| c.input_per_1k.to_string()),
            m.cost
                .as_ref()
                .map_or_else(dash, |c| c.output_per_1k.to_string()),
            m.performance
                .max_tokens
                .map_or_else(dash, |v| v.to_string()),
            m.performance
                .latency_p95_ms
                .map_or_else(dash, |v| v.to_string()),
            m.performance.quality.map_or_else(dash, |v| v.to_string()),
            m.compliance
                .data_residency
                .as_ref()
                .map_or_else(dash, |r| r.join(",")),
            endpoints,
        ]);
    }
    print_table(&mut out, &rows)?;
    if !c.routing.aliases.is_empty() {
        writeln!(out)?;
        let mut rows = vec![[
            "ALIAS".to_string(),
            "STRATEGY".into(),
            "CANDIDATES".into(),
            "FALLBACKS".into(),
            "DETAIL".into(),
        ]];
        for a in &c.routing.aliases {
            let strategy = serde_json::to_value(a.strategy)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let detail = match (&a.split[..], a.quality_threshold) {
                ([], Some(q)) => format!("quality >= {q}"),
                ([], None) => String::new(),
                (split, _) => split
                    .iter()
                    .map(|(m, s)| format!("{m}={s}"))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            rows.push([
                a.name.clone(),
                strategy,
                a.candidates.join(","),
                a.fallbacks.to_string(),
                detail,
            ]);
        }
        print_table(&mut out, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table<const N: usize>(
    out: &mut impl std::io::Write,
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
