//! A kube-runtime `Controller` over the test CRD runs against the fake apiserver: its
//! list/watch, owned-object watches, server-side apply, status writes, finalizer handling
//! and the garbage collector all have to behave as on a real cluster for this to converge.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{eventually, start};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The `widgets.example.com` fixture, typed.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    size: i64,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    observed_generation: Option<i64>,
    #[serde(default)]
    conditions: Vec<WidgetCondition>,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema)]
pub struct WidgetCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

struct Ctx {
    client: kube::Client,
    cleanups: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

const MANAGER: &str = "widget-controller";

async fn apply(w: Arc<Widget>, ctx: &Ctx) -> Result<Action, kube::Error> {
    let ns = w.namespace().unwrap_or_default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = w.controller_owner_ref(&()).expect("widgets have uids");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-config", w.name_any()), "ownerReferences": [owner]},
        "data": {"size": w.spec.size.to_string()},
    });
    let pp = PatchParams::apply(MANAGER).force();
    cms.patch(&format!("{}-config", w.name_any()), &pp, &Patch::Apply(cm))
        .await?;
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    let status = json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": w.name_any()},
        "status": {"observedGeneration": w.metadata.generation, "conditions": [{"type": "Ready", "status": "True"}]},
    });
    widgets
        .patch_status(&w.name_any(), &pp, &Patch::Apply(status))
        .await?;
    Ok(Action::await_change())
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<Widget> = Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
    finalizer(&api, "example.com/cleanup", w, |event| async {
        match event {
            Finalizer::Apply(w) => apply(w, &ctx).await,
            Finalizer::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Widget>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn kube_runtime_controller_reconciles_custom_resources() {
    let (h, client) = start(common::config()).await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    assert!(
        h.wait_for_watches("widgets", 1, Duration::from_secs(20))
            .await,
        "controller watches widgets"
    );
    assert!(
        h.wait_for_watches("configmaps", 1, Duration::from_secs(20))
            .await,
        "and its ConfigMaps"
    );

    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w1", WidgetSpec { size: 3 }),
        )
        .await
        .unwrap();
    let ready = eventually(20, "w1 to become Ready", || async {
        let w = widgets.get("w1").await.unwrap();
        let st = w.status.clone()?;
        (st.observed_generation == Some(1)
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"))
        .then_some(w)
    })
    .await;
    assert_eq!(ready.finalizers(), ["example.com/cleanup"]);
    let cm = cms.get("w1-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["size"], "3");
    assert_eq!(
        cm.metadata.owner_references.unwrap()[0].uid,
        ready.uid().unwrap()
    );

    // A spec change bumps the generation and is reconciled.
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    eventually(20, "generation 2 observed", || async {
        let w = widgets.get("w1").await.unwrap();
        (w.status?.observed_generation == Some(2)).then_some(())
    })
    .await;
    eventually(20, "configmap updated", || async {
        (cms.get("w1-config").await.unwrap().data?["size"] == "5").then_some(())
    })
    .await;

    // Someone edits the owned ConfigMap: the controller (watching owned objects) puts it back.
    cms.patch("w1-config", &PatchParams::apply("intruder").force(), &Patch::Apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w1-config"}, "data": {"size": "999"}
    })))
    .await
    .unwrap();
    eventually(20, "configmap restored", || async {
        (cms.get("w1-config").await.unwrap().data?["size"] == "5").then_some(())
    })
    .await;

    // Deletion: the finalizer runs cleanup, then the widget and (via GC) its ConfigMap go.
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "widget gone", || async {
        widgets.get_opt("w1").await.unwrap().is_none().then_some(())
    })
    .await;
    eventually(20, "configmap collected", || async {
        cms.get_opt("w1-config")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(ctx.cleanups.load(Ordering::SeqCst), 1);
    assert!(h.requests().iter().any(|r| r.verb == "patch"
        && r.subresource == "status"
        && r.field_manager.as_deref() == Some(MANAGER)));
    task.abort();
    let _ = task.await;
    eventually(10, "watches closed", || async {
        (h.open_watches("widgets") == 0).then_some(())
    })
    .await;
}
