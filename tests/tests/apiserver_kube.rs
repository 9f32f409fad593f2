//! The fake kube-apiserver, exercised with kube-rs as the client.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use common::{api_error, eventually, start};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event as CoreEvent, Namespace, Secret, ServiceAccount,
};
use k8s_openapi::api::events::v1::Event as EventsV1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kmsync_tests::apiserver::{Config, Fault};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

fn secret(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn widget(name: &str, size: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": {"size": size}
    }))
    .unwrap()
}

fn names<K: Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn lists_filter_by_every_label_selector_operator_and_by_fields() {
    let (_h, client) = start(Config::default()).await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    secrets
        .create(
            &pp,
            &secret("a", &[("app", "web"), ("tier", "front")], &[("k", "v")]),
        )
        .await
        .unwrap();
    secrets
        .create(&pp, &secret("b", &[("app", "api")], &[]))
        .await
        .unwrap();
    let mut tls = secret(
        "c",
        &[("app", "web")],
        &[("tls.crt", "x"), ("tls.key", "y")],
    );
    tls.type_ = Some("kubernetes.io/tls".into());
    secrets.create(&pp, &tls).await.unwrap();

    for (sel, want) in [
        ("app=web", vec!["a", "c"]),
        ("app!=web", vec!["b"]),
        ("app in (api,web)", vec!["a", "b", "c"]),
        ("app notin (web)", vec!["b"]),
        ("tier", vec!["a"]),
        ("!tier", vec!["b", "c"]),
        ("app=web,!tier", vec!["c"]),
    ] {
        let got = secrets
            .list(&ListParams::default().labels(sel))
            .await
            .unwrap();
        assert_eq!(names(&got.items), want, "selector {sel}");
    }
    let by_name = secrets
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(&by_name.items), ["b"]);
    let by_type = secrets
        .list(&ListParams::default().fields("type=kubernetes.io/tls"))
        .await
        .unwrap();
    assert_eq!(names(&by_type.items), ["c"]);
    let not_opaque = secrets
        .list(&ListParams::default().fields("type!=Opaque,metadata.namespace=default"))
        .await
        .unwrap();
    assert_eq!(names(&not_opaque.items), ["c"]);

    let bad = api_error(
        secrets
            .list(&ListParams::default().fields("data.k=v"))
            .await,
    );
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    assert_eq!(bad.message, "field label not supported: data.k");
    let bad = api_error(
        secrets
            .list(&ListParams::default().labels("app in (web"))
            .await,
    );
    assert_eq!(bad.code, 400);

    // Cross-namespace list at /api/v1/secrets.
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &pp,
        &Namespace {
            metadata: ObjectMeta {
                name: Some("other".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "other")
        .create(&pp, &secret("z", &[("app", "web")], &[]))
        .await
        .unwrap();
    let all = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let keys: Vec<(String, String)> = all
        .items
        .iter()
        .map(|s| (s.namespace().unwrap(), s.name_any()))
        .collect();
    assert_eq!(
        keys,
        [
            ("default".into(), "a".into()),
            ("default".into(), "c".into()),
            ("other".into(), "z".into())
        ]
    );
    let got = secrets.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], ByteString(b"v".to_vec()));
    let missing = api_error(secrets.get("nope").await);
    assert_eq!(
        (
            missing.code,
            missing.reason.as_str(),
            missing.message.as_str()
        ),
        (404, "NotFound", r#"secrets "nope" not found"#)
    );
}

#[tokio::test]
async fn paging_returns_a_consistent_snapshot_with_continue_tokens() {
    let (_h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..5 {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm{i}")),
                ..Default::default()
            },
            ..Default::default()
        };
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first.items), ["cm0", "cm1"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap();
    // Changes after the first page do not show up in later pages.
    cms.delete("cm2", &DeleteParams::default()).await.unwrap();
    let cm9 = ConfigMap {
        metadata: ObjectMeta {
            name: Some("cm9".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm9).await.unwrap();
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["cm2", "cm3"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let third = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&third.items), ["cm4"]);
    assert_eq!(third.metadata.continue_, None);
    let now = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&now.items), ["cm0", "cm1", "cm3", "cm4", "cm9"]);
}

