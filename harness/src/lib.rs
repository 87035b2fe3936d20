//! Conformance harness for Cilium network policy: library.
pub mod load;
