//! Sending one attempt to a provider and walking a plan's steps with retries and fallback.

use super::stream::{PumpError, StreamState};
use super::{Attempt, Dispatcher, Failure, Ledger, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES, summary};
use crate::chat::ChatResponse;
use crate::embeddings::{EmbeddingsRequest, EmbeddingsResponse};
use crate::error::{decode_error_body, kind_of_status};
use crate::health::Permit;
use crate::provider::{Prepared, UpstreamRequest, retry_after};
use crate::registry::{Endpoint, Model};
use crate::router::{Plan, Step};
use crate::sse::SseDecoder;
use crate::stream::{EncodeOptions, StreamTranslator};
use crate::{ChatRequest, Format, LlmError, codec, gemini, openai};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use mcplane_config::RetryConfig;
use mcplane_types::ErrorKind;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Retry,
    Fallback,
    Stop,
}

#[derive(Debug, Clone)]
pub(super) struct AttemptError {
    kind: ErrorKind,
    status: Option<u16>,
    message: String,
    retry_after: Option<Duration>,
    next: Next,
    /// Whether it counts against the endpoint's health.
    counts: bool,
}

impl AttemptError {
    fn of_kind(kind: ErrorKind, message: impl Into<String>) -> AttemptError {
        let next = match kind {
            ErrorKind::RateLimited
            | ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout => Next::Retry,
            ErrorKind::InvalidRequest => Next::Stop,
            _ => Next::Fallback,
        };
        AttemptError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
            next,
            counts: next != Next::Stop,
        }
    }

    fn timeout(message: impl Into<String>) -> AttemptError {
        AttemptError::of_kind(ErrorKind::UpstreamTimeout, message)
    }

    fn status(
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        kind: ErrorKind,
    ) -> AttemptError {
        let next = match status {
            408 | 429 | 500..=599 => Next::Retry,
            400 | 413 | 422 => Next::Stop,
            _ => Next::Fallback,
        };
        AttemptError {
            kind,
            status: Some(status),
            message,
            retry_after,
            next,
            counts: next != Next::Stop,
        }
    }

    /// A decoding or stream error from this crate.
    fn llm(e: &LlmError) -> AttemptError {
        let message = match e {
            LlmError::Upstream { message, .. } => message.clone(),
            other => other.to_string(),
        };
        match e.kind() {
            // A request the provider's format cannot express: the next candidate may.
            ErrorKind::InvalidRequest => AttemptError {
                next: Next::Fallback,
                counts: false,
                ..AttemptError::of_kind(ErrorKind::InvalidRequest, message)
            },
            kind => AttemptError::of_kind(kind, message),
        }
    }
}

