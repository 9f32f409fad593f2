//! The end-to-end world lives in the library ([`kmsync_tests::world`]) so that the scale
//! benchmark (`src/bin/scale-bench.rs`) drives the same harness; this module re-exports it.

pub use kmsync_tests::world::*;
