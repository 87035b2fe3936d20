//! Conformance harness for Cilium network policy: library.
//!
//! The pipeline a scenario travels, one module per stage:
//! - [`load`]: reading input files with located errors;
//! - [`policy`]: typed CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy;
//! - [`stack`]: workloads and outside hosts, from the deployed manifests;
//! - [`scenario`]: the security contract as data;
//! - [`model`]: Cilium's policy semantics, deciding and explaining flows;
//! - [`check`] and [`eval`]: the offline commands;
//! - [`results`], [`output`], [`report`] and [`diff`]: the results document, its forms for people, and
//!   verdict changes between two documents.
pub mod check;
pub mod diff;
pub mod eval;
pub mod live;
pub mod load;
pub mod model;
pub mod mutate;
pub mod oracle;
pub mod output;
pub mod policy;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod schema;
pub mod stack;