impl Dispatcher {
    /// Walks the plan: every step, with retries, until one succeeds.
    pub(super) async fn run(
        &self,
        plan: &Plan,
        mut job: Job<'_>,
        ledger: &mut Ledger,
    ) -> Result<Done, Failure> {
        let mut attempts: Vec<Attempt> = Vec::new();
        let max_attempts = self.retry.max_attempts.max(1);
        for step in &plan.steps {
            let model = self.registry.model_at(step.model);
            let endpoint = &model.endpoints[step.endpoint];
            let prepared = &self.prepared[step.slot];
            ledger.rec.model = Some(model.id.clone());
            ledger.rec.endpoint = Some(endpoint.label.clone());
            let upstream = match job.request(model, prepared) {
                Ok(u) => u,
                Err(e) => {
                    let err = AttemptError::llm(&e);
                    attempts.push(attempt(model, endpoint, &err, Duration::ZERO));
                    continue;
                }
            };
            for n in 1..=max_attempts {
                let permit = match self.health.acquire(step.slot, Instant::now()) {
                    Ok(p) => p,
                    Err(refused) => {
                        let err = AttemptError {
                            counts: false,
                            next: Next::Fallback,
                            ..AttemptError::of_kind(
                                ErrorKind::UpstreamUnavailable,
                                if refused.retry_in.is_zero() {
                                    "circuit half-open: a trial call is in flight".to_string()
                                } else {
                                    format!(
                                        "circuit open (next trial in {} ms)",
                                        refused.retry_in.as_millis()
                                    )
                                },
                            )
                        };
                        attempts.push(attempt(model, endpoint, &err, Duration::ZERO));
                        break;
                    }
                };
                let started = Instant::now();
                let deadline = tokio::time::Instant::now() + self.timeouts.request;
                match self.attempt(model, &upstream, &job, deadline).await {
                    Ok(got) => {
                        let permit = if matches!(got, Got::Stream(_)) {
                            Some(permit)
                        } else {
                            permit.success(started.elapsed());
                            None
                        };
                        if !attempts.is_empty() {
                            tracing::info!(
                                target: "mcplane::llm::route",
                                request_id = %ledger.rec.request_id,
                                served_by = %endpoint.label,
                                failed_attempts = attempts.len(),
                                "served after fallback or retry"
                            );
                        }
                        return Ok(Done {
                            step: *step,
                            got,
                            permit,
                            attempts,
                            deadline,
                        });
                    }
                    Err(err) => {
                        tracing::debug!(
                            target: "mcplane::llm::route",
                            request_id = %ledger.rec.request_id,
                            endpoint = %endpoint.label,
                            attempt = n,
                            status = err.status,
                            error = %err.message,
                            "upstream attempt failed"
                        );
                        attempts.push(attempt(model, endpoint, &err, started.elapsed()));
                        if err.counts {
                            permit.failure();
                        } else {
                            drop(permit);
                        }
                        match err.next {
                            Next::Stop => {
                                let mut f = Failure::new(
                                    err.kind,
                                    format!(
                                        "{} ({}) rejected the request: {}",
                                        model.id, endpoint.label, err.message
                                    ),
                                );
                                f.status = err.status.unwrap_or(f.status);
                                f.model = Some(model.id.clone());
                                f.reason = Some(plan.reason.clone());
                                f.attempts = attempts;
                                return Err(ledger.fail(f));
                            }
                            Next::Fallback => break,
                            Next::Retry => {
                                if n == max_attempts {
                                    break;
                                }
                                match backoff(&self.retry, n, err.retry_after) {
                                    Some(wait) => tokio::time::sleep(wait).await,
                                    None => break,
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut f = if attempts.iter().all(|a| a.kind == ErrorKind::InvalidRequest) {
            Failure::invalid(format!(
                "no candidate can take this request: {}",
                summary(&attempts)
            ))
        } else {
            Failure::new(
                ErrorKind::UpstreamUnavailable,
                format!(
                    "every upstream attempt failed ({} attempt(s)): {}",
                    attempts.len(),
                    summary(&attempts)
                ),
            )
        };
        f.reason = Some(plan.reason.clone());
        f.attempts = attempts;
        Err(ledger.fail(f))
    }

    /// One attempt.
    async fn attempt(
        &self,
        model: &Model,
        upstream: &UpstreamRequest,
        job: &Job<'_>,
        deadline: tokio::time::Instant,
    ) -> Result<Got, AttemptError> {
        match job {
            Job::Chat { stream: false, .. } => {
                let raw = self.send_json(upstream, deadline).await?;
                let resp = codec::decode_response(model.format, &raw)
                    .map_err(|e| AttemptError::llm(&e))?;
                Ok(Got::Chat(raw, resp))
            }
            Job::Chat {
                stream: true,
                client,
                options,
                ..
            } => {
                let first = deadline.min(tokio::time::Instant::now() + self.timeouts.first_token);
                let resp = self.send(upstream, first).await?;
                let resp = self.check(resp, deadline).await?;
                let is_sse = resp
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_none_or(|ct| ct.contains("text/event-stream"));
                if !is_sse {
                    return Err(AttemptError::of_kind(
                        ErrorKind::UpstreamProtocol,
                        "asked for a stream, got a response that is not text/event-stream",
                    ));
                }
                let mut state = StreamState {
                    body: resp.bytes_stream().boxed(),
                    sse: SseDecoder::default(),
                    events: Vec::new(),
                    translator: StreamTranslator::new(model.format, *client, options.clone()),
                    pending: VecDeque::new(),
                    done: false,
                    failed: None,
                };
                while state.pending.is_empty() && !state.done {
                    state.pump(first).await.map_err(|e| match e {
                        PumpError::Timeout => AttemptError::timeout(format!(
                            "no stream event within the first-token limit ({} ms)",
                            self.timeouts.first_token.as_millis()
                        )),
                        PumpError::Llm(e) => AttemptError::llm(&e),
                    })?;
                }
                Ok(Got::Stream(Box::new(state)))
            }
            Job::Embeddings { .. } => {
                let raw = self.send_json(upstream, deadline).await?;
                let resp = match model.format {
                    Format::Gemini => gemini::decode_embeddings_response(&raw),
                    _ => openai::decode_embeddings_response(&raw),
                }
                .map_err(|e| AttemptError::llm(&e))?;
                Ok(Got::Embeddings(raw, resp))
            }
        }
    }

    /// Sends and waits for the response headers until `deadline`.
    async fn send(
        &self,
        up: &UpstreamRequest,
        deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let fut = self
            .client
            .post(&up.url)
            .headers(up.headers.clone())
            .body(up.body.clone())
            .send();
        match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => Err(AttemptError::timeout("no response headers in time")),
            Ok(Err(e)) => Err(AttemptError::of_kind(
                if e.is_timeout() {
                    ErrorKind::UpstreamTimeout
                } else {
                    ErrorKind::UpstreamUnavailable
                },
                describe(&e),
            )),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Passes a success status; turns any other into the provider's error.
    async fn check(
        &self,
        resp: reqwest::Response,
        deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let after = retry_after(resp.headers());
        // The error body is small; give it a few seconds at most.
        let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
        let body = read_body(resp, until, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let provider = decode_error_body(&body, Some(status));
        let kind = match status {
            408 | 429 | 500..=599 => kind_of_status(status),
            _ => provider.as_ref().map_or(kind_of_status(status), |p| p.kind),
        };
        let message = match provider {
            Some(p) if !p.message.is_empty() => format!("HTTP {status}: {}", p.message),
            _ => format!("HTTP {status}"),
        };
        Err(AttemptError::status(status, message, after, kind))
    }

    /// Sends, checks the status and reads the whole body until `deadline`.
    async fn send_json(
        &self,
        up: &UpstreamRequest,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, AttemptError> {
        let resp = self.send(up, deadline).await?;
        let resp = self.check(resp, deadline).await?;
        read_body(resp, deadline, MAX_RESPONSE_BYTES).await
    }
}

/// What one call asks of each step.
pub(super) enum Job<'a> {
    Chat {
        req: &'a mut ChatRequest,
        stream: bool,
        client: Format,
        options: EncodeOptions,
    },
    Embeddings {
        req: &'a mut EmbeddingsRequest,
    },
}

impl Job<'_> {
    fn request(&mut self, model: &Model, prepared: &Prepared) -> Result<UpstreamRequest, LlmError> {
        match self {
            Job::Chat { req, stream, .. } => prepared.chat(model, req, *stream),
            Job::Embeddings { req } => prepared.embeddings(model, req),
        }
    }
}

/// What a successful attempt got.
pub(super) enum Got {
    Chat(Bytes, ChatResponse),
    Stream(Box<StreamState>),
    Embeddings(Bytes, EmbeddingsResponse),
}

pub(super) struct Done {
    pub(super) step: Step,
    pub(super) got: Got,
    /// Kept for streams: the outcome is reported when the stream ends.
    pub(super) permit: Option<Permit>,
    pub(super) attempts: Vec<Attempt>,
    pub(super) deadline: tokio::time::Instant,
}

fn attempt(model: &Model, endpoint: &Endpoint, err: &AttemptError, took: Duration) -> Attempt {
    Attempt {
        model: model.id.clone(),
        endpoint: endpoint.label.clone(),
        status: err.status,
        kind: err.kind,
        error: err.message.clone(),
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    }
}

/// A reqwest error without URL or secrets.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect to the provider"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the response body failed"
    } else if e.is_request() {
        "the request failed"
    } else {
        "HTTP error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

/// Reads a body up to `limit` bytes before `deadline`.
async fn read_body(
    mut resp: reqwest::Response,
    deadline: tokio::time::Instant,
    limit: usize,
) -> Result<Bytes, AttemptError> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => {
                return Err(AttemptError::timeout(
                    "the response body did not arrive in time",
                ));
            }
            Ok(Err(e)) => {
                return Err(AttemptError::of_kind(
                    ErrorKind::UpstreamUnavailable,
                    describe(&e),
                ));
            }
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(AttemptError::of_kind(
                        ErrorKind::UpstreamProtocol,
                        format!("the response exceeds {limit} bytes"),
                    ));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

/// The wait before retry `n + 1`: doubling back-off, or the provider's `Retry-After` when
/// longer; `None` when the provider asks for longer than `max_backoff` (move on instead).
fn backoff(retry: &RetryConfig, n: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let exp = retry
        .initial_backoff
        .saturating_mul(1u32 << (n.max(1) - 1).min(20))
        .min(retry.max_backoff);
    match retry_after {
        Some(ra) if ra > retry.max_backoff => None,
        Some(ra) => Some(ra.max(exp)),
        None => Some(exp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_yields_to_retry_after() {
        let r = RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(1),
        };
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
        assert_eq!(ms(backoff(&r, 1, None)), Some(250));
        assert_eq!(ms(backoff(&r, 2, None)), Some(500));
        assert_eq!(ms(backoff(&r, 3, None)), Some(1000));
        assert_eq!(ms(backoff(&r, 30, None)), Some(1000));
        // A longer Retry-After wins; a shorter one does not shorten the back-off.
        assert_eq!(
            ms(backoff(&r, 1, Some(Duration::from_millis(800)))),
            Some(800)
        );
        assert_eq!(
            ms(backoff(&r, 2, Some(Duration::from_millis(10)))),
            Some(500)
        );
        // Longer than max_backoff: do not wait, move on.
        assert_eq!(backoff(&r, 1, Some(Duration::from_secs(2))), None);
    }

    #[test]
    fn failures_are_classified_by_status_and_kind() {
        let next = |status: u16| {
            AttemptError::status(status, String::new(), None, kind_of_status(status)).next
        };
        for s in [408, 429, 500, 502, 503, 504, 529] {
            assert_eq!(next(s), Next::Retry, "{s}");
        }
        for s in [401, 403, 404, 402, 409] {
            assert_eq!(next(s), Next::Fallback, "{s}");
        }
        for s in [400, 413, 422] {
            assert_eq!(next(s), Next::Stop, "{s}");
            assert!(
                !AttemptError::status(s, String::new(), None, ErrorKind::InvalidRequest).counts
            );
        }
        assert_eq!(AttemptError::llm(&LlmError::Truncated).next, Next::Fallback);
        let e = AttemptError::llm(&LlmError::Upstream {
            kind: ErrorKind::RateLimited,
            message: "slow down".into(),
            provider_type: None,
        });
        assert_eq!((e.next, e.message.as_str()), (Next::Retry, "slow down"));
        let e = AttemptError::llm(&LlmError::Unsupported {
            format: Format::Anthropic,
            what: "n > 1".into(),
        });
        assert_eq!((e.next, e.counts), (Next::Fallback, false));
    }
}
