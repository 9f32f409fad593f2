//! `kmsync controller`: the operator on Kubernetes.

pub mod events;
pub mod http;
pub mod kube_source;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod ratelimit;
pub mod schedule;
pub mod settings;
pub mod shutdown;

pub use settings::{LeaderSettings, NamespaceScope, Settings};
pub use shutdown::Shutdown;
