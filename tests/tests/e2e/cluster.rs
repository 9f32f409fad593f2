//! Cluster-scoped kinds: a ClusterExternalSecret stamping ExternalSecrets into the namespaces
//! it selects, through a ClusterSecretStore whose `conditions` allow them.

use serde_json::json;

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{AK_ID, AK_SECRET, SYSTEM, TEAM, World, WorldOptions, wait_for};

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
metadata: {{name: shared, finalizers: [finalizer.ack.secrets-manager.alibabacloud.com]}}
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
    // ack-secret-manager's finalizer is removed from ClusterSecretStores too.
    wait_for(
        "ack's finalizer to leave the ClusterSecretStore",
        || async {
            w.cluster_secret_store("shared")?
                .metadata
                .finalizers
                .unwrap_or_default()
                .is_empty()
                .then_some(())
        },
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_one_namespace_serves_it_alone_and_makes_no_cluster_wide_request() {
    let mut w = World::start_with(
        "watch-namespace",
        WorldOptions {
            namespaces: vec!["team-b".into()],
            chart_values: json!({"env": {"WATCH_NAMESPACE": TEAM}}),
            ..WorldOptions::default()
        },
    )
    .await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("db", "db-password", "")).await;
    w.apply(&store_with_access_key().replace(&format!("namespace: {TEAM}"), "namespace: team-b"))
        .await;
    w.apply(
        &external_secret("db", "db-password", "")
            .replace(&format!("namespace: {TEAM}"), "namespace: team-b"),
    )
    .await;
    w.spawn_controller(&[&format!("--watch-namespaces={TEAM}")])
        .await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    // Another writer-free round: the ExternalSecret in the unwatched namespace is not touched.
    w.apply(&external_secret("later", "api-token", "")).await;
    w.wait_es(TEAM, "later", "True", "SecretSynced").await;
    assert!(w.external_secret("team-b", "db").unwrap().status.is_none());
    assert!(w.secret("team-b", "db").is_none());
    let requests: Vec<_> = w
        .api
        .requests()
        .into_iter()
        .filter(crate::harness::by_controller)
        .collect();
    let outside: Vec<_> = requests
        .iter()
        .filter(|r| r.namespace != TEAM && r.namespace != SYSTEM)
        .map(|r| format!("{} {} {}/{}", r.verb, r.resource, r.namespace, r.name))
        .collect();
    assert!(
        outside.is_empty(),
        "requests outside the watched namespaces: {outside:?}"
    );
    w.finish().await;
}
