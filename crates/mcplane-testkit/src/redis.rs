//! A throwaway Redis server for tests: Debian's `redis-server` on a free loopback port, no
//! persistence, stopped on drop. Missing binary: [`RedisServer::start`] gives `Ok(None)` (the
//! test says it skipped), unless `MCPLANE_REQUIRE_REDIS=1` (CI), where that is an error.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis server.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one; `Ok(None)` when `redis-server` is not installed (and not required).
    pub fn start() -> Result<Option<RedisServer>, String> {
        let required = std::env::var("MCPLANE_REQUIRE_REDIS").is_ok_and(|v| v == "1");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if required => {
                return Err(format!(
                    "MCPLANE_REQUIRE_REDIS=1 but redis-server cannot start: {e}"
                ));
            }
            Err(_) => {
                tracing::warn!(
                    "skipped: redis-server is not installed (apt-get install redis-server)"
                );
                return Ok(None);
            }
        };
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server did not listen on {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(server))
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it (to test what happens when Redis goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
