//! Spend from the model-call records: totals grouped by model, principal or tenant level since a
//! time (`mcplane usage spend`), and one scope's spend since a time (how budgets rebuild their
//! counters after a restart).

use crate::{Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// What spend is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendBy {
    /// The model that served.
    Model,
    /// The caller.
    Principal,
    /// The caller's org.
    Org,
    /// The caller's team.
    Team,
    /// The caller's project.
    Project,
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendRow {
    /// The model, principal or tenant id (`-` when unknown).
    pub key: String,
    /// Calls.
    pub calls: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
}

/// Queries grouped by one column (a macro, so every query is a static string).
macro_rules! grouped {
    ($col:literal, $p:literal) => {
        concat!(
            "SELECT COALESCE(",
            $col,
            ", '-') AS k, COUNT(*) AS calls, ",
            "CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS pt, ",
            "CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS ct, ",
            "CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost ",
            "FROM model_calls WHERE recorded_at_ms >= ",
            $p,
            " GROUP BY k ORDER BY cost DESC, k"
        )
    };
}

/// One scope's spend (a macro, so every query is a static string).
macro_rules! scoped {
    ($col:literal, $p1:literal, $p2:literal) => {
        concat!(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost FROM model_calls WHERE ",
            $col,
            " = ",
            $p1,
            " AND recorded_at_ms >= ",
            $p2
        )
    };
}

fn grouped_sql(by: SpendBy, postgres: bool) -> &'static str {
    match (by, postgres) {
        (SpendBy::Model, false) => grouped!("model", "?"),
        (SpendBy::Principal, false) => grouped!("principal", "?"),
        (SpendBy::Org, false) => grouped!("org", "?"),
        (SpendBy::Team, false) => grouped!("team", "?"),
        (SpendBy::Project, false) => grouped!("project", "?"),
        (SpendBy::Model, true) => grouped!("model", "$1"),
        (SpendBy::Principal, true) => grouped!("principal", "$1"),
        (SpendBy::Org, true) => grouped!("org", "$1"),
        (SpendBy::Team, true) => grouped!("team", "$1"),
        (SpendBy::Project, true) => grouped!("project", "$1"),
    }
}

fn scoped_sql(kind: &str, postgres: bool) -> Option<&'static str> {
    Some(match (kind, postgres) {
        ("user", false) => scoped!("principal", "?", "?"),
        ("org", false) => scoped!("org", "?", "?"),
        ("team", false) => scoped!("team", "?", "?"),
        ("project", false) => scoped!("project", "?", "?"),
        ("user", true) => scoped!("principal", "$1", "$2"),
        ("org", true) => scoped!("org", "$1", "$2"),
        ("team", true) => scoped!("team", "$1", "$2"),
        ("project", true) => scoped!("project", "$1", "$2"),
        _ => return None,
    })
}

impl Store {
    /// Totals since `since_ms`, grouped `by`, most expensive first.
    pub async fn spend(&self, by: SpendBy, since_ms: i64) -> Result<Vec<SpendRow>, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        let rows = match self {
            Store::Sqlite(p) => sqlx::query(grouped_sql(by, false))
                .bind(since_ms)
                .fetch_all(p)
                .await
                .map_err(failed)?
                .into_iter()
                .map(|r| row(&r))
                .collect::<Result<Vec<_>, _>>()?,
            Store::Postgres(p) => sqlx::query(grouped_sql(by, true))
                .bind(since_ms)
                .fetch_all(p)
                .await
                .map_err(failed)?
                .into_iter()
                .map(|r| row(&r))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    /// What scope `kind:id` (`user`, `project`, `team`, `org`) spent since `since_ms`, in
    /// micro-dollars (0 for an unknown kind).
    pub async fn spent_since(
        &self,
        kind: &str,
        id: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
        let sum = match self {
            Store::Sqlite(p) => match scoped_sql(kind, false) {
                Some(sql) => sqlx::query(sql)
                    .bind(id)
                    .bind(since_ms)
                    .fetch_one(p)
                    .await
                    .map_err(failed)?
                    .try_get::<i64, _>("cost")
                    .map_err(failed)?,
                None => 0,
            },
            Store::Postgres(p) => match scoped_sql(kind, true) {
                Some(sql) => sqlx::query(sql)
                    .bind(id)
                    .bind(since_ms)
                    .fetch_one(p)
                    .await
                    .map_err(failed)?
                    .try_get::<i64, _>("cost")
                    .map_err(failed)?,
                None => 0,
            },
        };
        Ok(sum)
    }
}

fn row<R: Row>(r: &R) -> Result<SpendRow, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let failed = |e: sqlx::Error| StoreError::Query(e.to_string());
    Ok(SpendRow {
        key: r.try_get("k").map_err(failed)?,
        calls: r.try_get("calls").map_err(failed)?,
        prompt_tokens: r.try_get("pt").map_err(failed)?,
        completion_tokens: r.try_get("ct").map_err(failed)?,
        cost_micros: r.try_get("cost").map_err(failed)?,
    })
}