#[tokio::test]
async fn list_at_an_exact_old_resource_version_and_too_old_is_gone() {
    let (h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.resource_version().unwrap();
    cms.delete("x", &DeleteParams::default()).await.unwrap();
    let old = cms
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert_eq!(names(&old.items), ["x"]);
    assert_eq!(old.metadata.resource_version.as_deref(), Some(rv.as_str()));
    h.compact();
    let gone = api_error(
        cms.list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await,
    );
    assert_eq!((gone.code, gone.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_with_every_later_change() {
    let (_h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("w".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let from = created.resource_version().unwrap();
    cm.data = Some(BTreeMap::from([("a".into(), "1".into())]));
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "1"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &from)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Modified(o) => seen.push(format!("M{}", o.data.unwrap()["a"])),
            WatchEvent::Deleted(o) => seen.push(format!("D{}", o.name_any())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["M1", "M2", "Dw"]);
}

#[tokio::test]
async fn watch_sends_bookmarks_and_initial_events_end_marker() {
    let (_h, client) = start(Config::default().bookmark_interval(Duration::from_millis(50))).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("b".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10).initial_events(), "")
        .await
        .unwrap()
        .boxed();
    let first = stream.try_next().await.unwrap().unwrap();
    assert!(
        matches!(&first, WatchEvent::Added(o) if o.name_any() == "b"),
        "{first:?}"
    );
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
        }
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert!(!b.metadata.resource_version.is_empty()),
        other => panic!("expected a periodic bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410_and_the_watcher_relists() {
    let (h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = |n: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = cms
        .create(&PostParams::default(), &cm("one"))
        .await
        .unwrap();
    let rv = created.resource_version().unwrap();
    cms.create(&PostParams::default(), &cm("two"))
        .await
        .unwrap();
    h.compact();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(s) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert!(
                s.message
                    .starts_with(&format!("too old resource version: {rv} (")),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // kube-runtime's watcher: after its watch is dropped and the history compacted, it gets
    // a 410 on re-watch, relists, and still sees later changes.
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    loop {
        if let watcher::Event::InitDone = events.try_next().await.unwrap().unwrap() {
            break;
        }
    }
    // The watcher is not polled meanwhile, so it still holds the list's resourceVersion
    // when it re-watches, and that version is compacted by then.
    let lists_before = h.count("list", "configmaps");
    h.drop_watches();
    cms.create(&PostParams::default(), &cm("three"))
        .await
        .unwrap();
    h.compact();
    let mut saw_three = false;
    let mut relisted = false;
    tokio::time::timeout(Duration::from_secs(20), async {
        while !(saw_three && relisted) {
            match events.try_next().await {
                Ok(Some(watcher::Event::InitApply(o) | watcher::Event::Apply(o)))
                    if o.name_any() == "three" =>
                {
                    saw_three = true
                }
                Ok(Some(watcher::Event::InitDone)) => relisted = true,
                Ok(_) => {}
                Err(e) => {
                    // The watcher surfaces the 410 once, then relists.
                    assert!(
                        e.to_string().contains("410") || e.to_string().contains("too old"),
                        "{e}"
                    );
                }
            }
        }
    })
    .await
    .expect("watcher relisted and saw the new object");
    assert!(h.count("list", "configmaps") > lists_before);
    assert!(
        h.requests()
            .iter()
            .any(|r| r.verb == "watch" && r.resource == "configmaps")
    );
}

#[tokio::test]
async fn update_with_a_stale_resource_version_is_a_409_conflict() {
    let (_h, client) = start(Config::default()).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let s = secrets
        .create(&PostParams::default(), &secret("s", &[], &[("a", "1")]))
        .await
        .unwrap();
    let mut first = s.clone();
    first.data = Some(BTreeMap::from([("a".into(), ByteString(b"2".to_vec()))]));
    let updated = secrets
        .replace("s", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), s.resource_version());
    let mut stale = s.clone();
    stale.data = Some(BTreeMap::from([("a".into(), ByteString(b"3".to_vec()))]));
    let e = api_error(secrets.replace("s", &PostParams::default(), &stale).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        r#"Operation cannot be fulfilled on secrets "s": the object has been modified; please apply your changes to the latest version and try again"#
    );
    let dup = api_error(
        secrets
            .create(&PostParams::default(), &secret("s", &[], &[]))
            .await,
    );
    assert_eq!(
        (dup.code, dup.reason.as_str(), dup.message.as_str()),
        (409, "AlreadyExists", r#"secrets "s" already exists"#)
    );
    // generateName
    let generated = Secret {
        metadata: ObjectMeta {
            generate_name: Some("gen-".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let made = secrets
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(
        made.name_any().starts_with("gen-") && made.name_any().len() == 9,
        "{}",
        made.name_any()
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("f".into()),
            finalizers: Some(vec!["example.com/hold".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let deleted = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = deleted
        .left()
        .expect("object returned while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = cms.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    let e = api_error(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}}),
            ),
        )
        .await,
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        e.message
    );
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("f").await).code, 404);
    // Without finalizers, delete answers a Success Status.
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("g".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let status = cms
        .delete("g", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("status");
    assert_eq!(status.details.unwrap().name, "g");
}

fn owner_ref(cm: &ConfigMap) -> OwnerReference {
    cm.controller_owner_ref(&()).unwrap()
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_of_deleted_owners() {
    let (_h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mk = |n: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let owner = cms
        .create(&PostParams::default(), &mk("owner"))
        .await
        .unwrap();
    let other = cms
        .create(&PostParams::default(), &mk("other"))
        .await
        .unwrap();
    let mut only = secret("only-child", &[], &[]);
    only.metadata.owner_references = Some(vec![owner_ref(&owner)]);
    secrets.create(&PostParams::default(), &only).await.unwrap();
    let mut shared = secret("shared-child", &[], &[]);
    shared.metadata.owner_references = Some(vec![owner_ref(&owner), owner_ref(&other)]);
    secrets
        .create(&PostParams::default(), &shared)
        .await
        .unwrap();

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(10, "only-child to be collected", || async {
        secrets
            .get_opt("only-child")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // A dependent with a remaining owner keeps living, without the dangling reference.
    let kept = eventually(10, "dangling reference removed", || async {
        let s = secrets.get("shared-child").await.unwrap();
        (s.metadata.owner_references.as_ref().map(Vec::len) == Some(1)).then_some(s)
    })
    .await;
    assert_eq!(kept.metadata.owner_references.unwrap()[0].name, "other");

    // An owner in another namespace does not count: the dependent is collected.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some("elsewhere".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let far: Api<Secret> = Api::namespaced(client.clone(), "elsewhere");
    let mut cross = secret("cross", &[], &[]);
    cross.metadata.owner_references = Some(vec![owner_ref(&other)]);
    far.create(&PostParams::default(), &cross).await.unwrap();
    eventually(10, "cross-namespace dependent collected", || async {
        far.get_opt("cross").await.unwrap().is_none().then_some(())
    })
    .await;

    // Orphan: the dependent stays and loses its reference.
    let mut orphan = secret("orphan", &[], &[]);
    orphan.metadata.owner_references = Some(vec![owner_ref(&other)]);
    secrets
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    cms.delete("other", &DeleteParams::orphan()).await.unwrap();
    eventually(10, "owner gone after orphaning", || async {
        cms.get_opt("other").await.unwrap().is_none().then_some(())
    })
    .await;
    let o = secrets.get("orphan").await.unwrap();
    assert!(o.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: the owner waits (with a deletionTimestamp) for its dependents.
    let fg = cms.create(&PostParams::default(), &mk("fg")).await.unwrap();
    let mut dep = secret("fg-child", &[], &[]);
    dep.metadata.owner_references = Some(vec![owner_ref(&fg)]);
    dep.metadata.finalizers = Some(vec!["example.com/slow".into()]);
    secrets.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let child = eventually(10, "child deletion started", || async {
        let c = secrets.get("fg-child").await.unwrap();
        c.metadata.deletion_timestamp.is_some().then_some(c)
    })
    .await;
    assert!(child.metadata.deletion_timestamp.is_some());
    let waiting = cms.get("fg").await.unwrap();
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    secrets
        .patch(
            "fg-child",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually(10, "foreground owner gone", || async {
        cms.get_opt("fg").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_tracks_owners_conflicts_forces_and_removes_fields() {
    let (_h, client) = start(Config::default()).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let applied = |data: Value, labels: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssa", "labels": labels}, "stringData": data});
    let a = PatchParams::apply("manager-a");
    let b = PatchParams::apply("manager-b");
    let s = secrets
        .patch(
            "ssa",
            &a,
            &Patch::Apply(applied(
                json!({"k1": "one", "k2": "two"}),
                json!({"team": "a"}),
            )),
        )
        .await
        .unwrap();
    let mf = s.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("manager-a"), Some("Apply"))
    );
    let fields = serde_json::to_value(mf[0].fields_v1.as_ref().unwrap()).unwrap();
    assert_eq!(
        fields,
        json!({"f:data": {"f:k1": {}, "f:k2": {}}, "f:metadata": {"f:labels": {"f:team": {}}}})
    );

    // Another manager, another value: conflict.
    let e = api_error(
        secrets
            .patch(
                "ssa",
                &b,
                &Patch::Apply(applied(json!({"k2": "changed"}), json!({}))),
            )
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        r#"Apply failed with 1 conflict: conflict with "manager-a": .data.k2"#
    );
    let cause = &e.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".data.k2")
    );

    // Same value: co-ownership, no conflict.
    secrets
        .patch(
            "ssa",
            &b,
            &Patch::Apply(applied(json!({"k2": "two"}), json!({}))),
        )
        .await
        .unwrap();
    // Forced: b takes k2 over.
    let forced = secrets
        .patch(
            "ssa",
            &b.clone().force(),
            &Patch::Apply(applied(json!({"k2": "new"}), json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(
        forced.data.as_ref().unwrap()["k2"],
        ByteString(b"new".to_vec())
    );
    let a_fields = forced
        .metadata
        .managed_fields
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.manager.as_deref() == Some("manager-a"))
        .unwrap();
    assert_eq!(
        serde_json::to_value(a_fields.fields_v1.as_ref().unwrap()).unwrap()["f:data"],
        json!({"f:k1": {}})
    );

    // a stops applying k1 and its label: both are removed; k2 (b's) stays.
    let pruned = secrets
        .patch(
            "ssa",
            &a,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssa"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(pruned.data.unwrap().keys().collect::<Vec<_>>(), ["k2"]);
    assert!(pruned.metadata.labels.unwrap_or_default().is_empty());
    assert!(
        pruned
            .metadata
            .managed_fields
            .unwrap()
            .iter()
            .all(|m| m.manager.as_deref() != Some("manager-a"))
    );

    // A non-apply write takes ownership silently (an Update entry).
    let updated = secrets
        .patch(
            "ssa",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(
                json!({"data": {"k2": base64::engine::general_purpose::STANDARD.encode("edited")}}),
            ),
        )
        .await
        .unwrap();
    let editor = updated
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("editor"))
        .unwrap();
    assert_eq!(editor.operation.as_deref(), Some("Update"));
    let e = api_error(
        secrets
            .patch(
                "ssa",
                &b,
                &Patch::Apply(applied(json!({"k2": "mine"}), json!({}))),
            )
            .await,
    );
    assert!(
        e.message.contains(r#"conflict with "editor" using v1"#),
        "{}",
        e.message
    );

    // Finalizers are owned one by one.
    let with_f = |f: Vec<&str>| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ssa", "finalizers": f}});
    secrets
        .patch(
            "ssa",
            &PatchParams::apply("fa"),
            &Patch::Apply(with_f(vec!["example.com/a"])),
        )
        .await
        .unwrap();
    secrets
        .patch(
            "ssa",
            &PatchParams::apply("fb"),
            &Patch::Apply(with_f(vec!["example.com/b"])),
        )
        .await
        .unwrap();
    let both = secrets.get("ssa").await.unwrap();
    assert_eq!(
        both.metadata.finalizers.unwrap(),
        ["example.com/a", "example.com/b"]
    );
    let one = secrets
        .patch(
            "ssa",
            &PatchParams::apply("fa"),
            &Patch::Apply(with_f(vec![])),
        )
        .await
        .unwrap();
    assert_eq!(one.metadata.finalizers.unwrap(), ["example.com/b"]);

    // Apply without a field manager is rejected like the real server.
    let e = api_error(
        secrets
            .patch(
                "ssa",
                &PatchParams::default(),
                &Patch::Apply(with_f(vec![])),
            )
            .await,
    );
    assert_eq!(e.code, 422);
}

#[tokio::test]
async fn merge_json_and_strategic_patches_change_secrets_labels_and_finalizers() {
    let (_h, client) = start(common::config()).await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets
        .create(
            &PostParams::default(),
            &secret("p", &[("a", "1")], &[("k", "v")]),
        )
        .await
        .unwrap();
    let pp = PatchParams::default();
    let s = secrets
        .patch(
            "p",
            &pp,
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": null, "b": "2"}}, "stringData": {"s": "t"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        s.metadata.labels.unwrap(),
        BTreeMap::from([("b".to_string(), "2".to_string())])
    );
    assert_eq!(s.data.unwrap()["s"], ByteString(b"t".to_vec()));
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}},
        {"op": "remove", "path": "/data/k"}
    ]))
    .unwrap();
    let s = secrets
        .patch("p", &pp, &Patch::<()>::Json(patch))
        .await
        .unwrap();
    assert_eq!(s.metadata.annotations.unwrap()["x"], "y");
    assert!(!s.data.unwrap().contains_key("k"));
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/name", "value": "other"}]))
            .unwrap();
    assert_eq!(
        api_error(secrets.patch("p", &pp, &Patch::<()>::Json(failing)).await).code,
        422
    );
    secrets
        .patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"metadata": {"finalizers": ["example.com/one"]}})),
        )
        .await
        .unwrap();
    let s = secrets
        .patch(
            "p",
            &pp,
            &Patch::Strategic(json!({"metadata": {"finalizers": ["example.com/two"]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        s.metadata.finalizers.unwrap(),
        ["example.com/one", "example.com/two"]
    );
    let s = secrets
        .patch(
            "p",
            &pp,
            &Patch::Strategic(
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/one"]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.finalizers.unwrap(), ["example.com/two"]);
    // Strategic merge patch is not for custom resources.
    let w = widgets(&client, "default");
    w.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let e = api_error(
        w.patch("w", &pp, &Patch::Strategic(json!({"spec": {"size": 2}})))
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
}

#[tokio::test]
async fn secrets_are_validated_like_the_real_apiserver() {
    let (_h, client) = start(Config::default()).await;
    let secrets: Api<Secret> = Api::default_namespaced(client);
    let e = api_error(
        secrets
            .create(
                &PostParams::default(),
                &secret("bad", &[], &[("bad key", "x")]),
            )
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    let cause = &e.details.as_ref().unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldValueInvalid", "data[bad key]")
    );
    assert!(e.message.starts_with(r#"Secret "bad" is invalid: data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters"#), "{}", e.message);

    let big = "x".repeat(1024 * 1024 + 1);
    let e = api_error(
        secrets
            .create(
                &PostParams::default(),
                &secret("big", &[], &[("big", &big)]),
            )
            .await,
    );
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"Secret "big" is invalid: data: Too long: may not be more than 1048576 bytes"#
    );
    secrets
        .create(
            &PostParams::default(),
            &secret("fits", &[], &[("big", &"x".repeat(1024 * 1024))]),
        )
        .await
        .unwrap();

    let mut frozen = secret("frozen", &[], &[("k", "v")]);
    frozen.immutable = Some(true);
    secrets
        .create(&PostParams::default(), &frozen)
        .await
        .unwrap();
    let e = api_error(
        secrets
            .patch(
                "frozen",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"k": "w"}})),
            )
            .await,
    );
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Secret \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    // Metadata of an immutable Secret may still change.
    secrets
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"ok": "yes"}}})),
        )
        .await
        .unwrap();
    let e = api_error(
        secrets
            .patch(
                "frozen",
                &PatchParams::default(),
                &Patch::Merge(json!({"type": "kubernetes.io/tls"})),
            )
            .await,
    );
    assert!(
        e.message
            .contains(r#"type: Invalid value: "kubernetes.io/tls": field is immutable"#),
        "{}",
        e.message
    );
    let mut tls = secret("tls", &[], &[("tls.crt", "x")]);
    tls.type_ = Some("kubernetes.io/tls".into());
    let e = api_error(secrets.create(&PostParams::default(), &tls).await);
    assert_eq!(
        e.message,
        r#"Secret "tls" is invalid: data[tls.key]: Required value"#
    );
    // stringData is merged into data and never stored.
    let s = secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("sd".into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("a".into(), ByteString(b"old".to_vec()))])),
                string_data: Some(BTreeMap::from([
                    ("a".into(), "new".into()),
                    ("b".into(), "x".into()),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        s.data.unwrap(),
        BTreeMap::from([
            ("a".into(), ByteString(b"new".to_vec())),
            ("b".into(), ByteString(b"x".to_vec()))
        ])
    );
    assert!(s.string_data.is_none());
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn status_subresource_changes_only_status_and_generation_tracks_spec() {
    let (_h, client) = start(common::config()).await;
    let w = widgets(&client, "default");
    let mut obj = widget("s", 1);
    obj.data["status"] = json!({"observedGeneration": 99});
    let created = w.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.data.get("status").is_none(), "create drops status");
    let st = w
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 1}, "spec": {"size": 50}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["observedGeneration"], 1);
    assert_eq!(st.data["spec"]["size"], 1, "status writes ignore spec");
    assert_eq!(st.metadata.generation, Some(1));
    let main = w
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"observedGeneration": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(main.metadata.generation, Some(2));
    assert_eq!(
        main.data["status"]["observedGeneration"], 1,
        "main resource writes ignore status"
    );
    // PUT on the status subresource, too, changes only status.
    let mut whole = w.get_status("s").await.unwrap();
    whole.data["status"]["observedGeneration"] = json!(2);
    whole.data["spec"]["size"] = json!(40);
    let put = w
        .replace_status("s", &PostParams::default(), &whole)
        .await
        .unwrap();
    assert_eq!(
        (
            put.data["status"]["observedGeneration"].as_i64(),
            put.data["spec"]["size"].as_i64()
        ),
        (Some(2), Some(2))
    );
    let meta_only = w
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(meta_only.metadata.generation, Some(2));
    // Schema: pruning, types, enums, required.
    let pruned = w
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unknown": true}})),
        )
        .await
        .unwrap();
    assert!(pruned.data["spec"].get("unknown").is_none());
    let e = api_error(
        w.patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "big", "color": "pink"}})),
        )
        .await,
    );
    assert_eq!(e.code, 422);
    let fields: Vec<String> = e
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, ["spec.color", "spec.size"]);
    let e = api_error(w.create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "nospec"}, "spec": {}})).unwrap()).await);
    assert_eq!(
        e.message,
        r#"Widget.example.com "nospec" is invalid: spec.size: Required value"#
    );
    // Apply on the status subresource owns status conditions by type.
    let cond = |t: &str, s: &str| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "s"}, "status": {"conditions": [{"type": t, "status": s}]}});
    w.patch_status(
        "s",
        &PatchParams::apply("ctl-a"),
        &Patch::Apply(cond("Ready", "True")),
    )
    .await
    .unwrap();
    let both = w
        .patch_status(
            "s",
            &PatchParams::apply("ctl-b"),
            &Patch::Apply(cond("Synced", "False")),
        )
        .await
        .unwrap();
    assert_eq!(
        both.data["status"]["conditions"].as_array().unwrap().len(),
        2
    );
    let e = api_error(
        w.patch_status(
            "s",
            &PatchParams::apply("ctl-b"),
            &Patch::Apply(cond("Ready", "False")),
        )
        .await,
    );
    assert!(
        e.message
            .contains(r#".status.conditions[type="Ready"].status"#),
        "{}",
        e.message
    );
    let mf = both.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(
        |m| m.manager.as_deref() == Some("ctl-a") && m.subresource.as_deref() == Some("status")
    ));
}

