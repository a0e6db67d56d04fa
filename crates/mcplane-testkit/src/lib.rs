//! Test fixtures for mcplane.
