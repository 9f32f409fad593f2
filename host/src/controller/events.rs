//! Kubernetes Events (`events.k8s.io/v1`) without spam.
//!
//! The controller publishes an Event when something really happened (a Secret written, a store
//! becoming ready) and when something fails. The same Event — same object, type, reason and
//! note — published again is folded into the first one's `series`: the count is kept in
//! memory and written back at most every [`SERIES_WRITE_INTERVAL`], so an error retried with
//! backoff for an hour costs a handful of writes, not one per retry. A different message is a
//! different Event. Publishing never fails a reconcile: API errors are logged.
//!
//! Notes are truncated to the API's 1 kB; they carry sanitised error text, never values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::time::Instant;

use super::metrics::{EventLabels, Metrics};

/// A repeated Event's series is written back at most this often.
pub const SERIES_WRITE_INTERVAL: Duration = Duration::from_secs(300);
/// An Event not repeated for this long is forgotten (the next one is a new Event).
pub const FORGET_AFTER: Duration = Duration::from_secs(1800);
/// Longest note the API accepts.
pub const MAX_NOTE_BYTES: usize = 1024;
/// `reportingController` of every Event.
pub const REPORTING_CONTROLLER: &str = "kmsync.io/controller";

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as intended.
    Normal,
    /// Something failed.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// What to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason, e.g. `SecretSynced`, `StoreNotReady`.
    pub reason: &'static str,
    /// CamelCase action, e.g. `Sync`, `Check`, `Delete`.
    pub action: &'static str,
    /// Human-readable detail (sanitised; truncated to [`MAX_NOTE_BYTES`]).
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    type_: EventType,
    reason: &'static str,
    note: String,
}

struct Entry {
    namespace: String,
    name: String,
    count: i32,
    written_count: i32,
    last_written: Instant,
    last_seen: Instant,
}

/// Publishes Events (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    instance: String,
    cache: Arc<Mutex<HashMap<Key, Entry>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// `note` without what changes from one attempt to the next (request ids), so a repeated
/// failure is recognised as the same Event.
fn dedup_key(note: &str) -> String {
    let mut out = String::with_capacity(note.len());
    let mut rest = note;
    while let Some(i) = rest.find("RequestId") {
        let (head, tail) = rest.split_at(i + "RequestId".len());
        out.push_str(head);
        let tail = tail.trim_start_matches([' ', ':', '=', '"']);
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(tail.len());
        out.push_str(" *");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Cuts `note` to at most `MAX_NOTE_BYTES` at a character boundary.
fn truncate_note(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut cut = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    note
}

impl EventRecorder {
    /// A recorder reporting as `instance` (the pod name).
    pub fn new(client: kube::Client, instance: String, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            instance,
            cache: Arc::new(Mutex::new(HashMap::new())),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes `event` about `regarding` (Events of cluster-scoped objects go to `default`).
    pub async fn publish(&self, regarding: &ObjectReference, event: EventSpec) {
        let note = truncate_note(event.note);
        let key = Key {
            uid: regarding.uid.clone().unwrap_or_default(),
            type_: event.type_,
            reason: event.reason,
            note: dedup_key(&note),
        };
        let now = Instant::now();
        // Decide under the lock, write without it.
        enum Step {
            Create,
            Series {
                namespace: String,
                name: String,
                count: i32,
            },
            Nothing,
        }
        let step = {
            let mut cache = self.lock();
            cache.retain(|_, e| now.duration_since(e.last_seen) < FORGET_AFTER);
            match cache.get_mut(&key) {
                None => Step::Create,
                Some(entry) => {
                    entry.count += 1;
                    entry.last_seen = now;
                    if now.duration_since(entry.last_written) >= SERIES_WRITE_INTERVAL
                        && entry.count != entry.written_count
                    {
                        entry.last_written = now;
                        entry.written_count = entry.count;
                        Step::Series {
                            namespace: entry.namespace.clone(),
                            name: entry.name.clone(),
                            count: entry.count,
                        }
                    } else {
                        Step::Nothing
                    }
                }
            }
        };
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        match step {
            Step::Nothing => {}
            Step::Series {
                namespace,
                name,
                count,
            } => {
                let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: stamp },
                });
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(error = %e, event = %name, "could not update an Event series");
                }
            }
            Step::Create => {
                let namespace = regarding
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned());
                let object_name = regarding.name.clone().unwrap_or_else(|| "kmsync".into());
                let name = format!(
                    "{}.{:x}",
                    object_name,
                    k8s_openapi::jiff::Timestamp::now().as_nanosecond()
                );
                let ev = Event {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    action: Some(event.action.to_owned()),
                    reason: Some(event.reason.to_owned()),
                    note: Some(note),
                    type_: Some(event.type_.as_str().to_owned()),
                    event_time: Some(stamp),
                    regarding: Some(regarding.clone()),
                    reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
                    reporting_instance: Some(self.instance.clone()),
                    ..Event::default()
                };
                let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
                match api.create(&PostParams::default(), &ev).await {
                    Ok(_) => {
                        self.metrics
                            .events
                            .get_or_create(&EventLabels {
                                r#type: event.type_.as_str(),
                                reason: event.reason,
                            })
                            .inc();
                        self.lock().insert(
                            key,
                            Entry {
                                namespace,
                                name,
                                count: 1,
                                written_count: 1,
                                last_written: now,
                                last_seen: now,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, reason = event.reason, "could not publish an Event")
                    }
                }
            }
        }
    }

    /// Forgets every Event about the object `uid` (it was deleted).
    pub fn forget(&self, uid: &str) {
        self.lock().retain(|k, _| k.uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_do_not_make_a_repeated_failure_a_new_event() {
        let a = "reading failed: Rejected.Throttling (HTTP 429, RequestId 5ED1BC4F-6A35-4AF2): slow down";
        let b = "reading failed: Rejected.Throttling (HTTP 429, RequestId 0A1B2C3D-1111-2222): slow down";
        assert_eq!(dedup_key(a), dedup_key(b));
        assert_eq!(
            dedup_key(a),
            "reading failed: Rejected.Throttling (HTTP 429, RequestId *): slow down"
        );
        assert_ne!(
            dedup_key(a),
            dedup_key("reading failed: InternalFailure (HTTP 500, RequestId 1)")
        );
        assert_eq!(dedup_key("no ids here"), "no ids here");
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncate_note(note);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_note("short".into()), "short");
    }
}
