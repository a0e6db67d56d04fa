//! A provider stream on its way to the client: read, translated, ended with an error event on
//! failure, and accounted for when it ends or the client drops it.

use super::ledger::{Finish, Ledger};
use super::upstream::describe;
use crate::LlmError;
use crate::accounting::Outcome;
use crate::health::Permit;
use crate::sse::{SseDecoder, SseEvent};
use crate::stream::{StreamTranslator, UsageSource};
use crate::usage::Usage;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use mcplane_types::ErrorKind;
use std::collections::VecDeque;
use std::time::Duration;

pub(super) enum PumpError {
    Timeout,
    Llm(LlmError),
}

/// An upstream stream being translated for the client.
pub(super) struct StreamState {
    pub(super) body: BoxStream<'static, reqwest::Result<Bytes>>,
    pub(super) sse: SseDecoder,
    pub(super) events: Vec<SseEvent>,
    pub(super) translator: StreamTranslator,
    pub(super) pending: VecDeque<Bytes>,
    pub(super) done: bool,
    pub(super) failed: Option<String>,
}

impl StreamState {
    /// Reads one chunk of the upstream body (until `until`) and queues the client frames it
    /// completes.
    pub(super) async fn pump(&mut self, until: tokio::time::Instant) -> Result<(), PumpError> {
        if self.translator.is_complete() {
            self.done = true;
            return Ok(());
        }
        let next = tokio::time::timeout_at(until, self.body.next())
            .await
            .map_err(|_| PumpError::Timeout)?;
        match next {
            None => {
                self.sse.finish(&mut self.events).map_err(PumpError::Llm)?;
                self.feed().map_err(PumpError::Llm)?;
                let frames = self.translator.end().map_err(PumpError::Llm)?;
                self.pending.extend(frames);
                self.done = true;
            }
            Some(Err(e)) => {
                return Err(PumpError::Llm(LlmError::Upstream {
                    kind: ErrorKind::UpstreamUnavailable,
                    message: format!(
                        "the provider connection failed mid-stream ({})",
                        describe(&e)
                    ),
                    provider_type: None,
                }));
            }
            Some(Ok(chunk)) => {
                self.sse
                    .feed(&chunk, &mut self.events)
                    .map_err(PumpError::Llm)?;
                self.feed().map_err(PumpError::Llm)?;
                if self.translator.is_complete() {
                    self.done = true;
                }
            }
        }
        Ok(())
    }

    fn feed(&mut self) -> Result<(), LlmError> {
        for ev in self.events.drain(..) {
            let frames = self.translator.feed(&ev)?;
            self.pending.extend(frames);
        }
        Ok(())
    }
}

/// A stream on its way to the client; accounts for itself when it ends or is dropped.
pub(super) struct StreamRun {
    pub(super) state: Box<StreamState>,
    pub(super) deadline: tokio::time::Instant,
    pub(super) permit: Option<Permit>,
    pub(super) ledger: Ledger,
    pub(super) ttft: Duration,
    pub(super) upstream_model: String,
    pub(super) prompt_estimate: u64,
    pub(super) price: crate::Price,
    pub(super) finished: bool,
}

impl StreamRun {
    pub(super) async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.state.pending.pop_front() {
                return Some(b);
            }
            if self.state.done {
                self.finish();
                return None;
            }
            if let Err(e) = self.state.pump(self.deadline).await {
                let e = match e {
                    PumpError::Timeout => LlmError::Upstream {
                        kind: ErrorKind::UpstreamTimeout,
                        message:
                            "the provider's stream did not finish within the request time limit"
                                .into(),
                        provider_type: None,
                    },
                    PumpError::Llm(e) => e,
                };
                let frames = self.state.translator.fail(&e);
                self.state.pending.extend(frames);
                self.state.done = true;
                self.state.failed = Some(match &e {
                    LlmError::Upstream { message, .. } => message.clone(),
                    other => other.to_string(),
                });
            }
        }
    }

    fn usage(&self) -> (Usage, UsageSource) {
        self.state
            .translator
            .final_usage(&self.upstream_model, self.prompt_estimate)
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (usage, source) = self.usage();
        let cost = self.price.cost_of(&usage);
        let failed = self.state.failed.take();
        if let Some(p) = self.permit.take() {
            if failed.is_some() {
                p.failure();
            } else {
                p.success(self.ttft);
            }
        }
        self.ledger.finish(Finish {
            outcome: if failed.is_some() {
                Outcome::StreamError
            } else {
                Outcome::Ok
            },
            status: 200,
            usage: Some((usage, source)),
            cost,
            ttft: Some(self.ttft),
            error: failed,
        });
    }
}

impl Drop for StreamRun {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // The client went away: the upstream body is dropped with `self.state`, which closes
        // the provider connection. Account for what was produced.
        let (usage, source) = self.usage();
        let cost = self.price.cost_of(&usage);
        self.ledger.finish(Finish {
            outcome: Outcome::ClientClosed,
            status: 200,
            usage: Some((usage, source)),
            cost,
            ttft: Some(self.ttft),
            error: Some("the client closed the stream".into()),
        });
    }
}
