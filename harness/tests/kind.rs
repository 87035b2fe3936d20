//! The live suite: one test per scenario against the test bed (nextest profile `kind`).
//!
//! Run with `cargo nextest run --profile kind`: its setup script prepares the test bed (`harness up
//! --reuse`, `harness apply --posture $HARNESS_POSTURE`). Each test runs its scenario's probe with real
//! traffic, watches Hubble for it, and passes only when the client and Hubble both agree with the intent.
//! With `HARNESS_EXPECT=model` (the seed posture's nightly run) a test passes when the observations match the
//! model's prediction instead. Without a test bed every test fails, naming what is missing.
//!
//! Not applicable is never a pass: a scenario the test bed cannot run (for example from an outside host on
//! an existing cluster) fails with the reason, unless listed in `HARNESS_ACCEPT_NOT_APPLICABLE` (ids
//! separated by commas, or `*`); then it is printed as accepted, not passed.
//!
//! Tests of this target run one at a time (the kind profile sets test-threads for it): probes of separate
//! processes cannot coordinate, and Hubble could attribute one probe's flows to another. The logic is
//! shared with the other backends' targets (`common/live_suite.rs`, `harness::runner::suite`).

mod common;

fn main() {
    common::live_suite::main("kind")
}
