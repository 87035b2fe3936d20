//! The live suite on the lab: one test per scenario against a real Cilium agent on this Linux host
//! (nextest profile `lab`).
//!
//! Run with `cargo nextest run --profile lab`: its setup script (scripts/lab-setup.sh) builds the lab's
//! binaries when they are not cached, brings the lab up (`harness up --backend lab`) and applies the
//! posture (`harness apply --posture $HARNESS_POSTURE`). Each test runs its scenario's probe in the source's
//! network namespace with real traffic through Cilium's datapath, watches the agent's Hubble for it, and
//! passes only when the client and Hubble both agree with the intent (or, with `HARNESS_EXPECT=model`, with
//! the model). Without a lab every test fails, naming what is missing.
//!
//! The lab has no Envoy: a scenario whose traffic the model says is redirected to Envoy (an HTTP or Kafka
//! rule) is not applicable there and fails with that reason unless listed in
//! `HARNESS_ACCEPT_NOT_APPLICABLE` (ids separated by commas, `no-envoy` for all such scenarios, or `*`);
//! it is never a pass.

mod common;

fn main() {
    common::live_suite::main("lab")
}
