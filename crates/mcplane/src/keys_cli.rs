//! `mcplane keys create|list|revoke`: API keys in the store `store.url` names. A new key is
//! printed once and only its hash is kept; a running gateway picks up new and revoked keys
//! within [`crate::runtime::KEY_REFRESH`].

use clap::{Args, Subcommand};
use mcplane_store::{KeyRow, Store};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// The key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Issues a key and prints it once.
    Create(Box<Create>),
    /// Lists keys (never their secrets).
    List(Target),
    /// Revokes a key by id (effective on running gateways within seconds).
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The key's id (the part after `mcp_`, as `keys list` shows it).
        id: String,
    },
}

/// Which store, and how to print.
#[derive(Args)]
pub struct Target {
    /// Config file whose `store.url` holds the keys (without one: `mcplane.db` here).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `mcplane keys create`.
#[derive(Args)]
pub struct Create {
    #[command(flatten)]
    target: Target,
    /// What the key is for (shown in lists).
    #[arg(long)]
    name: String,
    /// The principal it authenticates as (a user or service account id).
    #[arg(long)]
    principal: String,
    /// What kind of principal.
    #[arg(long, default_value = "service", value_parser = ["user", "service", "agent"])]
    kind: String,
    /// Its org.
    #[arg(long)]
    org: Option<String>,
    /// Its team.
    #[arg(long)]
    team: Option<String>,
    /// Its project.
    #[arg(long)]
    project: Option<String>,
    /// A role (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Expires after this long (`30d`, `12h`).
    #[arg(long)]
    expires_in: Option<String>,
    /// A model or alias it may call (repeatable; none: any the policies allow).
    #[arg(long = "model")]
    models: Vec<String>,
    /// A tool it may call, `SERVER/TOOL`, `*` globs allowed (repeatable; none: any).
    #[arg(long = "tool")]
    tools: Vec<String>,
}

async fn open(target: &Target) -> anyhow::Result<Result<Store, ExitCode>> {
    let loaded = match &target.config {
        Some(p) => match mcplane_config::load(p) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                return Ok(Err(ExitCode::from(2)));
            }
        },
        None => mcplane_config::parse("", &|_| None)?,
    };
    match Store::open(loaded.config.store.url.expose()).await {
        Ok(s) => Ok(Ok(s)),
        Err(e) => {
            eprintln!("mcplane: store.url: {e}");
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

impl KeysCommand {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let mut out = std::io::stdout().lock();
        match self {
            KeysCommand::Create(c) => {
                let expires_at_ms = match &c.expires_in {
                    None => None,
                    Some(text) => {
                        let d: mcplane_config::HumanDuration =
                            serde_json::from_value(serde_json::json!(text)).map_err(|e| {
                                anyhow::anyhow!("--expires-in {text:?}: {e} (e.g. 30d, 12h)")
                            })?;
                        Some(
                            mcplane_types::clock::now_ms()
                                .saturating_add(i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)),
                        )
                    }
                };
                let store = match open(&c.target).await? {
                    Ok(s) => s,
                    Err(code) => return Ok(code),
                };
                let new = mcplane_core::keys::generate();
                let row = KeyRow {
                    id: new.id.clone(),
                    name: c.name,
                    principal: c.principal,
                    kind: c.kind,
                    org: c.org,
                    team: c.team,
                    project: c.project,
                    roles: c.roles,
                    models: (!c.models.is_empty()).then_some(c.models),
                    tools: (!c.tools.is_empty()).then_some(c.tools),
                    created_at_ms: mcplane_types::clock::now_ms(),
                    expires_at_ms,
                    revoked_at_ms: None,
                };
                store.insert_key(&row, &new.hash_hex).await?;
                store.close().await;
                if c.target.json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"key": new.token, "id": new.id})
                        )?
                    )?;
                } else {
                    writeln!(out, "{}", new.token)?;
                    eprintln!(
                        "key {} created; it is shown only now: store it in a secret manager",
                        new.id
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::List(t) => {
                let store = match open(&t).await? {
                    Ok(s) => s,
                    Err(code) => return Ok(code),
                };
                let keys = store.list_keys().await?;
                store.close().await;
                if t.json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&keys)?)?;
                    return Ok(ExitCode::SUCCESS);
                }
                if keys.is_empty() {
                    writeln!(out, "no API keys (create one with `mcplane keys create`)")?;
                    return Ok(ExitCode::SUCCESS);
                }
                let now = mcplane_types::clock::now_ms();
                writeln!(
                    out,
                    "{:<12} {:<20} {:<16} {:<8} {:<24} STATE",
                    "ID", "NAME", "PRINCIPAL", "KIND", "TENANT"
                )?;
                for k in keys {
                    let tenant = [k.org.as_deref(), k.team.as_deref(), k.project.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("/");
                    let state = if k.revoked_at_ms.is_some() {
                        "revoked"
                    } else if k.expires_at_ms.is_some_and(|e| e <= now) {
                        "expired"
                    } else {
                        "active"
                    };
                    writeln!(
                        out,
                        "{:<12} {:<20} {:<16} {:<8} {:<24} {state}",
                        k.id, k.name, k.principal, k.kind, tenant
                    )?;
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Revoke { target, id } => {
                let store = match open(&target).await? {
                    Ok(s) => s,
                    Err(code) => return Ok(code),
                };
                let done = store
                    .revoke_key(&id, mcplane_types::clock::now_ms())
                    .await?;
                store.close().await;
                if done {
                    eprintln!("key {id} revoked");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("mcplane: no active key {id:?} (see `mcplane keys list`)");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
