//! Test support for kmsync's end-to-end tests.
//!
//! - [`apiserver`]: a fake kube-apiserver that kube-rs controllers and `kubectl` can use
//!   (discovery, watches, server-side apply, finalizers, garbage collection, Tables, ...).
//! - [`world`]: the end-to-end world — that server, the kmsync emulator and the real
//!   `kmsync controller` binary as a subprocess (the e2e suite and the scale benchmark).
//! - [`scale`]: the scale and cost benchmark (`scale-bench`) and its CI smoke version.
#![warn(missing_docs)]

pub mod apiserver;
pub mod scale;
pub mod world;

pub use apiserver::{Config, FakeApiServer, Fault, Handle, RequestRecord};
