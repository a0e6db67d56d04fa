//! Multi round-trip requests (2026-07-28 "MRTR") for any [`Service`](super::Service).
//!
//! A stateless client cannot be sent a JSON-RPC request. When a `Service` asks one anyway
//! ([`RequestContext::request`](super::RequestContext::request): sampling, elicitation, roots —
//! for the gateway, on behalf of a legacy upstream), the question is recorded in the request's
//! [`Exchange`]; the core answers the HTTP request with an `input_required` result listing every
//! open question, and *parks* the still-running work in the [`Registry`] under an unguessable,
//! tamper-evident `requestState`. The client's retry (`inputResponses` + `requestState`) finds
//! the work, delivers the answers to the waiting `request` calls, and takes over the stream:
//! the final result, or the next round of questions, goes to the retry.
//!
//! - `requestState` = `v1.<id+round>.<HMAC-SHA256>`: a random 128-bit id of the parked work and
//!   its round number, MAC'd with a per-process random key over the payload, the caller binding
//!   (credential hash), the method and the target (`name`/`uri`). A modified, foreign, replayed
//!   (earlier round) or expired state is refused with `-32602`.
//! - Parked work is bounded ([`ServerOptions::max_parked`](super::ServerOptions)) and expires
//!   ([`ServerOptions::input_timeout`](super::ServerOptions)): the open questions fail (a gateway
//!   answers its upstream with that error) and, after a short grace, the work is cancelled.

use super::{ServerOptions, Session};
use crate::jsonrpc::{INVALID_PARAMS, RpcError};
use crate::protocol::{self, LogLevel, meta};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long expired work may still run (to answer its own upstream) before it is cancelled.
const EXPIRY_GRACE: Duration = Duration::from_secs(2);

/// What the work of a request resolves to: `None` when it was cancelled.
pub(crate) type Outcome = Option<Result<Value, RpcError>>;

/// The HTTP request currently carrying a 2026-07-28 request's work, and what it asked for.
pub(crate) struct Attached {
    /// Its response stream.
    pub(crate) tx: mpsc::Sender<Value>,
    /// Its `_meta.progressToken`: progress notifications are re-tagged with it (dropped without).
    pub(crate) progress_token: Option<Value>,
    /// Its `io.modelcontextprotocol/logLevel` (`None`: no log messages at all).
    pub(crate) log_level: Option<LogLevel>,
    /// `inputResponses` not matched to an open question yet: a question asked later with one
    /// of these keys is answered at once (a client may answer before being asked).
    pub(crate) offered: Map<String, Value>,
}

struct OpenInput {
    method: String,
    params: Option<Value>,
    reply: oneshot::Sender<Result<Value, RpcError>>,
}

#[derive(Default)]
struct ExchangeState {
    attached: Option<Attached>,
    open: BTreeMap<String, OpenInput>,
    next_key: u64,
    /// Why no more questions can be answered (expired, shut down).
    abandoned: Option<String>,
}

/// The shared state between a 2026-07-28 request's work (which may outlive the HTTP request
/// that started it) and the HTTP request currently carrying it.
pub(crate) struct Exchange {
    /// The method of the request (only `tools/call`, `prompts/get`, `resources/read` may ask).
    method: String,
    state: Mutex<ExchangeState>,
    /// Bumped whenever a question is added.
    asked: watch::Sender<u64>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Exchange {
    /// An exchange for a request of `method`, not carried by any HTTP request yet.
    pub(crate) fn new(method: &str) -> Arc<Exchange> {
        let (asked, _) = watch::channel(0);
        Arc::new(Exchange {
            method: method.to_string(),
            state: Mutex::new(ExchangeState::default()),
            asked,
        })
    }

    /// Notified whenever a question is added.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.asked.subscribe()
    }

    /// Makes `attached` the carrier of the work and delivers its `inputResponses`: those for
    /// open questions answer them; the rest are kept as offered answers.
    pub(crate) fn attach(&self, mut attached: Attached, responses: Map<String, Value>) {
        let mut st = locked(&self.state);
        for (key, value) in responses {
            match st.open.remove(&key) {
                Some(open) => {
                    let _ = open.reply.send(Ok(value));
                }
                None => {
                    attached.offered.insert(key, value);
                }
            }
        }
        st.attached = Some(attached);
    }

    /// No HTTP request carries the work any more (answered with `input_required`, or done).
    pub(crate) fn detach(&self) {
        locked(&self.state).attached = None;
    }

    /// Fails every open question with `reason`; later questions fail at once.
    pub(crate) fn abandon(&self, reason: &str) {
        let mut st = locked(&self.state);
        st.abandoned = Some(reason.to_string());
        st.attached = None;
        for (_, open) in std::mem::take(&mut st.open) {
            let _ = open.reply.send(Err(RpcError::internal(reason.to_string())));
        }
    }

