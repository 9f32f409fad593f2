//! The kube-controller-manager loops a cluster needs for deletion to behave: the garbage
//! collector (ownerReferences) and the namespace controller; plus the ServiceAccount
//! controller's `default` ServiceAccount in every namespace. They run in a background task
//! after every write, like the real asynchronous controllers, so tests observe dependents
//! disappearing *after* their owner, as on a real cluster.
//!
//! Garbage collector rules (after `pkg/controller/garbagecollector`):
//! - a dependent whose ownerReferences all point to absent owners is deleted (background);
//!   a namespaced owner in another namespace than the dependent's counts as absent;
//! - a dependent with some owners present loses only its dangling references;
//! - an owner deleted with `propagationPolicy=Orphan` has its dependents' references to it
//!   removed, then its `orphan` finalizer;
//! - an owner deleted with `Foreground` keeps its `foregroundDeletion` finalizer until all
//!   its dependents are gone (they are deleted meanwhile).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::registry::State;
use super::resources::{Behaviour, ResourceType};
use super::store::object_key;

fn uid(v: &Value) -> String {
    v.get("metadata")
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn has_finalizer(v: &Value, f: &str) -> bool {
    v.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(f)))
}

fn deleting(v: &Value) -> bool {
    v.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some()
}

fn owner_refs(v: &Value) -> &[Value] {
    v.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// One pass of both controllers; returns whether anything changed (run again until not).
pub fn reconcile(st: &mut State, now: DateTime<Utc>) -> bool {
    let objects: Vec<(Arc<ResourceType>, Arc<Value>)> = st
        .store
        .all()
        .filter_map(|(k, v)| {
            st.registry
                .find_any(&k.group, &k.resource)
                .map(|rt| (rt, v.clone()))
        })
        .collect();
    let by_uid: HashMap<String, &Arc<Value>> = objects.iter().map(|(_, v)| (uid(v), v)).collect();
    let mut referenced: HashSet<String> = HashSet::new();
    for (_, v) in &objects {
        for r in owner_refs(v) {
            if let Some(u) = r.get("uid").and_then(Value::as_str) {
                referenced.insert(u.to_string());
            }
        }
    }

    for (rt, v) in &objects {
        let refs = owner_refs(v);
        if refs.is_empty() {
            continue;
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut orphaning = Vec::new();
        let mut waiting = false;
        for r in refs {
            let ruid = r.get("uid").and_then(Value::as_str).unwrap_or_default();
            // An owner is looked up in the dependent's namespace (or cluster-wide): a
            // namespaced owner elsewhere counts as absent, as in the real collector.
            let dependent_ns = v
                .get("metadata")
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str);
            let owner = by_uid.get(ruid).filter(|o| {
                let owner_ns = o
                    .get("metadata")
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str);
                owner_ns.is_none() || owner_ns == dependent_ns
            });
            match owner {
                None => dangling.push(r.clone()),
                Some(owner) if deleting(owner) && has_finalizer(owner, "orphan") => {
                    orphaning.push(r.clone())
                }
                Some(owner) if deleting(owner) && has_finalizer(owner, "foregroundDeletion") => {
                    waiting = true
                }
                Some(_) => solid.push(r.clone()),
            }
        }
        if !orphaning.is_empty() || (!solid.is_empty() && !dangling.is_empty()) {
            let keep: Vec<Value> = refs
                .iter()
                .filter(|r| !orphaning.contains(r) && !dangling.contains(r))
                .cloned()
                .collect();
            if st
                .controller_set_meta(
                    rt,
                    v,
                    "ownerReferences",
                    json!(keep),
                    "kube-controller-manager",
                    now,
                )
                .is_ok()
            {
                return true;
            }
            continue;
        }
        if solid.is_empty() && (waiting || !dangling.is_empty()) && !deleting(v) {
            let (ns, name) = object_key(v);
            if st.controller_delete(rt, &ns, &name, now).is_ok() {
                return true;
            }
        }
    }

    for (rt, v) in &objects {
        if !deleting(v) {
            continue;
        }
        let u = uid(v);
        for f in ["orphan", "foregroundDeletion"] {
            if has_finalizer(v, f) && !referenced.contains(&u) {
                let rest: Vec<Value> = v
                    .get("metadata")
                    .and_then(|m| m.get("finalizers"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|x| x.as_str() != Some(f))
                    .cloned()
                    .collect();
                if st
                    .controller_set_meta(
                        rt,
                        v,
                        "finalizers",
                        json!(rest),
                        "kube-controller-manager",
                        now,
                    )
                    .is_ok()
                {
                    return true;
                }
            }
        }
    }

    // ServiceAccount controller: every active namespace has a `default` ServiceAccount.
    if let Some(sa_rt) = st.registry.find("", "v1", "serviceaccounts") {
        for (rt, ns) in &objects {
            if rt.behaviour != Behaviour::Namespace || deleting(ns) {
                continue;
            }
            let name = ns
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if st.store.get(&sa_rt.storage, &name, "default").is_none()
                && st
                    .create_default_service_account(&sa_rt, &name, now)
                    .is_ok()
            {
                return true;
            }
        }
    }

    // Namespace controller.
    for (rt, ns) in &objects {
        if rt.behaviour != Behaviour::Namespace || !deleting(ns) {
            continue;
        }
        let name = ns
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let content: Vec<&(Arc<ResourceType>, Arc<Value>)> = objects
            .iter()
            .filter(|(t, o)| {
                t.namespaced
                    && o.get("metadata")
                        .and_then(|m| m.get("namespace"))
                        .and_then(Value::as_str)
                        == Some(name)
            })
            .collect();
        let mut changed = false;
        for (t, o) in &content {
            if !deleting(o) {
                let (ons, oname) = object_key(o);
                changed |= st.controller_delete(t, &ons, &oname, now).is_ok();
            }
        }
        if changed {
            return true;
        }
        if content.is_empty() && st.finish_namespace(ns).unwrap_or(false) {
            return true;
        }
    }
    false
}