#[tokio::test]
async fn token_request_returns_a_signed_jwt_with_audiences_and_expiry() {
    use hmac::{Hmac, Mac};
    let (h, client) = start(Config::default()).await;
    let sas: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    let sa = sas
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("robot".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let req = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["sts.aliyuncs.com"], "expirationSeconds": 3600}});
    let resp: Value = sas
        .create_subresource("token", "robot", &PostParams::default(), &req)
        .await
        .unwrap();
    assert_eq!(resp["kind"], "TokenRequest");
    let token = resp["status"]["token"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], json!(["sts.aliyuncs.com"]));
    assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["uid"],
        json!(sa.uid().unwrap())
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(h.token_key()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&b64.decode(parts[2]).unwrap())
        .expect("signature verifies");
    let short = json!({"spec": {"expirationSeconds": 60}});
    let e = api_error(
        sas.create_subresource::<Value, Value>("token", "robot", &PostParams::default(), &short)
            .await,
    );
    assert_eq!(e.code, 422);
    let e = api_error(
        sas.create_subresource::<Value, Value>("token", "ghost", &PostParams::default(), &req)
            .await,
    );
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn leases_support_optimistic_leader_election() {
    let (_h, client) = start(Config::default()).await;
    let leases: Api<Lease> = Api::default_namespaced(client);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("kmsync-leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    let a = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut b_try = a.clone();
    b_try.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let mut a_renew = a.clone();
    a_renew.spec.as_mut().unwrap().lease_transitions = Some(0);
    leases
        .replace("kmsync-leader", &PostParams::default(), &a_renew)
        .await
        .unwrap();
    let e = api_error(
        leases
            .replace("kmsync-leader", &PostParams::default(), &b_try)
            .await,
    );
    assert_eq!(e.code, 409);
    // A patch carrying a resourceVersion is conditional too.
    let stale_rv = a.resource_version().unwrap();
    let take =
        json!({"metadata": {"resourceVersion": stale_rv}, "spec": {"holderIdentity": "pod-b"}});
    let e = api_error(
        leases
            .patch(
                "kmsync-leader",
                &PatchParams::default(),
                &Patch::Merge(&take),
            )
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        leases
            .get("kmsync-leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("pod-a")
    );
}

#[tokio::test]
async fn events_recorded_through_events_k8s_io_are_visible_as_core_events() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (_h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("ev".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kmsync".into(),
            instance: Some("pod-1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("synced 2 keys".into()),
        action: "Sync".into(),
        secondary: None,
    };
    recorder.publish(&ev, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &cm.object_ref(&())).await.unwrap();
    let v1: Vec<EventsV1> = Api::<EventsV1>::default_namespaced(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0].series.as_ref().map(|s| s.count), Some(2));
    let core: Vec<CoreEvent> = Api::<CoreEvent>::default_namespaced(client.clone())
        .list(&ListParams::default().fields("involvedObject.name=ev,reason=Synced"))
        .await
        .unwrap()
        .items;
    assert_eq!(core.len(), 1);
    assert_eq!(core[0].message.as_deref(), Some("synced 2 keys"));
    assert_eq!(core[0].reporting_component.as_deref(), Some("kmsync"));
    assert_eq!(core[0].involved_object.kind.as_deref(), Some("ConfigMap"));
}

#[tokio::test]
async fn fault_switches_fail_matching_requests_and_the_log_records_them() {
    let (h, client) = start(Config::default()).await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    h.inject(Fault::new(500, 1).verb("create").resource("secrets"));
    let e = api_error(
        secrets
            .create(&PostParams::default(), &secret("f", &[], &[]))
            .await,
    );
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    secrets
        .create(&PostParams::default(), &secret("f", &[], &[]))
        .await
        .unwrap();
    h.fail_next(2, 500);
    assert_eq!(api_error(secrets.get("f").await).code, 500);
    assert_eq!(
        api_error(secrets.list(&ListParams::default()).await).reason,
        "InternalError"
    );
    // kube-rs retries 429 (with the Retry-After the server sends): the fault is consumed once.
    h.fail_next(1, 429);
    secrets.get("f").await.unwrap();
    h.set_latency(Duration::from_millis(1));
    secrets
        .patch(
            "f",
            &PatchParams::apply("kmsync"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "f"}})),
        )
        .await
        .unwrap();
    h.set_latency(Duration::ZERO);
    let log = h.requests();
    let injected: Vec<(String, u16)> = log
        .iter()
        .filter(|r| r.injected)
        .map(|r| (r.verb.clone(), r.status))
        .collect();
    assert_eq!(
        injected,
        [
            ("create".to_string(), 500),
            ("get".to_string(), 500),
            ("list".to_string(), 500),
            ("get".to_string(), 429)
        ]
    );
    let patch = log.iter().find(|r| r.verb == "patch").unwrap();
    assert_eq!(
        (
            patch.resource.as_str(),
            patch.namespace.as_str(),
            patch.name.as_str(),
            patch.field_manager.as_deref(),
            patch.status
        ),
        ("secrets", "default", "f", Some("kmsync"), 200)
    );
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(h.writes().len(), 2);
    h.clear_requests();
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn crds_created_through_the_api_are_discovered_and_served() {
    let (_h, client) = start(Config::default()).await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    let yaml =
        std::fs::read_to_string(common::fixture_crds().join("widgets.example.com.yaml")).unwrap();
    let first = yaml.split("\n---\n").next().unwrap();
    let crd = serde_yaml_ng::from_str(first).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("Widget discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
    // Aggregated discovery (what kubectl asks for first) lists it too.
    let agg = client.list_api_groups_aggregated().await.unwrap();
    let group = agg
        .items
        .iter()
        .find(|g| g.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some("example.com"))
        .unwrap();
    let res = &group.versions[0].resources[0];
    assert_eq!(
        (res.resource.as_deref(), res.scope.as_deref()),
        (Some("widgets"), Some("Namespaced"))
    );
    assert_eq!(res.subresources[0].subresource.as_deref(), Some("status"));
    let core = client.list_core_api_versions_aggregated().await.unwrap();
    assert!(
        core.items[0].versions[0]
            .resources
            .iter()
            .any(|r| r.resource.as_deref() == Some("secrets"))
    );
    let w = widgets(&client, "default");
    w.create(&PostParams::default(), &widget("w", 3))
        .await
        .unwrap();
    let listed = w.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].data["spec"]["size"], 3);
    // Deleting the CRD removes its objects and stops serving it.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(w.list(&ListParams::default()).await).code, 404);
}

