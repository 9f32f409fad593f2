//! The object store: one global, monotonically increasing resourceVersion (like etcd's
//! revision), objects keyed by resource / namespace / name, and a bounded history of change
//! events that watches resume from and that lists at an older resourceVersion are rebuilt
//! from. Older history is "compacted": asking for it is `410 Gone`.
//!
//! ```text
//!  write ──► Store::commit ──► objects (current state)
//!                         └──► history (bounded) ──► broadcast ──► open watch streams
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::broadcast;

use super::resources::StorageKey;
use super::status::ApiError;

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion this change was committed at.
    pub rv: u64,
    /// Which resource's storage changed.
    pub key: StorageKey,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletions: its last state, at the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change (`None` for creations).
    pub prev: Option<Arc<Value>>,
}

/// Changes after a resourceVersion, and a receiver for the ones after them.
pub type Subscription = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// Namespace (`""` when cluster-scoped) and name.
pub type ObjectKey = (String, String);

/// A change and when it was committed.
pub type TappedChange = (Instant, Arc<Change>);

/// Every change committed from its creation on, in order, with its commit time: an observer
/// that cannot lag behind (unlike a watch or the broadcast, nothing is dropped). Take what
/// accumulated with [`ChangeTap::drain`]; dropping the tap stops the recording.
#[derive(Debug, Default)]
pub struct ChangeTap(Arc<Mutex<Vec<TappedChange>>>);

impl ChangeTap {
    /// The changes committed since the last call.
    pub fn drain(&self) -> Vec<TappedChange> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The state of every resource, the revision counter and the change history.
pub struct Store {
    rv: u64,
    tables: HashMap<StorageKey, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Every change with `rv <= compacted` is gone from the history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
    taps: Vec<Weak<Mutex<Vec<TappedChange>>>>,
}

/// Reads `metadata.namespace` / `metadata.name`.
pub fn object_key(obj: &Value) -> ObjectKey {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/metadata/namespace"), s("/metadata/name"))
}

impl Store {
    /// An empty store keeping at most `history_limit` changes.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16384);
        Store {
            rv: 0,
            tables: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            tx,
            taps: Vec::new(),
        }
    }

    /// The current (latest committed) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may start from.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }

    /// Drops all history up to the current revision (as an etcd compaction would).
    pub fn compact_all(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The next resourceVersion a commit will use.
    pub fn next_rv(&self) -> u64 {
        self.rv + 1
    }

    /// The current object at `key`/`(ns, name)`.
    pub fn get(&self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.tables
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All current objects of a resource, ordered by namespace then name.
    pub fn list(&self, key: &StorageKey) -> Vec<Arc<Value>> {
        self.tables
            .get(key)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every stored object of every resource (for the garbage collector).
    pub fn all(&self) -> impl Iterator<Item = (&StorageKey, &Arc<Value>)> {
        self.tables
            .iter()
            .flat_map(|(k, t)| t.values().map(move |v| (k, v)))
    }

    /// A resource's objects as they were at `rv` (reconstructed from the history), or
    /// `410 Expired` when that revision was compacted away.
    pub fn list_at(&self, key: &StorageKey, rv: u64) -> Result<Vec<Arc<Value>>, ApiError> {
        if rv < self.compacted {
            // etcd3 storage's answer for a compacted revision (`errors.go`).
            return Err(ApiError::expired(
                "The resourceVersion for the provided list is too old.",
            ));
        }
        let mut table = self.tables.get(key).cloned().unwrap_or_default();
        for change in self.history.iter().rev() {
            if change.rv <= rv {
                break;
            }
            if change.key != *key {
                continue;
            }
            let k = object_key(&change.object);
            match &change.prev {
                Some(prev) => {
                    table.insert(k, prev.clone());
                }
                None => {
                    table.remove(&k);
                }
            }
        }
        Ok(table.into_values().collect())
    }

    /// Commits a creation or update of `obj`, which must already carry
    /// `metadata.resourceVersion == next_rv()`. Returns the stored object.
    pub fn put(&mut self, key: &StorageKey, obj: Value) -> Arc<Value> {
        self.rv += 1;
        let obj = Arc::new(obj);
        let k = object_key(&obj);
        let prev = self
            .tables
            .entry(key.clone())
            .or_default()
            .insert(k, obj.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv: self.rv,
            key: key.clone(),
            kind,
            object: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object; `last` is its final state, already stamped with `next_rv()`.
    pub fn remove(&mut self, key: &StorageKey, last: Value) -> Arc<Value> {
        self.rv += 1;
        let last = Arc::new(last);
        let k = object_key(&last);
        let prev = self.tables.get_mut(key).and_then(|t| t.remove(&k));
        self.record(Change {
            rv: self.rv,
            key: key.clone(),
            kind: EventType::Deleted,
            object: last.clone(),
            prev,
        });
        last
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        if !self.taps.is_empty() {
            let now = Instant::now();
            self.taps.retain(|tap| match tap.upgrade() {
                Some(tap) => {
                    tap.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((now, change.clone()));
                    true
                }
                None => false,
            });
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    /// A new [`ChangeTap`] recording every change committed from now on.
    pub fn tap(&mut self) -> ChangeTap {
        let tap = ChangeTap::default();
        self.taps.push(Arc::downgrade(&tap.0));
        tap
    }

    /// Changes after `rv` (exclusive) plus a receiver for later ones, taken atomically so
    /// no change is missed or duplicated; `410 Expired` if `rv` was compacted.
    pub fn subscribe_from(&self, rv: u64) -> Result<Subscription, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                self.compacted
            )));
        }
        let backlog = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> StorageKey {
        StorageKey {
            group: String::new(),
            resource: "configmaps".into(),
        }
    }

    fn cm(name: &str, rv: u64, v: &str) -> Value {
        json!({"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv.to_string()}, "data": {"v": v}})
    }

    #[test]
    fn list_at_an_old_revision_undoes_later_changes() {
        let mut s = Store::new(100);
        s.put(&key(), cm("a", 1, "1"));
        s.put(&key(), cm("b", 2, "1"));
        s.put(&key(), cm("a", 3, "2"));
        s.remove(&key(), cm("b", 4, "1"));
        let at2 = s.list_at(&key(), 2).unwrap();
        assert_eq!(at2.len(), 2);
        assert_eq!(at2[0]["data"]["v"], "1");
        assert_eq!(s.list_at(&key(), 4).unwrap().len(), 1);
        assert_eq!(s.list_at(&key(), 0).unwrap().len(), 0);
    }

    #[test]
    fn compacted_history_answers_gone() {
        let mut s = Store::new(2);
        for i in 1..=5 {
            s.put(&key(), cm("a", i, &i.to_string()));
        }
        assert_eq!(s.compacted_rv(), 3);
        assert_eq!(s.subscribe_from(2).unwrap_err().code, 410);
        let (backlog, _) = s.subscribe_from(3).unwrap();
        assert_eq!(backlog.iter().map(|c| c.rv).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(
            s.list_at(&key(), 1).unwrap_err().message,
            "The resourceVersion for the provided list is too old."
        );
        assert_eq!(
            s.subscribe_from(1).unwrap_err().message,
            "too old resource version: 1 (3)"
        );
    }
}
