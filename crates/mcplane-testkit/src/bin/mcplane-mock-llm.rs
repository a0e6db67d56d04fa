//! `mcplane-mock-llm`: the mock model providers as a process, serving the OpenAI, Azure OpenAI,
//! Anthropic and Gemini wire formats at once, for external tests and benchmarks.
//!
//! ```text
//! mcplane-mock-llm --listen 127.0.0.1:0 --api-key sk-mock
//! ```
//!
//! Prints `listening addr=IP:PORT` on stderr once it accepts connections; stops on Ctrl-C or
//! SIGTERM. Faults and the request log are driven over HTTP under `/__mock/` (see
//! `mcplane_testkit::mock_llm::control`).

use clap::Parser;
use mcplane_testkit::mock_llm::{Fault, MockConfig, MockProvider};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Mock model providers (OpenAI, Azure OpenAI, Anthropic, Gemini) with fault injection.
#[derive(Parser, Debug)]
#[command(name = "mcplane-mock-llm", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The key every provider route requires; without it any non-empty key passes.
    #[arg(long, env = "MOCK_LLM_API_KEY")]
    api_key: Option<String>,
    /// Model ids the listing endpoints return (comma-separated).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Embedding dimensions when a request does not ask for a number.
    #[arg(long, default_value_t = 1536)]
    embedding_dims: usize,
    /// Delay between stream events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    event_interval_ms: u64,
    /// How many recent requests to keep for `GET /__mock/requests` (0: none).
    #[arg(long, default_value_t = 10_000)]
    record: usize,
    /// Initial fault rules as JSON (an object or an array), as for `POST /__mock/faults`.
    #[arg(long)]
    faults: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcplane-mock-llm: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = MockConfig {
        listen: args.listen,
        api_key: args.api_key,
        embedding_dims: args.embedding_dims,
        event_interval: Duration::from_millis(args.event_interval_ms),
        record_limit: args.record,
        ..MockConfig::default()
    };
    if let Some(models) = args.models {
        config.models = models;
    }
    if let Some(json) = args.faults {
        config.faults = match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Array(_)) => serde_json::from_str::<Vec<Fault>>(&json),
            _ => serde_json::from_str::<Fault>(&json).map(|f| vec![f]),
        }
        .map_err(|e| format!("--faults: {e}"))?;
    }
    let mock = MockProvider::start(config)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!("mcplane-mock-llm listening addr={}", mock.addr());
    wait_for_signal().await?;
    mock.shutdown().await.map_err(|e| format!("shutdown: {e}"))
}

async fn wait_for_signal() -> Result<(), String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("installing the SIGTERM handler: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("waiting for Ctrl-C: {e}")),
        _ = term.recv() => Ok(()),
    }
}
