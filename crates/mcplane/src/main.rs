//! The `mcplane` binary: the composition root.
//!
//! Parses the command line, sets up logging, loads the config and wires the crates together:
//! upstream supervisors → the MCP [`Gateway`](mcplane_mcp::gateway::Gateway) → the downstream
//! server core → HTTP or stdio transports. Only this crate picks concrete adapters.

mod reload;
mod runtime;

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
            for n in &loaded.notices {
                eprintln!("note: {}: {}", n.path, n.message);
            }
            let c = &loaded.config;
            eprintln!(
                "{}: OK ({} MCP server(s), {} virtual server(s); listen {})",
                path.display(),
                c.mcp.servers.len(),
                c.mcp.virtual_servers.len(),
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
