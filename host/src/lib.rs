//! kmsync: keeps Kubernetes Secrets in step with Alibaba Cloud KMS Secrets Manager.
//!
//! Dependencies point one way (see `docs/development.md`):
//!
//! ```text
//! value, api  <-  alibaba, kms, dkms, oos, credentials, rules  <-  fetch  <-  stores
//!             <-  sync (pure: talks to the world through traits)  <-  controller  <-  cli
//!                 emulator (a stand-in for the cloud side, used by cli and tests)
//! ```

pub mod alibaba;
pub mod api;
pub mod cli;
pub mod controller;
pub mod credentials;
pub mod dkms;
pub mod emulator;
pub mod fetch;
pub mod kms;
pub mod oos;
pub mod rules;
pub mod stores;
pub mod sync;
pub mod value;
