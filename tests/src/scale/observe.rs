//! What the benchmark learns from the fake apiserver's change tap (every committed change
//! with its commit time, none dropped): when each ExternalSecret was created and first became
//! `Ready=True` for its generation, which ones went `Ready=False` and why, and when each
//! watched Secret first held the values expected after a rotation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::layout::secret_holds;
use crate::apiserver::store::{ChangeTap, EventType};

/// `(namespace, name)`.
pub type Key = (String, String);

/// What the tap showed so far.
#[derive(Debug, Default)]
pub struct Observed {
    /// First time each ExternalSecret was seen (its creation).
    pub created: HashMap<Key, Instant>,
    /// First time each ExternalSecret was `Ready=True` for its generation.
    pub first_ready: HashMap<Key, Instant>,
    /// Whether each ExternalSecret is `Ready=True` for its generation now.
    pub ready_now: HashMap<Key, bool>,
    /// Every transition to `Ready=False`: when, which object, the reason.
    pub failures: Vec<(Instant, Key, String)>,
    /// Secrets being watched for new values: the needles each must hold.
    pub expect: HashMap<Key, Vec<String>>,
    /// When each watched Secret first held all its needles.
    pub holds_since: HashMap<Key, Instant>,
    /// Changes seen, by resource.
    pub changes: HashMap<String, u64>,
}

impl Observed {
    /// ExternalSecrets `Ready=True` now.
    pub fn ready_count(&self) -> usize {
        self.ready_now.values().filter(|r| **r).count()
    }

    /// ExternalSecrets among `keys` not ready now.
    pub fn not_ready<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) -> Vec<Key> {
        keys.into_iter()
            .filter(|k| !self.ready_now.get(*k).copied().unwrap_or(false))
            .cloned()
            .collect()
    }

    fn apply(&mut self, at: Instant, group: &str, resource: &str, kind: EventType, obj: &Value) {
        *self.changes.entry(resource.to_owned()).or_default() += 1;
        let key = object_key(obj);
        match (group, resource) {
            ("alibabacloud.com", "externalsecrets") => {
                if kind == EventType::Deleted {
                    self.ready_now.remove(&key);
                    return;
                }
                self.created.entry(key.clone()).or_insert(at);
                let (ready, reason) = ready_condition(obj);
                let was = self.ready_now.insert(key.clone(), ready == Some(true));
                if ready == Some(true) {
                    self.first_ready.entry(key).or_insert(at);
                } else if ready == Some(false) && was != Some(false) {
                    self.failures.push((at, key, reason.unwrap_or_default()));
                } else if ready == Some(false) {
                    // Still failing; a new reason counts as a new failure.
                    let last = self.failures.iter().rev().find(|f| f.1 == key);
                    let reason = reason.unwrap_or_default();
                    if last.is_none_or(|f| f.2 != reason) {
                        self.failures.push((at, key, reason));
                    }
                }
            }
            ("", "secrets") if kind != EventType::Deleted => {
                if !self.holds_since.contains_key(&key)
                    && let Some(needles) = self.expect.get(&key)
                    && secret_holds(obj, needles)
                {
                    self.holds_since.insert(key, at);
                }
            }
            _ => {}
        }
    }
}

fn object_key(obj: &Value) -> Key {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (
        s("/metadata/namespace").to_owned(),
        s("/metadata/name").to_owned(),
    )
}

/// The `Ready` condition: `Some(true)` when `True` for the object's current generation,
/// `Some(false)` when `False` (any generation: a failure is a failure), `None` otherwise;
/// with its reason.
fn ready_condition(obj: &Value) -> (Option<bool>, Option<String>) {
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let Some(c) = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
    else {
        return (None, None);
    };
    let reason = c["reason"].as_str().map(str::to_owned);
    match c["status"].as_str() {
        Some("True") if c["observedGeneration"].as_i64() == generation => (Some(true), reason),
        Some("False") => (Some(false), reason),
        _ => (None, reason),
    }
}

/// Drains a tap into [`Observed`] in the background.
pub struct Observer {
    state: Arc<Mutex<Observed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts draining `tap` every 20 ms.
    pub fn start(tap: ChangeTap) -> Self {
        let state = Arc::new(Mutex::new(Observed::default()));
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let changes = tap.drain();
                    if !changes.is_empty() {
                        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                        for (at, c) in changes {
                            s.apply(at, &c.key.group, &c.key.resource, c.kind, &c.object);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self { state, task }
    }

    /// Runs `f` on what was observed so far.
    pub fn with<R>(&self, f: impl FnOnce(&mut Observed) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits (polling every 50 ms) until `done` holds, or `limit` passes; whether it held.
    pub async fn wait(&self, limit: Duration, mut done: impl FnMut(&Observed) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.with(|o| done(o)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts watching `secrets` for `needles` (replacing earlier expectations).
    pub fn expect(&self, expect: HashMap<Key, Vec<String>>) {
        self.with(|o| {
            o.holds_since.clear();
            o.expect = expect;
        });
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Distinct keys among failures at or after `since`.
pub fn failed_since(o: &Observed, since: Instant) -> HashSet<Key> {
    o.failures
        .iter()
        .filter(|f| f.0 >= since)
        .map(|f| f.1.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es(generation: i64, status: &str, observed: i64, reason: &str) -> Value {
        json!({"metadata": {"namespace": "n", "name": "a", "generation": generation},
               "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason,
                                          "observedGeneration": observed}]}})
    }

    #[test]
    fn ready_counts_only_for_the_current_generation_and_failures_are_recorded_once() {
        let mut o = Observed::default();
        let t = Instant::now();
        let g = "alibabacloud.com";
        o.apply(
            t,
            g,
            "externalsecrets",
            EventType::Added,
            &json!({"metadata": {"namespace": "n", "name": "a", "generation": 1}}),
        );
        o.apply(
            t,
            g,
            "externalsecrets",
            EventType::Modified,
            &es(2, "True", 1, "SecretSynced"),
        );
        assert_eq!(o.ready_count(), 0);
        o.apply(
            t,
            g,
            "externalsecrets",
            EventType::Modified,
            &es(2, "False", 2, "FetchFailed"),
        );
        o.apply(
            t,
            g,
            "externalsecrets",
            EventType::Modified,
            &es(2, "False", 2, "FetchFailed"),
        );
        assert_eq!(o.failures.len(), 1);
        o.apply(
            t,
            g,
            "externalsecrets",
            EventType::Modified,
            &es(2, "True", 2, "SecretSynced"),
        );
        assert_eq!(o.ready_count(), 1);
        assert!(o.first_ready.contains_key(&("n".into(), "a".into())));
    }
}
