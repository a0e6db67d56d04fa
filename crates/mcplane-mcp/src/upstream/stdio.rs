//! stdio transport (being written).

use super::{Opened, UpstreamError};
use mcplane_config::UpstreamConfig;

/// Opens the transport.
pub async fn open(config: &UpstreamConfig) -> Result<Opened, UpstreamError> {
    Err(UpstreamError::Unavailable {
        server: config.name.clone(),
        reason: "transport stdio not built yet".into(),
    })
}
