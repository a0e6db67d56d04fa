//! One request record per call, handed to the sinks exactly once.

use super::Failure;
use crate::accounting::{Outcome, RequestRecord, RequestSink, Sinks, usage_source_name};
use crate::stream::UsageSource;
use crate::usage::Usage;
use mcplane_types::MicroUsd;
use std::time::{Duration, Instant};

pub(super) struct Finish {
    pub(super) outcome: Outcome,
    pub(super) status: u16,
    pub(super) usage: Option<(Usage, UsageSource)>,
    pub(super) cost: MicroUsd,
    pub(super) ttft: Option<Duration>,
    pub(super) error: Option<String>,
}

/// Builds the request record and hands it to the sinks exactly once (on drop when the call was
/// abandoned: the client went away before an answer).
pub(super) struct Ledger {
    pub(super) sink: Sinks,
    pub(super) rec: RequestRecord,
    pub(super) received: Instant,
    pub(super) done: bool,
    /// Told the final cost once (budget settlement).
    pub(super) on_cost: Option<super::OnCost>,
}

impl Ledger {
    pub(super) fn new(
        sink: Sinks,
        request_id: &str,
        front_door: &'static str,
        requested: &str,
        stream: bool,
        received: Instant,
    ) -> Ledger {
        Ledger {
            sink,
            rec: RequestRecord {
                request_id: request_id.to_string(),
                principal: None,
                tenancy: Default::default(),
                front_door,
                requested: requested.to_string(),
                model: None,
                endpoint: None,
                stream,
                status: 0,
                outcome: Outcome::Error,
                error: None,
                latency_ms: 0,
                ttft_ms: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                usage_source: "none",
                cost_micros: 0,
                route_reason: String::new(),
                attempts: 0,
            },
            received,
            done: false,
            on_cost: None,
        }
    }

    /// Records who called.
    pub(super) fn attribute(&mut self, caller: Option<&mcplane_types::Principal>) {
        if let Some(p) = caller {
            self.rec.principal = Some(p.id.clone());
            self.rec.tenancy = p.tenancy.clone();
        }
    }

    pub(super) fn finish(&mut self, f: Finish) {
        if self.done {
            return;
        }
        self.done = true;
        let r = &mut self.rec;
        r.status = f.status;
        r.outcome = f.outcome;
        r.error = f.error;
        r.latency_ms = millis(self.received.elapsed());
        r.ttft_ms = f.ttft.map(millis);
        if let Some((u, s)) = f.usage {
            r.prompt_tokens = u.prompt_tokens;
            r.completion_tokens = u.completion_tokens;
            r.usage_source = usage_source_name(s);
        }
        r.cost_micros = f.cost.micros();
        self.sink.record(r);
        if let Some(tell) = self.on_cost.take() {
            (tell.0)(f.cost);
        }
    }

    pub(super) fn fail(&mut self, f: Failure) -> Failure {
        self.rec.attempts = f.attempts.len();
        if f.model.is_some() {
            self.rec.model.clone_from(&f.model);
        }
        self.finish(Finish {
            outcome: Outcome::Error,
            status: f.status,
            usage: None,
            cost: MicroUsd::ZERO,
            ttft: None,
            error: Some(f.message.clone()),
        });
        f
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Finish {
                outcome: Outcome::ClientClosed,
                status: 499,
                usage: None,
                cost: MicroUsd::ZERO,
                ttft: None,
                error: Some("the client went away before the answer".into()),
            });
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
