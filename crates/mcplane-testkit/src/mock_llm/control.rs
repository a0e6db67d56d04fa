//! The control API, for tests and benchmarks that run the mock as a process. No key needed.
//!
//! | route | effect |
//! |---|---|
//! | `GET /__mock/faults` | the rules with `seen`, `applied`, `remaining` |
//! | `POST /__mock/faults` | replace the rules: a [`Fault`] object, an array, or `{"faults": [...]}` |
//! | `POST /__mock/faults/append` | add rules after the existing ones (same body forms) |
//! | `DELETE /__mock/faults` | remove every rule |
//! | `GET /__mock/requests[?since=SEQ]` | `{"count": N, "requests": [...]}` (see [`RecordedRequest::to_json`]) |
//! | `DELETE /__mock/requests` | forget the log and reset the count |
//! | `POST /__mock/reset` | both |
//! | `GET /__mock/health` | `ok` |
//!
//! [`RecordedRequest::to_json`]: super::RecordedRequest::to_json

use super::fault::Fault;
use super::server::Shared;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::sync::Arc;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/__mock/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/__mock/faults/append", post(append_faults))
        .route("/__mock/requests", get(get_requests).delete(clear_requests))
        .route("/__mock/reset", post(reset))
        .route("/__mock/health", get(|| async { "ok" }))
}

/// The accepted bodies of `POST /__mock/faults`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FaultsBody {
    List(Vec<Fault>),
    Wrapped { faults: Vec<Fault> },
    One(Box<Fault>),
}

fn parse(body: &[u8]) -> Result<Vec<Fault>, Response> {
    if let Ok(parsed) = serde_json::from_slice::<FaultsBody>(body) {
        return Ok(match parsed {
            FaultsBody::List(f) | FaultsBody::Wrapped { faults: f } => f,
            FaultsBody::One(f) => vec![*f],
        });
    }
    // Say what is wrong with it as a single rule or as a list.
    let detail = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(_)) => serde_json::from_slice::<Vec<Fault>>(body).err(),
        Ok(_) => serde_json::from_slice::<Fault>(body).err(),
        Err(e) => Some(e),
    };
    let message = detail.map_or_else(|| "invalid fault rules".to_owned(), |e| e.to_string());
    Err((
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response())
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    Json(s.faults.snapshot()).into_response()
}

async fn set_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(faults) => {
            s.faults.set(faults);
            Json(s.faults.snapshot()).into_response()
        }
        Err(r) => r,
    }
}

async fn append_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse(&body) {
        Ok(faults) => {
            for f in faults {
                s.faults.push(f);
            }
            Json(s.faults.snapshot()).into_response()
        }
        Err(r) => r,
    }
}

async fn clear_faults(State(s): State<Arc<Shared>>) -> StatusCode {
    s.faults.set(Vec::new());
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn get_requests(State(s): State<Arc<Shared>>, Query(q): Query<Since>) -> Response {
    let requests: Vec<serde_json::Value> =
        s.log.since(q.since).iter().map(|r| r.to_json()).collect();
    Json(serde_json::json!({ "count": s.log.total(), "requests": requests })).into_response()
}

async fn clear_requests(State(s): State<Arc<Shared>>) -> StatusCode {
    s.log.clear();
    StatusCode::NO_CONTENT
}

async fn reset(State(s): State<Arc<Shared>>) -> StatusCode {
    s.log.clear();
    s.faults.set(Vec::new());
    StatusCode::NO_CONTENT
}