    /// The open questions whose askers still wait, as an `inputRequests` map.
    pub(crate) fn open_requests(&self) -> Map<String, Value> {
        let mut st = locked(&self.state);
        st.open.retain(|_, o| !o.reply.is_closed());
        st.open
            .iter()
            .map(|(key, o)| {
                let mut request = Map::new();
                request.insert("method".into(), o.method.clone().into());
                if let Some(p) = &o.params {
                    request.insert("params".into(), p.clone());
                }
                (key.clone(), Value::Object(request))
            })
            .collect()
    }

    /// Whether a question is open.
    pub(crate) fn has_open(&self) -> bool {
        let mut st = locked(&self.state);
        st.open.retain(|_, o| !o.reply.is_closed());
        !st.open.is_empty()
    }

    /// Sends a message of the work to the carrying request, as 2026-07-28 allows: progress
    /// (re-tagged with that request's token) and log messages at or above its level. Returns
    /// whether it was delivered.
    pub(crate) async fn send(&self, mut msg: Value) -> bool {
        let (tx, token, level) = {
            let st = locked(&self.state);
            let Some(a) = &st.attached else {
                return false;
            };
            (a.tx.clone(), a.progress_token.clone(), a.log_level)
        };
        if msg.get("id").is_some() {
            return false;
        }
        match msg.get("method").and_then(Value::as_str) {
            Some("notifications/progress") => match (token, msg.get_mut("params")) {
                (Some(token), Some(Value::Object(p))) => {
                    p.insert("progressToken".into(), token);
                }
                _ => return false,
            },
            Some("notifications/message") => {
                let wanted = msg
                    .get("params")
                    .and_then(|p| p.get("level"))
                    .and_then(Value::as_str)
                    .and_then(LogLevel::parse);
                match (level, wanted) {
                    (Some(min), Some(l)) if l >= min => {}
                    _ => return false,
                }
            }
            _ => return false,
        }
        tx.send(msg).await.is_ok()
    }

    /// A server→client request of the work: an open question until the client answers it in a
    /// retry (or has already offered the answer).
    pub(crate) async fn ask(
        &self,
        session: &Session,
        method: &str,
        mut params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        match protocol::capability_for(method) {
            Some(cap) if !session.client_supports(cap) => {
                return Err(RpcError::missing_capabilities([cap]));
            }
            Some(_) => {}
            None if method == "ping" => return Ok(json!({})),
            None => return Err(RpcError::method_not_found(method)),
        }
        if !protocol::INPUT_REQUIRED_METHODS.contains(&self.method.as_str()) {
            return Err(RpcError::internal(format!(
                "{method} cannot be asked during {}: 2026-07-28 allows input_required results \
                 only for {}",
                self.method,
                protocol::INPUT_REQUIRED_METHODS.join(", ")
            )));
        }
        let hint = take_input_key(&mut params);
        let (reply, answer) = oneshot::channel();
        let key = {
            let mut st = locked(&self.state);
            if let Some(reason) = &st.abandoned {
                return Err(RpcError::internal(reason.clone()));
            }
            let key = match hint.filter(|h| !h.is_empty() && !st.open.contains_key(h)) {
                Some(h) => h,
                None => loop {
                    st.next_key += 1;
                    let k = format!("input-{}", st.next_key);
                    if !st.open.contains_key(&k) {
                        break k;
                    }
                },
            };
            if let Some(value) = st.attached.as_mut().and_then(|a| a.offered.remove(&key)) {
                return Ok(value);
            }
            st.open.insert(
                key.clone(),
                OpenInput {
                    method: method.to_string(),
                    params,
                    reply,
                },
            );
            key
        };
        self.asked.send_modify(|n| *n += 1);
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RpcError::internal(format!(
                "the request ended before the client answered {method}"
            ))),
            Err(_) => {
                locked(&self.state).open.remove(&key);
                Err(RpcError::internal(format!(
                    "the client did not answer {method} within {}s",
                    timeout.as_secs_f64()
                )))
            }
        }
    }
}

