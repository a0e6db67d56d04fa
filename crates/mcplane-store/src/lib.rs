//! mcplane's persistence: one [`Store`] over SQLite (embedded, the default) or PostgreSQL (for
//! replicas), both through sqlx, each with its own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`) that give the same tables the same meaning.
//!
//! Today it holds the model-call records ([`mcplane_core::calls::RequestRecord`]): written off
//! the request path by a [`CallWriter`] (a bounded buffer and a background writer that batches
//! them into transactions) and read back by [`Store::recent_calls`] (`mcplane usage recent`).
//! It also holds the API keys (hashes only; [`Store::active_keys`] is the authenticator's
//! snapshot). Tenants, budget ledgers and the audit trail join with their issues, as further
//! migrations.

mod keys;
mod spend;
mod writer;

pub use keys::KeyRow;
pub use spend::{SpendBy, SpendRow};
pub use writer::{CallWriter, WriterStats};

use mcplane_core::calls::RequestRecord;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one the store speaks.
    #[error("store URL must start with sqlite:, postgres: or postgresql: (got {0:?})")]
    Scheme(String),
    /// The database could not be opened or reached.
    #[error("cannot open the store ({what}): {reason}")]
    Open {
        /// Which database (no credentials).
        what: String,
        /// Why.
        reason: String,
    },
    /// A migration failed.
    #[error("cannot migrate the store: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(String),
}

/// The database behind the store.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite (WAL), one file.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A model call as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredCall {
    /// When it was recorded (milliseconds since the Unix epoch).
    pub recorded_at_ms: i64,
    /// `x-request-id`.
    pub request_id: String,
    /// Who called.
    pub principal: Option<String>,
    /// The caller's org.
    pub org: Option<String>,
    /// The caller's team.
    pub team: Option<String>,
    /// The caller's project.
    pub project: Option<String>,
    /// The front door.
    pub front_door: String,
    /// The model or alias asked for.
    pub requested: String,
    /// The model that served (or last failed).
    pub model: Option<String>,
    /// The endpoint.
    pub endpoint: Option<String>,
    /// Streamed or not.
    pub stream: bool,
    /// HTTP status sent.
    pub status: i64,
    /// `ok`, `error`, `stream_error`, `client_closed`.
    pub outcome: String,
    /// The error, if any.
    pub error: Option<String>,
    /// Arrival to end.
    pub latency_ms: i64,
    /// Arrival to first byte.
    pub ttft_ms: Option<i64>,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// `reported` or `estimated`.
    pub usage_source: String,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
    /// Why this model.
    pub route_reason: String,
    /// Upstream attempts.
    pub attempts: i64,
}

/// Where a URL points, without credentials (for errors and logs).
fn describe(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => url.to_string(),
    }
}

const INSERT_SQLITE: &str = "INSERT INTO model_calls (recorded_at_ms, request_id, principal, \
    front_door, requested, model, endpoint, stream, status, outcome, error, latency_ms, ttft_ms, \
    prompt_tokens, completion_tokens, usage_source, cost_micros, route_reason, attempts, org, team, \
    project) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_POSTGRES: &str = "INSERT INTO model_calls (recorded_at_ms, request_id, principal, \
    front_door, requested, model, endpoint, stream, status, outcome, error, latency_ms, ttft_ms, \
    prompt_tokens, completion_tokens, usage_source, cost_micros, route_reason, attempts, org, team, \
    project) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
    $18, $19, $20, $21, $22)";
/// The columns of a [`StoredCall`] (a macro, so the queries stay static strings).
macro_rules! select_calls {
    () => {
        "SELECT recorded_at_ms, request_id, principal, org, team, project, front_door, requested, \
         model, endpoint, stream, status, outcome, error, latency_ms, ttft_ms, prompt_tokens, \
         completion_tokens, usage_source, cost_micros, route_reason, attempts FROM model_calls"
    };
}
const RECENT_SQLITE: &str = concat!(select_calls!(), " ORDER BY id DESC LIMIT ?");
const RECENT_MODEL_SQLITE: &str =
    concat!(select_calls!(), " WHERE model = ? ORDER BY id DESC LIMIT ?");
const RECENT_POSTGRES: &str = concat!(select_calls!(), " ORDER BY id DESC LIMIT $1");
const RECENT_MODEL_POSTGRES: &str = concat!(
    select_calls!(),
    " WHERE model = $1 ORDER BY id DESC LIMIT $2"
);

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

macro_rules! bind_record {
    ($q:expr, $at:expr, $r:expr) => {
        $q.bind($at)
            .bind(&$r.request_id)
            .bind(&$r.principal)
            .bind($r.front_door)
            .bind(&$r.requested)
            .bind(&$r.model)
            .bind(&$r.endpoint)
            .bind($r.stream)
            .bind(i32::from($r.status))
            .bind($r.outcome.as_str())
            .bind(&$r.error)
            .bind(to_i64($r.latency_ms))
            .bind($r.ttft_ms.map(to_i64))
            .bind(to_i64($r.prompt_tokens))
            .bind(to_i64($r.completion_tokens))
            .bind($r.usage_source)
            .bind($r.cost_micros)
            .bind(&$r.route_reason)
            .bind(i32::try_from($r.attempts).unwrap_or(i32::MAX))
            .bind(&$r.tenancy.org)
            .bind(&$r.tenancy.team)
            .bind(&$r.tenancy.project)
    };
}

