//! Hubble evidence (see the crate description).
