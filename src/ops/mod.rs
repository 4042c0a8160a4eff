//! The operations side: what lets guestlist run unattended and be trusted at 3 a.m. The audit
//! log keeps every removed container, the lock lets one pass act at a time, the backoff holds
//! back restarts of a container that keeps dying, metrics and logs tell what happened, and
//! `files` writes all of these whole or not at all, where no other user can write.

pub mod accept;
pub mod audit;
pub mod backoff;
pub mod files;
pub mod lock;
pub mod log;
pub mod metrics;
