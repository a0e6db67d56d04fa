//! mcplane's shared vocabulary.
//!
//! Small value types every other crate speaks: how an error is classified (its [`ErrorKind`],
//! which [`Side`] caused it and whether a retry may help), money ([`MicroUsd`], integer
//! micro-dollars), who is calling ([`Principal`]) and what they ask to do ([`Operation`]).
//! Rendering an error for a protocol is the job of the protocol's crate; this crate only names
//! things.

pub mod clock;
pub mod money;
pub mod operation;
pub mod principal;

pub use money::MicroUsd;
pub use operation::{Face, Operation, ToolRef};
pub use principal::{AuthMethod, Principal, PrincipalKind, Tenancy};

use serde::Serialize;

/// What went wrong, in the few categories every face renders differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No or bad credentials.
    Unauthenticated,
    /// Credentials fine, operation not allowed.
    Forbidden,
    /// A budget would be exceeded.
    BudgetExceeded,
    /// A rate limit was hit.
    RateLimited,
    /// The named thing (tool, prompt, resource, session, route) does not exist.
    NotFound,
    /// The request itself is malformed or invalid.
    InvalidRequest,
    /// The upstream could not be reached or is not running.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream answered something that breaks the protocol.
    UpstreamProtocol,
    /// A bug or resource exhaustion inside mcplane.
    Internal,
}

/// Which side of the gateway caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The client that called mcplane.
    Downstream,
    /// A server or provider mcplane called.
    Upstream,
    /// mcplane itself.
    Internal,
}

impl ErrorKind {
    /// The side that an error of this kind is attributed to.
    pub fn side(self) -> Side {
        match self {
            ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamProtocol => Side::Upstream,
            ErrorKind::Internal => Side::Internal,
            _ => Side::Downstream,
        }
    }

    /// Whether repeating the same request later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_kinds_are_upstream_side() {
        assert_eq!(ErrorKind::UpstreamTimeout.side(), Side::Upstream);
        assert_eq!(ErrorKind::InvalidRequest.side(), Side::Downstream);
        assert!(ErrorKind::UpstreamTimeout.retryable());
        assert!(!ErrorKind::Forbidden.retryable());
    }
}
