//! End-to-end tests: the real `kmsync controller` binary against the fake kube-apiserver and
//! the emulator (see `harness`). One test binary, one world per test.

mod cluster;
mod credentials;
mod failures;
mod fixtures;
mod harness;
mod instance_oos;
mod lifecycle;
mod scale;
mod security;
mod sync;
