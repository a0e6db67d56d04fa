//! A throwaway PostgreSQL cluster for tests: Debian's server binaries, `initdb` into a temporary
//! directory (trust authentication, no fsync), `postgres` on a free loopback port, stopped and
//! removed on drop. As root the cluster runs as the `postgres` user (PostgreSQL refuses root).
//! Missing binaries: [`PostgresServer::start`] gives `Ok(None)` (the test says it skipped),
//! unless `MCPLANE_REQUIRE_POSTGRES=1` (CI), where that is an error.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct PostgresServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

/// The newest server binaries directory (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// Starts one; `Ok(None)` when the server binaries are not installed (and not required).
    pub fn start() -> Result<Option<PostgresServer>, String> {
        let required = std::env::var("MCPLANE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let Some(bin) = bin_dir() else {
            if required {
                return Err(
                    "MCPLANE_REQUIRE_POSTGRES=1 but the PostgreSQL server is not installed \
                     (apt-get install postgresql)"
                        .into(),
                );
            }
            tracing::warn!("skipped: the PostgreSQL server is not installed");
            return Ok(None);
        };
        let as_postgres = is_root();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mcplane-pg-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!(
                    "cannot hand {} to the postgres user",
                    dir.display()
                ));
            }
        }
        let data = dir.join("data");
        let init = command(as_postgres, &bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "mcplane",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = command(as_postgres, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let server = PostgresServer {
            child,
            port,
            dir,
            bin,
            as_postgres,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = command(as_postgres, &server.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "mcplane",
                    "-q",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ready && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Some(server));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres did not accept connections on {port} within 30 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of its `postgres` database as the `mcplane` superuser.
    pub fn url(&self) -> String {
        format!("postgres://mcplane@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = command(self.as_postgres, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
