//! API keys in the store: created (hash only), listed (never the hash), revoked, and loaded as
//! the authenticator's snapshot ([`Store::active_keys`]: neither revoked nor expired).

use crate::{Store, StoreError};
use mcplane_core::keys::{ApiKey, KeyScope, hash_from_hex};
use mcplane_types::{AuthMethod, Principal, PrincipalKind, Tenancy};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// A key as listed (the hash stays in the database).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRow {
    /// Public id (`mcp_<id>_…`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The principal it authenticates as.
    pub principal: String,
    /// `user`, `service` or `agent`.
    pub kind: String,
    /// Tenant levels.
    pub org: Option<String>,
    /// Team.
    pub team: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Models it may call (`None`: any the policy allows).
    pub models: Option<Vec<String>>,
    /// Tools (`SERVER/TOOL` globs) it may call (`None`: any the policy allows).
    pub tools: Option<Vec<String>>,
    /// Creation time (ms since the epoch).
    pub created_at_ms: i64,
    /// Expiry, if any.
    pub expires_at_ms: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

fn kind_of(s: &str) -> PrincipalKind {
    match s {
        "service" => PrincipalKind::Service,
        "agent" => PrincipalKind::Agent,
        _ => PrincipalKind::User,
    }
}

fn json_list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".into()))
}

fn parse_list(v: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    v.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Query(format!("bad list: {e}"))))
        .transpose()
}

const INSERT_SQLITE: &str = "INSERT INTO api_keys (id, hash, name, principal, kind, org, team, \
    project, roles, models, tools, created_at_ms, expires_at_ms, revoked_at_ms) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)";
const INSERT_POSTGRES: &str = "INSERT INTO api_keys (id, hash, name, principal, kind, org, team, \
    project, roles, models, tools, created_at_ms, expires_at_ms, revoked_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL)";
const LIST: &str = "SELECT id, hash, name, principal, kind, org, team, project, roles, models, \
    tools, created_at_ms, expires_at_ms, revoked_at_ms FROM api_keys ORDER BY created_at_ms, id";
const REVOKE_SQLITE: &str =
    "UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL";
const REVOKE_POSTGRES: &str =
    "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL";

macro_rules! bind_key {
    ($q:expr, $k:expr, $hash:expr) => {
        $q.bind(&$k.id)
            .bind($hash)
            .bind(&$k.name)
            .bind(&$k.principal)
            .bind(&$k.kind)
            .bind(&$k.org)
            .bind(&$k.team)
            .bind(&$k.project)
            .bind(serde_json::to_string(&$k.roles).unwrap_or_else(|_| "[]".into()))
            .bind(json_list(&$k.models))
            .bind(json_list(&$k.tools))
            .bind($k.created_at_ms)
            .bind($k.expires_at_ms)
    };
}

macro_rules! key_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e: sqlx::Error| StoreError::Query(e.to_string());
        let roles: String = row.try_get("roles").map_err(get)?;
        let hash: String = row.try_get("hash").map_err(get)?;
        (
            KeyRow {
                id: row.try_get("id").map_err(get)?,
                name: row.try_get("name").map_err(get)?,
                principal: row.try_get("principal").map_err(get)?,
                kind: row.try_get("kind").map_err(get)?,
                org: row.try_get("org").map_err(get)?,
                team: row.try_get("team").map_err(get)?,
                project: row.try_get("project").map_err(get)?,
                roles: serde_json::from_str(&roles)
                    .map_err(|e| StoreError::Query(format!("bad roles: {e}")))?,
                models: parse_list(row.try_get("models").map_err(get)?)?,
                tools: parse_list(row.try_get("tools").map_err(get)?)?,
                created_at_ms: row.try_get("created_at_ms").map_err(get)?,
                expires_at_ms: row.try_get("expires_at_ms").map_err(get)?,
                revoked_at_ms: row.try_get("revoked_at_ms").map_err(get)?,
            },
            hash,
        )
    }};
}

impl KeyRow {
    fn api_key(&self, hash_hex: &str) -> Option<ApiKey> {
        Some(ApiKey {
            id: self.id.clone(),
            hash: hash_from_hex(hash_hex)?,
            principal: Principal {
                id: self.principal.clone(),
                kind: kind_of(&self.kind),
                tenancy: Tenancy {
                    org: self.org.clone(),
                    team: self.team.clone(),
                    project: self.project.clone(),
                },
                roles: self.roles.iter().cloned().collect(),
                attributes: BTreeMap::new(),
                auth: AuthMethod::ApiKey {
                    key_id: self.id.clone(),
                },
            },
            expires_at_ms: self.expires_at_ms,
            scope: KeyScope {
                models: self.models.clone(),
                tools: self.tools.clone(),
            },
        })
    }
}

impl Store {
    /// Stores a new key (its secret's SHA-256 as hex; the secret itself is never stored).
    pub async fn insert_key(&self, key: &KeyRow, hash_hex: &str) -> Result<(), StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        match self {
            Store::Sqlite(p) => {
                bind_key!(sqlx::query(INSERT_SQLITE), key, hash_hex)
                    .execute(p)
                    .await
                    .map_err(failed)?;
            }
            Store::Postgres(p) => {
                bind_key!(sqlx::query(INSERT_POSTGRES), key, hash_hex)
                    .execute(p)
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    async fn key_rows(&self) -> Result<Vec<(KeyRow, String)>, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        let mut out = Vec::new();
        match self {
            Store::Sqlite(p) => {
                for row in sqlx::query(LIST).fetch_all(p).await.map_err(failed)? {
                    out.push(key_row!(row));
                }
            }
            Store::Postgres(p) => {
                for row in sqlx::query(LIST).fetch_all(p).await.map_err(failed)? {
                    out.push(key_row!(row));
                }
            }
        }
        Ok(out)
    }

    /// Every key, oldest first (revoked and expired ones included, marked).
    pub async fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        Ok(self.key_rows().await?.into_iter().map(|(k, _)| k).collect())
    }

    /// Revokes key `id` at `at_ms`; `false` when there is no such unrevoked key.
    pub async fn revoke_key(&self, id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        let done = match self {
            Store::Sqlite(p) => sqlx::query(REVOKE_SQLITE)
                .bind(at_ms)
                .bind(id)
                .execute(p)
                .await
                .map_err(failed)?
                .rows_affected(),
            Store::Postgres(p) => sqlx::query(REVOKE_POSTGRES)
                .bind(at_ms)
                .bind(id)
                .execute(p)
                .await
                .map_err(failed)?
                .rows_affected(),
        };
        Ok(done == 1)
    }

    /// The keys the authenticator should accept at `now_ms`: not revoked, not expired.
    pub async fn active_keys(&self, now_ms: i64) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .key_rows()
            .await?
            .into_iter()
            .filter(|(k, _)| {
                k.revoked_at_ms.is_none() && k.expires_at_ms.is_none_or(|e| e > now_ms)
            })
            .filter_map(|(k, hash)| k.api_key(&hash))
            .collect())
    }
}
