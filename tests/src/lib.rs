//! Test support for kmsync's end-to-end tests.
//!
//! - [`apiserver`]: a fake kube-apiserver that kube-rs controllers and `kubectl` can use
//!   (discovery, watches, server-side apply, finalizers, garbage collection, Tables, ...).
#![warn(missing_docs)]

pub mod apiserver;

pub use apiserver::{Config, FakeApiServer, Fault, Handle, RequestRecord};
