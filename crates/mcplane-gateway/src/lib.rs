//! mcplane data plane: HTTP listeners and routes.
