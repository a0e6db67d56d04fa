//! `mcplane-fixture`: the MCP conformance fixture server as a process, for tests that need an
//! upstream to spawn and for running the official conformance suite against mcplane's transports.
//!
//! ```text
//! mcplane-fixture                     # serve over stdio (newline-delimited JSON-RPC)
//! mcplane-fixture --http 127.0.0.1:0  # serve over HTTP; prints the /mcp URL on stderr
//! ```

use mcplane_mcp::server::Server;
use mcplane_testkit::conformance::{ConformanceFixture, serve_conformance_fixture};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: mcplane-fixture [--http ADDR]\n  without options: serve the conformance fixture over stdio\n  --http ADDR: serve it over HTTP (/mcp and /sse) on ADDR, e.g. 127.0.0.1:0";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [] => serve_stdio().await,
        [flag, addr] if flag == "--http" => match addr.parse::<SocketAddr>() {
            Ok(addr) => serve_http(addr).await,
            Err(_) => Err(format!(
                "--http needs IP:PORT such as 127.0.0.1:0, not {addr:?}"
            )),
        },
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

async fn serve_stdio() -> Result<(), String> {
    let server = Server::new(Arc::new(ConformanceFixture::new()));
    mcplane_mcp::stdio_server::serve(server, tokio::io::stdin(), tokio::io::stdout())
        .await
        .map_err(|e| format!("stdio: {e}"))
}

async fn serve_http(addr: SocketAddr) -> Result<(), String> {
    let (http, _fixture) = serve_conformance_fixture(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("mcplane-fixture: serving {}", http.url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    http.shutdown().await.map_err(|e| format!("shutdown: {e}"))
}