#[tokio::test]
async fn metadata_watchers_and_tables_are_served() {
    let (_h, client) = start(common::config()).await;
    let w = widgets(&client, "default");
    w.create(&PostParams::default(), &widget("m", 4))
        .await
        .unwrap();
    let meta = w.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(meta.items[0].metadata.name.as_deref(), Some("m"));
    let typed: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(client.clone());
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    typed
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("meta".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let seen: PartialObjectMeta<ConfigMap> = loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) if o.name_any() == "meta" => {
                break o;
            }
            _ => {}
        }
    };
    assert!(seen.metadata.uid.is_some());

    let req = http::Request::get("/apis/example.com/v1/namespaces/default/widgets")
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let table: Value = client.request(req).await.unwrap();
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Size", "Ready", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "m");
    assert_eq!(table["rows"][0]["cells"][1], 4);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_content() {
    let (_h, client) = start(Config::default()).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some("gone".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gone");
    secrets
        .create(&PostParams::default(), &secret("s", &[], &[]))
        .await
        .unwrap();
    let e = api_error(
        Api::<Secret>::namespaced(client.clone(), "missing")
            .create(&PostParams::default(), &secret("s", &[], &[]))
            .await,
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, r#"namespaces "missing" not found"#)
    );
    nss.delete("gone", &DeleteParams::default()).await.unwrap();
    eventually(10, "namespace gone", || async {
        nss.get_opt("gone").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(secrets.get_opt("s").await.unwrap().is_none());
}

#[tokio::test]
async fn kubeconfig_written_by_the_handle_works_for_kube_rs() {
    let (h, _) = start(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    h.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    let ns = Api::<Namespace>::all(client.clone())
        .get("default")
        .await
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "default"
    );
    // The ServiceAccount controller's `default` ServiceAccount appears in every namespace.
    let sas: Api<ServiceAccount> = Api::default_namespaced(client);
    eventually(10, "default ServiceAccount", || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_get_status_errors_never_a_crash() {
    let (h, client) = start(common::config()).await;
    let secrets = "/api/v1/namespaces/default/secrets";
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let seed = Api::<Secret>::default_namespaced(client.clone());
    seed.create(&PostParams::default(), &secret("s", &[], &[]))
        .await
        .unwrap();
    let long_unicode_prefix = json!({"metadata": {"generateName": "€".repeat(30)}}).to_string();
    let cases: Vec<(&str, String, &str, &str, u16)> = vec![
        ("POST", secrets.into(), "application/json", "not json", 400),
        ("POST", secrets.into(), "application/json", "[]", 400),
        ("POST", secrets.into(), "application/json", r#""text""#, 400),
        (
            "POST",
            secrets.into(),
            "application/json",
            r#"{"metadata": {"name": 5}}"#,
            422,
        ),
        (
            "POST",
            secrets.into(),
            "application/json",
            r#"{"metadata": {"name": "x", "labels": [1]}}"#,
            422,
        ),
        (
            "POST",
            secrets.into(),
            "application/json",
            r#"{"metadata": {"name": "x"}, "data": 5}"#,
            400,
        ),
        (
            "POST",
            secrets.into(),
            "application/json",
            r#"{"metadata": {"name": "x"}, "data": {"k": 5}}"#,
            400,
        ),
        (
            "POST",
            secrets.into(),
            "application/json",
            r#"{"metadata": {"name": "Not_A_Name"}}"#,
            422,
        ),
        (
            "POST",
            secrets.into(),
            "application/json",
            &long_unicode_prefix,
            422,
        ),
        (
            "POST",
            secrets.into(),
            "application/json",
            r#"{"kind": "ConfigMap", "metadata": {"name": "x"}}"#,
            400,
        ),
        (
            "POST",
            secrets.into(),
            "application/vnd.kubernetes.protobuf",
            "k8s\0\u{1}\u{2}",
            400,
        ),
        ("POST", secrets.into(), "text/plain", "hello", 415),
        (
            "PUT",
            format!("{secrets}/s"),
            "application/json",
            r#"{"metadata": {"name": "other"}}"#,
            400,
        ),
        (
            "PUT",
            format!("{secrets}/missing"),
            "application/json",
            r#"{"metadata": {"name": "missing"}}"#,
            404,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/merge-patch+json",
            "[1, 2]",
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/json-patch+json",
            r#"{"op": "add"}"#,
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/json-patch+json",
            r#"[{"op": "remove", "path": "/nope/x"}]"#,
            422,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/strategic-merge-patch+json",
            r#"{"metadata": {"$patch": "explode"}}"#,
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/strategic-merge-patch+json",
            r#"{"metadata": {"ownerReferences": [{"name": "no-uid"}]}}"#,
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/apply-patch+yaml",
            "a: [b",
            422,
        ),
        (
            "PATCH",
            format!("{secrets}/s?fieldManager=m"),
            "application/apply-patch+yaml",
            "a: [b",
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s?fieldManager=m"),
            "application/apply-patch+yaml",
            "- 1",
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s?fieldManager=m"),
            "application/apply-patch+yaml",
            "{}",
            400,
        ),
        (
            "PATCH",
            format!("{secrets}/s"),
            "application/xml",
            "<x/>",
            415,
        ),
        (
            "PATCH",
            format!("{widgets}/w?fieldManager=m"),
            "application/apply-patch+yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: many}\n",
            422,
        ),
        (
            "DELETE",
            format!("{secrets}/s"),
            "application/json",
            "{nope",
            400,
        ),
        (
            "DELETE",
            format!("{secrets}/s"),
            "application/json",
            r#"{"propagationPolicy": "Sideways"}"#,
            422,
        ),
        ("GET", format!("{secrets}?limit=abc"), "", "", 400),
        ("GET", format!("{secrets}?continue=garbage"), "", "", 400),
        ("GET", format!("{secrets}?resourceVersion=abc"), "", "", 400),
        (
            "GET",
            format!("{secrets}?resourceVersionMatch=Exact"),
            "",
            "",
            422,
        ),
        (
            "GET",
            format!("{secrets}?watch=1&resourceVersion=abc"),
            "",
            "",
            400,
        ),
        (
            "GET",
            format!("{secrets}?watch=1&timeoutSeconds=x"),
            "",
            "",
            400,
        ),
        (
            "GET",
            format!("{secrets}?includeObject=Everything"),
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            "",
            400,
        ),
        ("GET", format!("{secrets}/s/status"), "", "", 404),
        (
            "GET",
            "/api/v1/namespaces/default/nothings".into(),
            "",
            "",
            404,
        ),
        ("GET", "/apis/example.com/v9/widgets".into(), "", "", 404),
        (
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/ghost/token".into(),
            "application/json",
            "{}",
            404,
        ),
    ];
    for (method, path, ct, body, want) in cases {
        let mut req = http::Request::builder().method(method).uri(&path);
        if !ct.is_empty() {
            req = if method == "GET" {
                req.header("Accept", ct)
            } else {
                req.header("Content-Type", ct)
            };
        }
        let resp = client
            .send(
                req.body(kube::client::Body::from(body.as_bytes().to_vec()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), usize::MAX)
            .await
            .unwrap();
        let status: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {bytes:?}"));
        assert_eq!(code, want, "{method} {path} {body:?}: {status}");
        assert_eq!(
            (status["kind"].as_str(), status["code"].as_u64()),
            (Some("Status"), Some(u64::from(want))),
            "{method} {path}"
        );
    }
    // Still serving.
    assert_eq!(seed.get("s").await.unwrap().name_any(), "s");
    assert!(h.requests().iter().all(|r| r.status != 0));
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_stops_listening() {
    let (h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut stream = cms
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    let url = h.url();
    tokio::time::timeout(Duration::from_secs(10), h.shutdown())
        .await
        .expect("shutdown does not hang");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch ended");
    assert!(end.is_none() || end.unwrap().is_err());
    let addr = url.trim_start_matches("http://").to_string();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn missing_crd_directory_fails_start_loudly() {
    let err = kmsync_tests::FakeApiServer::start(Config::default().crds_from("/nonexistent/crds"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent/crds"), "{err}");
    let bad = Config::default().crd_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    let err = kmsync_tests::FakeApiServer::start(bad).await.err().unwrap();
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("expected kind CustomResourceDefinition")
    );
}

#[tokio::test]
async fn watcher_with_streaming_lists_gets_initial_events_then_changes() {
    let (h, client) = start(Config::default()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mk = |n: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &mk("before"))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match events.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(o) => initial.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["before"]);
    cms.create(&PostParams::default(), &mk("after"))
        .await
        .unwrap();
    let seen = loop {
        if let watcher::Event::Apply(o) = events.try_next().await.unwrap().unwrap() {
            break o.name_any();
        }
    };
    assert_eq!(seen, "after");
    // No list request: the initial state came through the watch.
    assert_eq!(h.count("list", "configmaps"), 0);
    let w = h
        .requests()
        .into_iter()
        .find(|r| r.verb == "watch")
        .unwrap();
    assert!(
        w.query.contains("sendInitialEvents=true")
            && w.query.contains("resourceVersionMatch=NotOlderThan"),
        "{}",
        w.query
    );
}

#[tokio::test]
async fn cluster_scoped_custom_resources_are_served_and_own_namespaced_objects() {
    let (_h, client) = start(common::config()).await;
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    let gadgets: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let g: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g1"}, "spec": {"anything": {"goes": [1, 2]}}
    }))
    .unwrap();
    let created = gadgets.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert_eq!(
        created.data["spec"]["anything"]["goes"],
        json!([1, 2]),
        "preserve-unknown-fields keeps everything"
    );
    assert_eq!(
        names(&gadgets.list(&ListParams::default()).await.unwrap().items),
        ["g1"]
    );
    // A namespaced Secret owned by the cluster-scoped Gadget is collected with it.
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut s = secret("owned", &[], &[]);
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Gadget".into(),
        name: "g1".into(),
        uid: created.uid().unwrap(),
        ..Default::default()
    }]);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    gadgets
        .delete("g1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "owned secret collected", || async {
        secrets
            .get_opt("owned")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // Namespaced paths do not serve cluster-scoped resources.
    let wrong: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk));
    assert_eq!(
        api_error(wrong.list(&ListParams::default()).await).code,
        404
    );
}

#[tokio::test]
async fn a_namespace_with_its_own_finalizer_waits_for_it_after_emptying() {
    let (_h, client) = start(Config::default()).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("held".into()),
            finalizers: Some(vec!["example.com/hold".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    nss.create(&PostParams::default(), &ns).await.unwrap();
    nss.delete("held", &DeleteParams::default()).await.unwrap();
    let emptied = eventually(10, "spec.finalizers cleared", || async {
        let n = nss.get("held").await.unwrap();
        n.spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default()
            .is_empty()
            .then_some(n)
    })
    .await;
    assert_eq!(
        emptied.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    nss.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(nss.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn kmsync_crds_load_from_the_chart_or_fail_loudly_when_missing() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kmsync/crds");
    let started = kmsync_tests::FakeApiServer::start(Config::default().kmsync_crds()).await;
    if !dir.exists() {
        // Before the chart is generated on this branch: starting says which path is missing.
        let err = started.err().expect("no CRD directory, no server");
        assert!(err.to_string().contains("charts/kmsync/crds"), "{err}");
        return;
    }
    let h = started.expect("the chart's CRDs load");
    let client = common::client_for(&h);
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    for kind in [
        "ExternalSecret",
        "SecretStore",
        "ClusterSecretStore",
        "ClusterExternalSecret",
    ] {
        let gvk = GroupVersionKind::gvk("alibabacloud.com", "v1alpha1", kind);
        assert!(discovery.resolve_gvk(&gvk).is_some(), "{kind} is served");
    }
    let es: Api<DynamicObject> = Api::default_namespaced_with(
        client,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "alibabacloud.com",
            "v1alpha1",
            "ExternalSecret",
        )),
    );
    let obj = json!({"apiVersion": "alibabacloud.com/v1alpha1", "kind": "ExternalSecret", "metadata": {"name": "db"},
        "spec": {"data": [{"key": "db-password", "name": "password"}]}});
    let created = es
        .patch("db", &PatchParams::apply("test"), &Patch::Apply(obj))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["data"][0]["key"], "db-password");
}
