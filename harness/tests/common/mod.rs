//! Shared by the live test targets (`kind.rs`, and the lab's): one libtest-mimic test per scenario.

pub mod live_suite;
