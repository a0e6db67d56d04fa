//! Config reload without a restart: the config file is watched (its directory, so editors that
//! save by renaming and Kubernetes ConfigMap swaps are seen), and SIGHUP asks for a reload too.
//!
//! Changes are debounced, then the file is read and validated as at start-up. A file that does
//! not validate changes nothing: the error is logged with its key path and the running config
//! stays. A valid one is applied where that can be done in place: virtual servers
//! (`mcp.virtual_servers`) are added, swapped or removed without dropping the sessions of those
//! that stay. Everything else (upstream servers, naming, the listener) is only compared, and a
//! difference is logged as needing a restart.

use mcplane_config::Config;
use mcplane_gateway::virtual_servers::VirtualEndpoints;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long the file must stay quiet before it is read (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The file (or its directory entry) changed.
    File,
    /// SIGHUP.
    Signal,
}

/// What a reload applies to, and what it compares against.
pub struct Reloader {
    path: PathBuf,
    running: Config,
    /// The last text read (a file event that changes nothing is not a reload).
    text: Option<String>,
    /// `--listen` given on the command line: the file's `server.listen` is not what runs.
    listen_overridden: bool,
    virtual_servers: Arc<VirtualEndpoints>,
}

impl Reloader {
    /// A reloader for `path`, whose running config is `running`.
    pub fn new(
        path: &Path,
        running: Config,
        listen_overridden: bool,
        virtual_servers: Arc<VirtualEndpoints>,
    ) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            text: std::fs::read_to_string(path).ok(),
            running,
            listen_overridden,
            virtual_servers,
        }
    }

    /// Watches the file and SIGHUP until `shutdown`, reloading on each (debounced) change.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (tx, mut rx) = mpsc::channel::<Trigger>(64);
        let _watcher = self.watch(tx.clone());
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
                None
            }
        };
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let first = tokio::select! {
                t = rx.recv() => match t {
                    Some(t) => t,
                    None => return,
                },
                Some(()) = hangup => Trigger::Signal,
                _ = shutdown.cancelled() => return,
            };
            // Debounce: wait until nothing more arrives for a while.
            let mut trigger = first;
            loop {
                tokio::select! {
                    t = tokio::time::timeout(DEBOUNCE, rx.recv()) => match t {
                        Ok(Some(t)) => {
                            if t == Trigger::Signal {
                                trigger = Trigger::Signal;
                            }
                        }
                        Ok(None) | Err(_) => break,
                    },
                    _ = shutdown.cancelled() => return,
                }
            }
            self.reload(trigger).await;
        }
    }

    /// Starts watching the file's directory; events naming the file (or a Kubernetes `..data`
    /// swap) become [`Trigger::File`].
    fn watch(&self, tx: mpsc::Sender<Trigger>) -> Option<notify::RecommendedWatcher> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_os_string());
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else {
                return;
            };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let relevant = event.paths.is_empty()
                || event.paths.iter().any(|p| {
                    let file = p.file_name();
                    file == name.as_deref()
                        || file.is_some_and(|f| f.to_string_lossy().starts_with(".."))
                });
            if relevant {
                let _ = tx.try_send(Trigger::File);
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
                return None;
            }
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; reload with SIGHUP");
            return None;
        }
        tracing::info!(path = %self.path.display(), "watching the config file for changes (SIGHUP reloads too)");
        Some(watcher)
    }

    /// Reads, validates and applies the file once.
    async fn reload(&mut self, trigger: Trigger) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "config reload failed: cannot read the file; keeping the running config");
                return;
            }
        };
        if trigger == Trigger::File && self.text.as_deref() == Some(text.as_str()) {
            tracing::debug!("config file event without a change");
            return;
        }
        self.text = Some(text.clone());
        let loaded = match mcplane_config::parse(&text, &|name| std::env::var(name).ok()) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(path = %self.path.display(), "config reload failed, keeping the running config: {e}");
                return;
            }
        };
        for n in &loaded.notices {
            tracing::warn!(key = %n.path, "{}", n.message);
        }
        let mut new = loaded.config;
        if self.listen_overridden {
            new.server.listen = self.running.server.listen;
        }
        for key in restart_required(&self.running, &new) {
            tracing::warn!(
                key,
                "changed in the config file; restart mcplane to apply it (the running value stays)"
            );
        }
        let applied = self.virtual_servers.apply(&new.mcp.virtual_servers).await;
        tracing::info!(
            added = ?applied.added,
            updated = ?applied.updated.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            removed = ?applied.removed,
            "config reloaded"
        );
        for (name, notified) in &applied.updated {
            if !notified.is_empty() {
                tracing::info!(virtual_server = %name, ?notified, "virtual server sessions told their lists changed");
            }
        }
        // Only what was applied counts as running.
        self.running.mcp.virtual_servers = new.mcp.virtual_servers;
    }
}

/// The keys whose change needs a restart.
fn restart_required(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if running.server != new.server {
        keys.push("server");
    }
    if running.mcp.servers != new.mcp.servers {
        keys.push("mcp.servers");
    }
    if running.mcp.naming != new.mcp.naming {
        keys.push("mcp.naming");
    }
    if running.mcp.on_upstream_failure != new.mcp.on_upstream_failure {
        keys.push("mcp.on_upstream_failure");
    }
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(yaml: &str) -> Config {
        mcplane_config::parse(yaml, &|_| None).unwrap().config
    }

    #[test]
    fn only_in_place_changes_need_no_restart() {
        let base = "mcp:\n  servers:\n    a: { transport: stdio, command: x }\n";
        let running = config(base);
        let same = config(&format!(
            "{base}  virtual_servers:\n    v: {{ include: ['a/*'] }}\n"
        ));
        assert!(restart_required(&running, &same).is_empty());
        let more = config(&format!(
            "{base}    b: {{ transport: stdio, command: y }}\n  naming: {{ prefix: never }}\nserver: {{ listen: '127.0.0.1:1' }}\n"
        ));
        assert_eq!(
            restart_required(&running, &more),
            ["server", "mcp.servers", "mcp.naming"]
        );
    }
}
