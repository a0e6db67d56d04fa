//! Implementations of `mcplane_core::limits::Counters`: [`MemoryCounters`] for one replica.
//! (Redis-backed counters, shared by replicas, come with the replicas work.)

mod memory;

pub use memory::MemoryCounters;
