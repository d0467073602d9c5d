//! Several replicas sharing one topology through Redis: propagation, Redis outages and restarts, and the
//! identity service's shared state. Tests that break Redis use a `redis-server` of their own
//! (`common::redis_server`); the rest share the one on 6379 under a random prefix.

mod cluster;
mod export_live;
mod fleet_keys;
mod format;
mod isolation;
mod managed_redis;
mod operators;
mod outage_identity;
mod propagation;
mod read_your_writes;
mod revocation;
mod secret_use;
mod shared_ops;
mod store_identity;