/// Removes mcplane's input-key hint from a server→client request's `params._meta`.
fn take_input_key(params: &mut Option<Value>) -> Option<String> {
    let p = params.as_mut()?.as_object_mut()?;
    let m = p.get_mut("_meta")?.as_object_mut()?;
    let key = m.remove(meta::INPUT_KEY)?;
    if m.is_empty() {
        p.remove("_meta");
    }
    match key {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Work parked between rounds.
pub(crate) struct Parked {
    pub(crate) exchange: Arc<Exchange>,
    pub(crate) done: oneshot::Receiver<Outcome>,
    /// Cancels the work.
    pub(crate) runner: CancellationToken,
    /// The round the client's next state must name.
    pub(crate) round: u32,
    pub(crate) binding: Option<String>,
    pub(crate) method: String,
    pub(crate) target: String,
}

type ParkedId = [u8; 16];

/// Parked 2026-07-28 requests, keyed by a random id; `requestState` names one.
pub(crate) struct Registry {
    key: [u8; 32],
    parked: Mutex<HashMap<ParkedId, Parked>>,
    options: ServerOptions,
}

/// Why a `requestState` was refused.
fn bad_state(message: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, message.to_string()).with_data(json!({"field": "requestState"}))
}

impl Registry {
    pub(crate) fn new(options: ServerOptions) -> Registry {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Registry {
            key,
            parked: Mutex::new(HashMap::new()),
            options,
        }
    }

    /// Parks `work` for its next round and returns the `requestState` naming it. Expiry runs on
    /// `tasks`, and ends early (without grace) when `stopping` is cancelled.
    pub(crate) fn park(
        self: &Arc<Self>,
        mut work: Parked,
        tasks: &TaskTracker,
        stopping: &CancellationToken,
    ) -> Result<String, RpcError> {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        work.round = work.round.wrapping_add(1);
        let state = self.seal(
            &id,
            work.round,
            work.binding.as_deref(),
            &work.method,
            &work.target,
        );
        let round = work.round;
        {
            let mut parked = locked(&self.parked);
            if parked.len() >= self.options.max_parked {
                return Err(RpcError::internal(format!(
                    "too many requests are waiting for client input (limit {}); retry later",
                    self.options.max_parked
                )));
            }
            parked.insert(id, work);
        }
        let registry = self.clone();
        let timeout = self.options.input_timeout;
        let stopping = stopping.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = stopping.cancelled() => {}
            }
            let expired = {
                let mut parked = locked(&registry.parked);
                match parked.get(&id) {
                    Some(p) if p.round == round => parked.remove(&id),
                    _ => None,
                }
            };
            if let Some(p) = expired {
                p.exchange.abandon(&format!(
                    "the client did not retry with inputResponses within {}s",
                    timeout.as_secs_f64()
                ));
                tokio::select! {
                    _ = tokio::time::sleep(EXPIRY_GRACE) => {}
                    _ = stopping.cancelled() => {}
                }
                p.runner.cancel();
            }
        });
        Ok(state)
    }

    /// Takes the parked work `state` names, if it verifies for this caller, method and target.
    pub(crate) fn resume(
        &self,
        state: &str,
        binding: Option<&str>,
        method: &str,
        target: &str,
    ) -> Result<Parked, RpcError> {
        let (id, round) = self.open(state, binding, method, target).ok_or_else(|| {
            bad_state(
                "requestState failed verification: it was modified, or it belongs to another \
                 caller, method or target; echo the exact requestState of the input_required \
                 result, on the same request",
            )
        })?;
        let mut parked = locked(&self.parked);
        match parked.get(&id) {
            Some(p) if p.round == round => Ok(parked.remove(&id).ok_or_else(|| {
                bad_state("requestState is unknown or has expired; send the request again")
            })?),
            Some(_) => Err(bad_state(
                "requestState is stale: a later round of this request exists; echo the \
                 requestState of the latest input_required result",
            )),
            None => Err(bad_state(
                "requestState is unknown or has expired (or was already used); send the \
                 request again without requestState",
            )),
        }
    }

    /// Abandons everything parked (shutdown).
    pub(crate) fn clear(&self) {
        let all: Vec<Parked> = locked(&self.parked).drain().map(|(_, p)| p).collect();
        for p in all {
            p.exchange.abandon("the server is shutting down");
            p.runner.cancel();
        }
    }

    /// Number of parked requests.
    pub(crate) fn len(&self) -> usize {
        locked(&self.parked).len()
    }

    fn mac(&self, payload: &[u8], binding: Option<&str>, method: &str, target: &str) -> [u8; 32] {
        hmac_sha256(
            &self.key,
            &[
                payload,
                binding.unwrap_or("").as_bytes(),
                method.as_bytes(),
                target.as_bytes(),
            ],
        )
    }

    fn seal(
        &self,
        id: &ParkedId,
        round: u32,
        binding: Option<&str>,
        method: &str,
        target: &str,
    ) -> String {
        let mut payload = Vec::with_capacity(20);
        payload.extend_from_slice(id);
        payload.extend_from_slice(&round.to_be_bytes());
        let mac = self.mac(&payload, binding, method, target);
        format!(
            "v1.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    fn open(
        &self,
        state: &str,
        binding: Option<&str>,
        method: &str,
        target: &str,
    ) -> Option<(ParkedId, u32)> {
        let mut parts = state.split('.');
        let (Some("v1"), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if payload.len() != 20 {
            return None;
        }
        let expected = self.mac(&payload, binding, method, target);
        if !constant_time_eq(&expected, &mac) {
            return None;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&payload[..16]);
        let mut round = [0u8; 4];
        round.copy_from_slice(&payload[16..]);
        Some((id, u32::from_be_bytes(round)))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) of `parts`, each length-prefixed so no two inputs collide.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update((p.len() as u64).to_be_bytes());
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        // The same construction without length prefixes, to check against RFC 4231.
        const BLOCK: usize = 64;
        let mut k = [0u8; BLOCK];
        k[..key.len()].copy_from_slice(key);
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        inner.update(data);
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = raw_hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn parked(round: u32) -> Parked {
        let (tx, _rx) = mpsc::channel(1);
        let (_done_tx, done) = oneshot::channel();
        Parked {
            exchange: {
                let e = Exchange::new("tools/call");
                e.attach(
                    Attached {
                        tx,
                        progress_token: None,
                        log_level: None,
                        offered: Map::new(),
                    },
                    Map::new(),
                );
                e
            },
            done,
            runner: CancellationToken::new(),
            round,
            binding: Some("alice".into()),
            method: "tools/call".into(),
            target: "t".into(),
        }
    }

    #[tokio::test]
    async fn state_is_bound_to_caller_method_target_and_round() {
        let reg = Arc::new(Registry::new(ServerOptions::default()));
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let state = reg.park(parked(0), &tasks, &stop).unwrap();
        assert!(state.starts_with("v1."), "{state}");
        let code = |r: Result<Parked, RpcError>| r.err().map(|e| e.code);
        assert_eq!(
            code(reg.resume(
                &format!("{state}-TAMPERED"),
                Some("alice"),
                "tools/call",
                "t"
            )),
            Some(INVALID_PARAMS)
        );
        assert_eq!(
            code(reg.resume(&state, Some("bob"), "tools/call", "t")),
            Some(INVALID_PARAMS)
        );
        assert_eq!(
            code(reg.resume(&state, Some("alice"), "prompts/get", "t")),
            Some(INVALID_PARAMS)
        );
        assert_eq!(
            code(reg.resume(&state, Some("alice"), "tools/call", "u")),
            Some(INVALID_PARAMS)
        );
        assert_eq!(reg.len(), 1);
        let p = reg
            .resume(&state, Some("alice"), "tools/call", "t")
            .unwrap();
        assert_eq!(p.round, 1);
        // Used once: a replay finds nothing.
        assert_eq!(
            code(reg.resume(&state, Some("alice"), "tools/call", "t")),
            Some(INVALID_PARAMS)
        );
        // The next round gets a different state; the old one is stale/unknown.
        let next = reg.park(p, &tasks, &stop).unwrap();
        assert_ne!(next, state);
        assert!(
            reg.resume(&state, Some("alice"), "tools/call", "t")
                .is_err()
        );
        assert_eq!(
            reg.resume(&next, Some("alice"), "tools/call", "t")
                .unwrap()
                .round,
            2
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn registry_is_bounded() {
        let reg = Arc::new(Registry::new(ServerOptions {
            max_parked: 1,
            ..ServerOptions::default()
        }));
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        reg.park(parked(0), &tasks, &stop).unwrap();
        assert!(reg.park(parked(0), &tasks, &stop).is_err());
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_fails_open_questions_then_cancels_the_work() {
        let reg = Arc::new(Registry::new(ServerOptions {
            input_timeout: Duration::from_secs(5),
            ..ServerOptions::default()
        }));
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let p = parked(0);
        let exchange = p.exchange.clone();
        let runner = p.runner.clone();
        let session = Session::ephemeral(
            None,
            super::super::ClientInfo {
                protocol_version: protocol::MODERN.into(),
                capabilities: json!({"sampling": {}}),
                client_info: Value::Null,
            },
            None,
            &stop,
        );
        let ask = tokio::spawn({
            let exchange = exchange.clone();
            async move {
                exchange
                    .ask(
                        &session,
                        "sampling/createMessage",
                        None,
                        Duration::from_secs(60),
                    )
                    .await
            }
        });
        tokio::task::yield_now().await;
        assert!(exchange.has_open());
        reg.park(p, &tasks, &stop).unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let err = ask.await.unwrap().unwrap_err();
        assert!(err.message.contains("did not retry"), "{}", err.message);
        assert!(!runner.is_cancelled());
        tokio::time::sleep(EXPIRY_GRACE).await;
        assert!(runner.is_cancelled());
        assert_eq!(reg.len(), 0);
    }
}
