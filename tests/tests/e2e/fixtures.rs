//! Manifests shared by the e2e tests.

use crate::harness::{AK_ID, AK_SECRET, TEAM};

/// The AccessKey Secret and a SecretStore `kms` using it, in [`TEAM`].
pub fn store_with_access_key() -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: alibaba-ak, namespace: {TEAM}}}
stringData: {{id: {AK_ID}, secret: {AK_SECRET}}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: kms, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      accessKey: {{name: alibaba-ak, key: id}}
      accessKeySecret: {{name: alibaba-ak, key: secret}}
"#
    )
}

/// ExternalSecret `name` copying remote `key` to Secret key `password` through store `kms`;
/// `extra` is appended to `spec` (indented two spaces).
pub fn external_secret(name: &str, key: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: {name}, namespace: {TEAM}}}
spec:
  data:
    - {{key: {key}, name: password, secretStoreRef: {{name: kms}}}}
{extra}
"#
    )
}
