//! Implementations of `mcplane_core::limits::Counters`: [`MemoryCounters`] for one replica,
//! [`RedisCounters`] shared by several.

mod memory;
mod redis;

pub use memory::MemoryCounters;
pub use redis::{GAUGE_TTL, RedisCounters};
