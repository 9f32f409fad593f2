//! Cluster-scoped kinds: a ClusterExternalSecret stamping ExternalSecrets into the namespaces
//! it selects, through a ClusterSecretStore whose `conditions` allow them.

use crate::harness::{AK_ID, AK_SECRET, SYSTEM, World, WorldOptions, wait_for};

fn namespace(name: &str, labelled: bool) -> String {
    if labelled {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{team: \"yes\"}}}}\n"
        )
    } else {
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_external_secret_follows_the_namespaces_it_selects() {
    let mut w = World::start_with(
        "cluster-external-secret",
        WorldOptions {
            namespaces: vec!["team-b".into(), "team-c".into(), "team-d".into()],
            ..WorldOptions::default()
        },
    )
    .await;
    for (ns, labelled) in [
        ("team-a", true),
        ("team-b", false),
        ("team-c", true),
        ("team-d", true),
    ] {
        w.apply(&namespace(ns, labelled)).await;
    }
    w.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: shared-ak, namespace: {SYSTEM}}}
stringData: {{id: {AK_ID}, secret: {AK_SECRET}}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ClusterSecretStore
metadata: {{name: shared}}
spec:
  KMS:
    KMSAuth:
      accessKey: {{name: shared-ak, namespace: {SYSTEM}, key: id}}
      accessKeySecret: {{name: shared-ak, namespace: {SYSTEM}, key: secret}}
  conditions:
    - namespaceSelector: {{matchLabels: {{team: "yes"}}}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: common, namespace: team-d}}
spec:
  data: [{{key: api-token, name: mine, secretStoreRef: {{name: shared, kind: ClusterSecretStore}}}}]
---
apiVersion: alibabacloud.com/v1alpha1
kind: ClusterExternalSecret
metadata: {{name: common}}
spec:
  externalSecretMetadata: {{labels: {{stamped: "true"}}}}
  conditions:
    - namespaceSelector: {{matchLabels: {{team: "yes"}}}}
  externalSecretSpec:
    data:
      - {{key: api-token, name: token, secretStoreRef: {{name: shared, kind: ClusterSecretStore}}}}
"#
    ))
    .await;
    w.spawn_controller(&[]).await;

    for ns in ["team-a", "team-c"] {
        w.wait_es(ns, "common", "True", "SecretSynced").await;
        assert_eq!(
            w.secret_value(ns, "common", "token").as_deref(),
            Some("marker-api-token-0b7d")
        );
        let es = w.external_secret(ns, "common").unwrap();
        assert_eq!(es.metadata.labels.unwrap()["stamped"], "true");
        let owner = &es.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "ClusterExternalSecret");
    }
    assert!(w.external_secret("team-b", "common").is_none());
    let status = wait_for("the ClusterExternalSecret's status", || async {
        let s = w.cluster_external_secret("common")?.status?;
        (s.provisioned_namespaces.as_deref()? == ["team-a", "team-c"]).then_some(s)
    })
    .await;
    let failed = status.failed_namespaces.clone().unwrap();
    assert_eq!(failed[0].namespace, "team-d");
    assert!(
        failed[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not managed by this ClusterExternalSecret"),
        "{failed:?}"
    );
    assert_eq!(
        status.ready().unwrap().reason.as_deref(),
        Some("NamespacesFailed")
    );

    // A namespace gets the label: the ExternalSecret follows, and the store admits it.
    w.apply(&namespace("team-b", true)).await;
    w.wait_es("team-b", "common", "True", "SecretSynced").await;
    // A namespace loses it: the ExternalSecret goes; its Secret stays (deletionPolicy Retain).
    w.apply(&namespace("team-a", false)).await;
    wait_for("the ExternalSecret to leave team-a", || async {
        w.external_secret("team-a", "common")
            .is_none()
            .then_some(())
    })
    .await;
    let kept = w.secret("team-a", "common").expect("retained");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    wait_for("the status to follow", || async {
        let s = w.cluster_external_secret("common")?.status?;
        (s.provisioned_namespaces.as_deref()? == ["team-b", "team-c"]).then_some(())
    })
    .await;
    w.finish().await;
}
