//! mcplane's shared pipeline: what happens to every request, whichever face it came through.
//!
//! A request is decoded by its face into an [`mcplane_types::Operation`] for an
//! [`mcplane_types::Principal`] ([`authn`] turns credentials — JWTs, [`keys`] — into one). This
//! crate decides about it: [`policy`] (allow, deny, require approval, and the obligations a rule
//! attaches: routing, redaction, log detail, shadow traffic), [`limits`] (rate limits per tenant
//! level) and [`budgets`] (spend reserved before a model call and settled after), bundled as the
//! [`governance::Governance`] both faces hold. Guardrails and audit events join as later issues
//! land. It performs no IO of its own: what it needs from the outside comes through ports
//! (traits such as [`authn::JwksSource`], [`limits::Counters`] and [`calls::RequestSink`]) that
//! the binary wires to adapters.

pub mod authn;
pub mod budgets;
pub mod calls;
pub mod governance;
pub mod keys;
pub mod limits;
pub mod policy;
