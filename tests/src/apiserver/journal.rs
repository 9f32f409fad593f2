//! The request log (what tests read to count writes and to compare against RBAC rules) and
//! the fault switches (fail the next N matching requests, add latency).

use std::sync::Mutex;
use std::time::Duration;

/// One served request, with the fields of kube-apiserver's `RequestInfo` plus the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource URLs the lowercase HTTP method.
    pub verb: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Resource (plural), empty for non-resource URLs.
    pub resource: String,
    /// Subresource (`status`, `token`, ...), empty if none.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped or all-namespaces requests.
    pub namespace: String,
    /// Object name, empty for collection requests.
    pub name: String,
    /// HTTP status code returned (200 for watches that started).
    pub status: u16,
    /// `fieldManager` query parameter, if given.
    pub field_manager: Option<String>,
    /// `Content-Type` of the request body, if any.
    pub content_type: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Whether `dryRun=All` was set.
    pub dry_run: bool,
    /// Whether the response was produced by a fault switch.
    pub injected: bool,
}

impl RequestRecord {
    /// True for verbs that change state (create, update, patch, delete, deletecollection).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// A fault: the next `times` requests matching `verb` / `resource` fail with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// HTTP status to answer with (a matching `Status` body is generated).
    pub status: u16,
    /// How many matching requests fail.
    pub times: usize,
    /// Only requests with this verb (e.g. `update`), if set.
    pub verb: Option<String>,
    /// Only requests for this resource (plural, e.g. `secrets`), if set.
    pub resource: Option<String>,
    /// Only requests for this subresource (e.g. `status`), if set.
    pub subresource: Option<String>,
    /// `Status.message`; a default naming the fault is used when empty.
    pub message: String,
}

impl Fault {
    /// Fail the next `times` requests (any verb, any resource) with `status`.
    pub fn new(status: u16, times: usize) -> Self {
        Fault {
            status,
            times,
            verb: None,
            resource: None,
            subresource: None,
            message: String::new(),
        }
    }

    /// Only count requests with this verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }

    /// Only count requests for this resource (plural).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    /// Only count requests for this subresource.
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_string());
        self
    }

    /// Use this `Status.message`.
    pub fn message(mut self, message: &str) -> Self {
        self.message = message.to_string();
        self
    }

    fn matches(&self, verb: &str, resource: &str, subresource: &str) -> bool {
        self.times > 0
            && self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
            && self.subresource.as_deref().is_none_or(|s| s == subresource)
    }
}

/// Request log and fault switches, shared by the server and its handle.
#[derive(Debug, Default)]
pub struct Journal {
    log: Mutex<Vec<RequestRecord>>,
    faults: Mutex<Vec<Fault>>,
    latency: Mutex<Duration>,
}

impl Journal {
    /// Appends a record.
    pub fn record(&self, r: RequestRecord) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }

    /// A copy of the log.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records appended so far.
    pub fn len(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when nothing was recorded (or the log was cleared).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the records from index `from` on (cheaper than a whole snapshot of a long log).
    pub fn since(&self, from: usize) -> Vec<RequestRecord> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.get(from..)
            .map(<[RequestRecord]>::to_vec)
            .unwrap_or_default()
    }

    /// Empties the log.
    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Adds a fault.
    pub fn add_fault(&self, f: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Consumes one use of the first fault matching this request, if any.
    pub fn take_fault(&self, verb: &str, resource: &str, subresource: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let f = faults
            .iter_mut()
            .find(|f| f.matches(verb, resource, subresource))?;
        f.times -= 1;
        let out = f.clone();
        faults.retain(|f| f.times > 0);
        Some(out)
    }

    /// Sets the latency added before every request is handled.
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// The current added latency.
    pub fn latency(&self) -> Duration {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_match_verb_and_resource_and_run_out() {
        let j = Journal::default();
        j.add_fault(Fault::new(500, 2).verb("update").resource("secrets"));
        assert!(j.take_fault("get", "secrets", "").is_none());
        assert!(j.take_fault("update", "configmaps", "").is_none());
        assert_eq!(j.take_fault("update", "secrets", "").unwrap().status, 500);
        assert!(j.take_fault("update", "secrets", "").is_some());
        assert!(j.take_fault("update", "secrets", "").is_none());
    }
}