macro_rules! stored_call {
    ($row:expr) => {{
        let row = $row;
        let get_err = |e: sqlx::Error| StoreError::Query(e.to_string());
        StoredCall {
            recorded_at_ms: row.try_get("recorded_at_ms").map_err(get_err)?,
            request_id: row.try_get("request_id").map_err(get_err)?,
            principal: row.try_get("principal").map_err(get_err)?,
            org: row.try_get("org").map_err(get_err)?,
            team: row.try_get("team").map_err(get_err)?,
            project: row.try_get("project").map_err(get_err)?,
            front_door: row.try_get("front_door").map_err(get_err)?,
            requested: row.try_get("requested").map_err(get_err)?,
            model: row.try_get("model").map_err(get_err)?,
            endpoint: row.try_get("endpoint").map_err(get_err)?,
            stream: row.try_get("stream").map_err(get_err)?,
            status: i64::from(row.try_get::<i32, _>("status").map_err(get_err)?),
            outcome: row.try_get("outcome").map_err(get_err)?,
            error: row.try_get("error").map_err(get_err)?,
            latency_ms: row.try_get("latency_ms").map_err(get_err)?,
            ttft_ms: row.try_get("ttft_ms").map_err(get_err)?,
            prompt_tokens: row.try_get("prompt_tokens").map_err(get_err)?,
            completion_tokens: row.try_get("completion_tokens").map_err(get_err)?,
            usage_source: row.try_get("usage_source").map_err(get_err)?,
            cost_micros: row.try_get("cost_micros").map_err(get_err)?,
            route_reason: row.try_get("route_reason").map_err(get_err)?,
            attempts: i64::from(row.try_get::<i32, _>("attempts").map_err(get_err)?),
        }
    }};
}

impl Store {
    /// Opens the store at `url` (`sqlite://path` — created if missing —, `sqlite::memory:`,
    /// `postgres://…`) with the default pool size and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, 8).await
    }

    /// [`Store::open`] with at most `max_connections` pooled PostgreSQL connections (SQLite
    /// keeps at most 4: it has one writer at a time anyway).
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let what = describe(url);
        let open = |e: sqlx::Error| StoreError::Open {
            what: what.clone(),
            reason: e.to_string(),
        };
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(open)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            let in_memory = url.contains(":memory:");
            let pool = SqlitePoolOptions::new()
                // One writer at a time is what SQLite allows; an in-memory database must keep
                // its one connection.
                .max_connections(if in_memory { 1 } else { 4 })
                .min_connections(u32::from(in_memory))
                .idle_timeout(if in_memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if in_memory {
                    None
                } else {
                    Some(Duration::from_secs(3600))
                })
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(open)?;
            Store::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(open)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(open)?;
            Store::Postgres(pool)
        } else {
            return Err(StoreError::Scheme(what));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let failed = |e: sqlx::migrate::MigrateError| StoreError::Migrate(e.to_string());
        match self {
            Store::Sqlite(p) => sqlx::migrate!("migrations/sqlite")
                .run(p)
                .await
                .map_err(failed),
            Store::Postgres(p) => sqlx::migrate!("migrations/postgres")
                .run(p)
                .await
                .map_err(failed),
        }
    }

    /// Inserts `records` (recorded at `at_ms`) in one transaction.
    pub async fn insert_calls(&self, records: &[(i64, RequestRecord)]) -> Result<(), StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        match self {
            Store::Sqlite(p) => {
                let mut tx = p.begin().await.map_err(failed)?;
                for (at, r) in records {
                    bind_record!(sqlx::query(INSERT_SQLITE), *at, r)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                }
                tx.commit().await.map_err(failed)
            }
            Store::Postgres(p) => {
                let mut tx = p.begin().await.map_err(failed)?;
                for (at, r) in records {
                    bind_record!(sqlx::query(INSERT_POSTGRES), *at, r)
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                }
                tx.commit().await.map_err(failed)
            }
        }
    }

    /// The latest `limit` calls, newest first, optionally of one model only.
    pub async fn recent_calls(
        &self,
        limit: u32,
        model: Option<&str>,
    ) -> Result<Vec<StoredCall>, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        let limit = i64::from(limit);
        let mut out = Vec::new();
        match self {
            Store::Sqlite(p) => {
                let mut q = sqlx::query(if model.is_some() {
                    RECENT_MODEL_SQLITE
                } else {
                    RECENT_SQLITE
                });
                if let Some(m) = model {
                    q = q.bind(m);
                }
                for row in q.bind(limit).fetch_all(p).await.map_err(failed)? {
                    out.push(stored_call!(row));
                }
            }
            Store::Postgres(p) => {
                let mut q = sqlx::query(if model.is_some() {
                    RECENT_MODEL_POSTGRES
                } else {
                    RECENT_POSTGRES
                });
                if let Some(m) = model {
                    q = q.bind(m);
                }
                for row in q.bind(limit).fetch_all(p).await.map_err(failed)? {
                    out.push(stored_call!(row));
                }
            }
        }
        Ok(out)
    }

    /// Closes every connection (after the writer has drained).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn descriptions_never_carry_credentials() {
        assert_eq!(
            describe("postgres://app:hunter2@db.internal:5432/mcplane"),
            "postgres://db.internal:5432/mcplane"
        );
        assert_eq!(describe("sqlite://mcplane.db"), "sqlite://mcplane.db");
    }
}
