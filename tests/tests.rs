//! The integration suite: one binary (each file under tests/ would otherwise be linked on its
//! own), run through the real `guestlist` executable against the real engine.

// A test that cannot set itself up should panic with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

/// Nothing lost: volumes survive removals, the audit log keeps every removed container, and
/// `restore` brings one back.
mod audit;
/// Create bodies read by the engine (the oracle) and through the guard, compared.
mod bodies;
/// The command-line contract without containers: help, usage errors, missing state, no engine.
mod cli;
/// State files and audit logs written by an earlier version read as they did.
mod compat;
/// Engine upgrades, the containerd image store, a dockerd killed mid-pass (engines of their own).
mod engines;
/// One test per recreated option: snapshot, rm -f, enforce, compare inspect.
mod fidelity;
/// Hand-written entries in every spelling the engine accepts: two passes never both act.
mod flapping;
/// snapshot, diff, enforce and forget end to end.
mod flow;
/// `guestlist guard`: the socket proxy and the authorization plugin.
mod guard;
/// The guard against a hostile client: how a request is written (targets, parameters, bodies,
/// references, clients that hang up or trickle), through the proxy.
mod hostile;
/// The hostile classes through the authorization plugin, on an engine of the test's own.
mod hostile_plugin;
/// The guard against a hostile client: what a request reaches (listed names, extras, claims,
/// removals and starts that take others along), through the proxy.
mod hostile_reach;
/// `--notify`: notifications to a real receiver, once per situation, never in the way.
mod notify;
/// Metrics, and the contrib files checked by the tools that read them.
mod operations;
/// Another orchestrator's containers (swarm, compose deploys) are its own.
mod orchestrators;
/// Output a machine can trust: JSON on stderr, `check` as strict as the commands that act,
/// messages that name the real cause.
mod output;
/// The requests a pass sends and how many at once (never timed; see contrib/bench/perf.py).
mod performance;
/// Hand-edited lists checked like code; hand-written entries that do not loop.
mod record;
/// A replacement never leaves less running: failures at each step, kills in the middle.
mod replacement;
/// Removal limits, self-protection, locking, SIGKILL convergence, outdated actions.
mod safety;
/// Each container stopped with its own signal and grace period; grace periods that overlap.
mod shutdown;
/// Values checked against the engine's own rules, the engine the oracle.
mod validate;
/// `guestlist watch` and the crash-loop backoff it shares with `enforce`.
mod watch;
