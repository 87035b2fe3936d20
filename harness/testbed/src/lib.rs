//! The live test bed (see the crate description).
