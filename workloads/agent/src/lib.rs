//! The in-pod agent: the reference stack's servers and the protocol probes.
//!
//! One binary, two families of commands:
//! - `agent serve frontend|api|idle`: the stack's workloads ([`serve`]);
//! - `agent probe http|https|tcp|dns|postgres|kafka`: one probe, one classified [`probe_wire::ProbeResult`]
//!   as JSON on stdout ([`probe`]).
//!
//! The classification rules live in [`classify`] as pure functions, so each rule is tested on its own.

pub mod classify;
pub mod cli;
pub mod clock;
pub mod dnswire;
pub mod net;
pub mod probe;
pub mod serve;
pub mod timed;
