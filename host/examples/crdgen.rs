//! Prints kmsync's four CustomResourceDefinitions as one YAML stream.
//!
//! `cargo run -p kmsync --example crdgen > charts/kmsync/crds/kmsync-crds.yaml` regenerates the
//! committed file; the `committed_crds_match_the_types` test fails when the two drift.

fn main() {
    print!("{}", kmsync::api::crds_yaml());
}
