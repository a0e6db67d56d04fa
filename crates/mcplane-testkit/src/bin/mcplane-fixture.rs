//! `mcplane-fixture`: the MCP conformance fixture server as a process, for tests that need an
//! upstream to spawn and for running the official conformance suite against mcplane's transports.
//!
//! ```text
//! mcplane-fixture                     # serve over stdio (newline-delimited JSON-RPC)
//! mcplane-fixture --http 127.0.0.1:0  # serve over HTTP; prints the /mcp URL on stderr
//! mcplane-fixture --http 127.0.0.1:0 --modern-only  # HTTP, 2026-07-28 only (initialize refused)
//! ```

use mcplane_mcp::server::Server;
use mcplane_testkit::conformance::{ConformanceFixture, serve_fixture};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: mcplane-fixture [--http ADDR [--modern-only]]\n  without options: serve the conformance fixture over stdio\n  --http ADDR: serve it over HTTP (/mcp and /sse) on ADDR, e.g. 127.0.0.1:0\n  --modern-only: speak only the stateless 2026-07-28 era (initialize is refused)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [] => serve_stdio().await,
        [flag, addr, rest @ ..]
            if flag == "--http" && (rest.is_empty() || rest == ["--modern-only"]) =>
        {
            http_fixture(addr, !rest.is_empty()).await
        }
        [flag] if flag == "--help" || flag == "-h" => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcplane-fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn http_fixture(addr: &str, modern_only: bool) -> Result<(), String> {
    match addr.parse::<SocketAddr>() {
        Ok(addr) => serve_http(addr, modern_only).await,
        Err(_) => Err(format!(
            "--http needs IP:PORT such as 127.0.0.1:0, not {addr:?}"
        )),
    }
}

async fn serve_stdio() -> Result<(), String> {
    let server = Server::new(Arc::new(ConformanceFixture::new()));
    mcplane_mcp::stdio_server::serve(server, tokio::io::stdin(), tokio::io::stdout())
        .await
        .map_err(|e| format!("stdio: {e}"))
}

async fn serve_http(addr: SocketAddr, modern_only: bool) -> Result<(), String> {
    let fixture = if modern_only {
        ConformanceFixture::modern_only()
    } else {
        ConformanceFixture::new()
    };
    let (http, _fixture) = serve_fixture(fixture, addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("mcplane-fixture: serving {}", http.url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    http.shutdown().await.map_err(|e| format!("shutdown: {e}"))
}
