//! `metadata.managedFields` and server-side apply, after the model of
//! `sigs.k8s.io/structured-merge-diff` as kube-apiserver uses it:
//!
//! - a field set is a tree of path elements encoded as in `FieldsV1`: `f:<field>`,
//!   `k:{"type":"Ready"}` (an item of a keyed list), `v:"x"` (an item of a set), and `.`
//!   for "this node itself";
//! - `Apply` entries record exactly what a manager applied; fields it stops applying are
//!   removed unless another manager owns them; applying a different value to a field another
//!   manager owns is a conflict unless forced;
//! - `Update` entries (create, PUT, non-apply patches) take ownership of changed fields
//!   silently.
//!
//! List semantics come from the CRD schema (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`) and otherwise from the built-in types' conventions:
//! `metadata.finalizers` is a set, `metadata.ownerReferences` is keyed by `uid`,
//! `conditions` are keyed by `type`; other lists are atomic.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::status::{ApiError, Cause};

/// A set of field paths, as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Children by encoded path element (`f:data`, `k:{"uid":"..."}`, `v:"x"`).
    pub children: BTreeMap<String, FieldSet>,
    /// Whether this node itself is in the set (a leaf, or `.` in FieldsV1).
    pub member: bool,
}

/// A path: encoded elements from the object root.
pub type Path = Vec<String>;

impl FieldSet {
    /// True when nothing is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` (and marks it a member).
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for el in path {
            node = node.children.entry(el.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[String]) -> bool {
        let mut node = self;
        for el in path {
            match node.children.get(el) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.member
    }

    /// Removes `path` from the set (its descendants stay).
    pub fn remove(&mut self, path: &[String]) {
        fn go(node: &mut FieldSet, path: &[String]) {
            match path.split_first() {
                None => node.member = false,
                Some((first, rest)) => {
                    if let Some(child) = node.children.get_mut(first) {
                        go(child, rest);
                        if child.is_empty() {
                            node.children.remove(first);
                        }
                    }
                }
            }
        }
        go(self, path);
    }

    /// Every member path, depth first.
    pub fn paths(&self) -> Vec<Path> {
        fn go(node: &FieldSet, prefix: &mut Path, out: &mut Vec<Path>) {
            if node.member && !prefix.is_empty() {
                out.push(prefix.clone());
            }
            for (k, child) in &node.children {
                prefix.push(k.clone());
                go(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        go(self, &mut Vec::new(), &mut out);
        out
    }

    /// Members that are leaves (no members below them): the fields whose values matter.
    pub fn leaf_paths(&self) -> Vec<Path> {
        self.paths()
            .into_iter()
            .filter(|p| {
                let mut node = self;
                for el in p {
                    node = &node.children[el];
                }
                node.children.values().all(FieldSet::is_empty)
            })
            .collect()
    }

    /// The FieldsV1 JSON encoding.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, child) in &self.children {
            if !child.is_empty() {
                m.insert(k.clone(), child.to_json());
            }
        }
        Value::Object(m)
    }

    /// Decodes FieldsV1 JSON (a node present in the JSON is a member when it is a leaf or
    /// has a `.` child).
    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Some(m) = v.as_object() {
            for (k, child) in m {
                if k == "." {
                    set.member = true;
                    continue;
                }
                let mut c = FieldSet::from_json(child);
                if child.as_object().is_none_or(Map::is_empty) {
                    c.member = true;
                }
                set.children.insert(k.clone(), c);
            }
        }
        set
    }
}

/// How a list is merged and tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced as a whole; one owner.
    Atomic,
    /// A set of scalars; each value owned separately.
    Set,
    /// Items keyed by these fields; each item owned separately.
    Map(Vec<String>),
}

/// Which list/map semantics apply where: the CRD schema if any, then conventions.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a>(pub Option<&'a Value>);

impl<'a> Schema<'a> {
    fn field(self, name: &str) -> Schema<'a> {
        Schema(self.0.and_then(|s| {
            s.get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        }))
    }

    fn items(self) -> Schema<'a> {
        Schema(self.0.and_then(|s| s.get("items")))
    }

    fn map_is_atomic(self) -> bool {
        self.0
            .and_then(|s| s.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "atomic")
    }

    fn list_kind(self, names: &[&str], list: &[Value]) -> ListKind {
        if let Some(s) = self.0 {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("atomic") => return ListKind::Atomic,
                Some("set") => return ListKind::Set,
                Some("map") => {
                    let keys = s
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    return ListKind::Map(keys);
                }
                _ => {}
            }
        }
        match names {
            ["metadata", "finalizers"] => ListKind::Set,
            ["metadata", "ownerReferences"] => ListKind::Map(vec!["uid".into()]),
            [.., "conditions"]
                if list
                    .iter()
                    .all(|i| i.get("type").is_some_and(Value::is_string)) =>
            {
                ListKind::Map(vec!["type".into()])
            }
            _ => ListKind::Atomic,
        }
    }
}

/// `k:{"type":"Ready"}` for a keyed list item.
fn key_element(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(m)))
}

/// Fields of the object that are never tracked (`stripmeta` in the fieldmanager).
fn stripped(names: &[&str]) -> bool {
    matches!(
        names,
        ["apiVersion"]
            | ["kind"]
            | ["metadata", "name"]
            | ["metadata", "namespace"]
            | ["metadata", "uid"]
            | ["metadata", "resourceVersion"]
            | ["metadata", "generation"]
            | ["metadata", "creationTimestamp"]
            | ["metadata", "deletionTimestamp"]
            | ["metadata", "deletionGracePeriodSeconds"]
            | ["metadata", "managedFields"]
            | ["metadata", "selfLink"]
    )
}

/// Which part of an object a write may own: the main resource or the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (resources without a status subresource).
    Whole,
    /// Everything but `.status` (main resource of a type with a status subresource).
    NoStatus,
    /// Only `.status` (the status subresource).
    StatusOnly,
}

impl Scope {
    fn excludes(self, top: &str) -> bool {
        match self {
            Scope::Whole => false,
            Scope::NoStatus => top == "status",
            Scope::StatusOnly => top != "status",
        }
    }
}

/// The field set of an object: every field it sets, at the granularity above. With
/// `maps_are_members`, map nodes are members too (as `Update` entries record them).
pub fn field_set(
    obj: &Value,
    schema: Schema<'_>,
    scope: Scope,
    maps_are_members: bool,
) -> FieldSet {
    fn walk(
        v: &Value,
        schema: Schema<'_>,
        names: &mut Vec<String>,
        node: &mut FieldSet,
        maps: bool,
    ) {
        match v {
            Value::Object(m) if !schema.map_is_atomic() => {
                // `metadata` itself is never owned, only fields below it.
                if m.is_empty() || (maps && names.as_slice() != ["metadata"]) {
                    node.member = true;
                }
                for (k, child) in m {
                    names.push(k.clone());
                    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                    if !stripped(&refs) {
                        let sub = node.children.entry(format!("f:{k}")).or_default();
                        walk(child, schema.field(k), names, sub, maps);
                    }
                    names.pop();
                }
            }
            Value::Array(items) => {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                match schema.list_kind(&refs, items) {
                    ListKind::Atomic => node.member = true,
                    ListKind::Set => {
                        if items.is_empty() {
                            node.member = true;
                        }
                        for item in items {
                            node.children.entry(format!("v:{item}")).or_default().member = true;
                        }
                    }
                    ListKind::Map(keys) => {
                        if items.is_empty() {
                            node.member = true;
                        }
                        for item in items {
                            match key_element(item, &keys) {
                                Some(el) => {
                                    let sub = node.children.entry(el).or_default();
                                    walk(item, schema.items(), names, sub, maps);
                                    sub.member = true;
                                }
                                None => node.member = true,
                            }
                        }
                    }
                }
            }
            _ => node.member = true,
        }
    }
    let mut root = FieldSet::default();
    if let Some(m) = obj.as_object() {
        for (k, child) in m {
            if stripped(&[k.as_str()]) || scope.excludes(k) {
                continue;
            }
            let mut names = vec![k.clone()];
            let sub = root.children.entry(format!("f:{k}")).or_default();
            walk(child, schema.field(k), &mut names, sub, maps_are_members);
        }
    }
    root.children.retain(|_, c| !c.is_empty());
    root
}

fn find_item(items: &[Value], el: &str) -> Option<usize> {
    if let Some(raw) = el.strip_prefix("v:") {
        let want: Value = serde_json::from_str(raw).ok()?;
        return items.iter().position(|i| *i == want);
    }
    if let Some(raw) = el.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(raw).ok()?;
        return items
            .iter()
            .position(|i| want.iter().all(|(k, v)| i.get(k) == Some(v)));
    }
    None
}

/// The value at `path`, if present.
pub fn get_at<'v>(obj: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = obj;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.as_object()?.get(f)?
        } else {
            let items = cur.as_array()?;
            &items[find_item(items, el)?]
        };
    }
    Some(cur)
}

/// Removes the value at `path`; returns whether something was removed.
pub fn remove_at(obj: &mut Value, path: &[String]) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut cur = obj;
    for el in parent_path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            match cur.as_object_mut().and_then(|m| m.get_mut(f)) {
                Some(v) => v,
                None => return false,
            }
        } else {
            let Some(items) = cur.as_array_mut() else {
                return false;
            };
            let Some(i) = find_item(items, el) else {
                return false;
            };
            &mut items[i]
        };
    }
    if let Some(f) = last.strip_prefix("f:") {
        cur.as_object_mut().and_then(|m| m.remove(f)).is_some()
    } else if let Some(items) = cur.as_array_mut() {
        match find_item(items, last) {
            Some(i) => {
                items.remove(i);
                true
            }
            None => false,
        }
    } else {
        false
    }
}

/// Human form of a path for conflict messages: `.data.key`, `.status.conditions[type="Ready"]`,
/// `.metadata.finalizers[="x"]`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(v) = el.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(k) = el.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else {
            out.push_str(&format!("[{el}]"));
        }
    }
    out
}

/// Merges an applied configuration into an object: maps merge key by key, keyed lists merge
/// item by item, sets take the union, everything else is replaced.
pub fn merge_applied(
    target: &mut Value,
    applied: &Value,
    schema: Schema<'_>,
    names: &mut Vec<String>,
) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) if !schema.map_is_atomic() => {
            for (k, av) in a {
                names.push(k.clone());
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                if !stripped(&refs) {
                    match t.get_mut(k) {
                        Some(tv) => merge_applied(tv, av, schema.field(k), names),
                        None => {
                            t.insert(k.clone(), av.clone());
                        }
                    }
                }
                names.pop();
            }
        }
        (Value::Array(t), Value::Array(a)) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match schema.list_kind(&refs, a) {
                ListKind::Atomic => *t = a.clone(),
                ListKind::Set => {
                    for item in a {
                        if !t.contains(item) {
                            t.push(item.clone());
                        }
                    }
                }
                ListKind::Map(keys) => {
                    for item in a {
                        let pos = key_element(item, &keys).and_then(|el| find_item(t, &el));
                        match pos {
                            Some(i) => merge_applied(&mut t[i], item, schema.items(), names),
                            None => t.push(item.clone()),
                        }
                    }
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// Removes maps left empty by field removal, below `path`'s parents.
fn prune_empty_parents(obj: &mut Value, path: &[String], keep: &FieldSet) {
    for depth in (1..path.len()).rev() {
        let parent = &path[..depth];
        let empty = get_at(obj, parent).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
        if empty && !keep.contains(parent) {
            remove_at(obj, parent);
        } else {
            break;
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion the manager wrote with.
    pub api_version: String,
    /// RFC 3339 time of the manager's last change.
    pub time: String,
    /// `""` or `status`.
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        m.insert("time".into(), json!(self.time));
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn same_slot(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// Reads `metadata.managedFields` (malformed entries are dropped, as the real server resets
/// unparseable managed fields).
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let operation = s("operation");
            if operation != "Apply" && operation != "Update" {
                return None;
            }
            Some(Entry {
                manager: s("manager"),
                operation,
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: FieldSet::from_json(e.get("fieldsV1").unwrap_or(&Value::Null)),
            })
        })
        .collect()
}

/// Writes entries into `metadata.managedFields` (removing the key when there are none).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who is writing, for managed-fields bookkeeping.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// Field manager.
    pub manager: &'a str,
    /// `""` or `status`.
    pub subresource: &'a str,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// Current time, RFC 3339.
    pub now: &'a str,
}

/// Records an `Update` (create, PUT or non-apply patch) by `w` that turned `old` into `new`:
/// changed and added fields move to `w`'s Update entry, removed fields leave every entry.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    schema: Schema<'_>,
    scope: Scope,
    w: Writer<'_>,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_set = field_set(new, schema, scope, true);
    let old_set = old
        .map(|o| field_set(o, schema, scope, true))
        .unwrap_or_default();
    let mut changed = FieldSet::default();
    for p in new_set.paths() {
        let before = old.and_then(|o| get_at(o, &p));
        let after = get_at(new, &p);
        let is_leaf = {
            let mut n = &new_set;
            for el in &p {
                n = &n.children[el];
            }
            n.children.values().all(FieldSet::is_empty)
        };
        if before.is_none() || (is_leaf && before != after) {
            changed.insert(&p);
        }
    }
    let removed: Vec<Path> = old_set
        .paths()
        .into_iter()
        .filter(|p| get_at(new, p).is_none())
        .collect();
    for e in &mut entries {
        for p in changed.paths() {
            if !e.same_slot(w.manager, "Update", w.subresource) {
                e.fields.remove(&p);
            }
        }
        for p in &removed {
            e.fields.remove(p);
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_slot(w.manager, "Update", w.subresource))
        {
            Some(e) => {
                for p in changed.paths() {
                    e.fields.insert(&p);
                }
                e.time = w.now.to_string();
                e.api_version = w.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: w.manager.to_string(),
                operation: "Update".into(),
                api_version: w.api_version.to_string(),
                time: w.now.to_string(),
                subresource: w.subresource.to_string(),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    write_entries(new, &entries);
}

/// Server-side apply of `applied` by `w` onto `live` (`None`: the object is being created).
/// Returns the new object with its managedFields, or a 409 listing every conflict.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    schema: Schema<'_>,
    scope: Scope,
    force: bool,
    w: Writer<'_>,
) -> Result<Value, ApiError> {
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    let mut entries = read_entries(live_v);
    let applied_set = field_set(applied, schema, scope, false);
    let mine = |e: &Entry| e.same_slot(w.manager, "Apply", w.subresource);

    // Conflicts: a field another manager owns, applied with a different value.
    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for e in entries.iter().filter(|e| !mine(e)) {
        for p in applied_set.leaf_paths() {
            if e.fields.contains(&p) && get_at(live_v, &p) != get_at(applied, &p) {
                conflicts.push((manager_label(e), p));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    if force {
        for e in entries.iter_mut().filter(|e| !mine(e)) {
            for (_, p) in &conflicts {
                e.fields.remove(p);
            }
        }
    }

    // Fields this manager applied before but not now, owned by nobody else, go away.
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut others = FieldSet::default();
    for e in entries.iter().filter(|e| !mine(e)) {
        for p in e.fields.paths() {
            others.insert(&p);
        }
    }
    let mut new = live_v.clone();
    let mut dropped: Vec<Path> = previous
        .paths()
        .into_iter()
        .filter(|p| !applied_set.contains(p) && !others.contains(p))
        .collect();
    // Remove deepest paths first so list items and maps go after their contents.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in &dropped {
        let mut owned_below = false;
        if let Some(v) = get_at(&new, p)
            && (v.is_object() || v.is_array())
        {
            // Keep containers that still hold fields someone owns.
            let mut probe = FieldSet::default();
            for q in others.paths().into_iter().chain(applied_set.paths()) {
                if q.len() > p.len() && q.starts_with(p) {
                    probe.insert(&q);
                }
            }
            owned_below = !probe.is_empty();
        }
        if !owned_below && remove_at(&mut new, p) {
            let mut keep = others.clone();
            for q in applied_set.paths() {
                keep.insert(&q);
            }
            prune_empty_parents(&mut new, p, &keep);
        }
    }

    let mut scoped = applied.clone();
    if let Some(m) = scoped.as_object_mut() {
        m.retain(|k, _| k == "metadata" || k == "apiVersion" || k == "kind" || !scope.excludes(k));
        if scope == Scope::StatusOnly
            && let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.retain(|k, _| k == "name" || k == "namespace");
        }
    }
    merge_applied(&mut new, &scoped, schema, &mut Vec::new());

    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if e.fields != applied_set || live.is_none() {
                e.time = w.now.to_string();
            }
            e.fields = applied_set;
            e.api_version = w.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: w.subresource.to_string(),
            fields: applied_set,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    write_entries(&mut new, &entries);
    Ok(new)
}

/// `"name"` for Apply managers, `"name" using v1` for Update managers (the real format also
/// appends the time of Update entries).
fn manager_label(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if !e.subresource.is_empty() {
        s.push_str(&format!(" with subresource {:?}", e.subresource));
    }
    if e.operation == "Update" {
        s.push_str(&format!(" using {}", e.api_version));
        if !e.time.is_empty() {
            s.push_str(&format!(" at {}", e.time));
        }
    }
    s
}

fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|(m, p)| Cause {
            reason: "FieldManagerConflict",
            message: format!("conflict with {m}"),
            field: path_string(p),
        })
        .collect();
    let message = if let [(m, p)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {m}: {}",
            path_string(p)
        )
    } else {
        let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by_manager.entry(m).or_default().push(path_string(p));
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(causes, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            now: NOW,
        }
    }

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}, "data": data})
    }

    #[test]
    fn field_set_tracks_map_keys_finalizers_owner_refs_and_conditions() {
        let obj = json!({
            "metadata": {"name": "x", "labels": {"a": "1"}, "finalizers": ["f1"],
                "ownerReferences": [{"uid": "u1", "name": "o", "kind": "K", "apiVersion": "v1"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let set = field_set(&obj, Schema(None), Scope::Whole, false);
        let enc = set.to_json();
        assert_eq!(enc["f:metadata"]["f:labels"]["f:a"], json!({}));
        assert_eq!(enc["f:metadata"]["f:finalizers"]["v:\"f1\""], json!({}));
        assert_eq!(
            enc["f:metadata"]["f:ownerReferences"]["k:{\"uid\":\"u1\"}"]["."],
            json!({})
        );
        assert_eq!(
            enc["f:status"]["f:conditions"]["k:{\"type\":\"Ready\"}"]["f:status"],
            json!({})
        );
        assert!(enc["f:metadata"].get("f:name").is_none());
        assert_eq!(FieldSet::from_json(&enc), set);
    }

    #[test]
    fn apply_conflicts_on_a_field_owned_by_another_manager_with_another_value() {
        let a = apply(
            None,
            &secret(json!({"k": "YQ=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("a"),
        )
        .unwrap();
        let e = apply(
            Some(&a),
            &secret(json!({"k": "Yg=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("b"),
        )
        .unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            r#"Apply failed with 1 conflict: conflict with "a": .data.k"#
        );
        // Same value: shared ownership, no conflict.
        let shared = apply(
            Some(&a),
            &secret(json!({"k": "YQ=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("b"),
        );
        assert_eq!(read_entries(&shared.unwrap()).len(), 2);
        // Forced: b takes the field, a loses it.
        let forced = apply(
            Some(&a),
            &secret(json!({"k": "Yg=="})),
            Schema(None),
            Scope::Whole,
            true,
            w("b"),
        )
        .unwrap();
        let entries = read_entries(&forced);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "b");
        assert_eq!(forced["data"]["k"], "Yg==");
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed_unless_owned_elsewhere() {
        let a = apply(
            None,
            &secret(json!({"k1": "MQ==", "k2": "Mg=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("a"),
        )
        .unwrap();
        let b = apply(
            Some(&a),
            &secret(json!({"k2": "Mg=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("b"),
        )
        .unwrap();
        let bare = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        let a2 = apply(Some(&b), &bare, Schema(None), Scope::Whole, false, w("a")).unwrap();
        assert_eq!(a2["data"], json!({"k2": "Mg=="}));
        let b2 = apply(Some(&a2), &bare, Schema(None), Scope::Whole, false, w("b")).unwrap();
        assert!(b2.get("data").is_none(), "{b2}");
    }

    #[test]
    fn update_takes_ownership_of_changed_fields_silently() {
        let a = apply(
            None,
            &secret(json!({"k": "YQ=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("a"),
        )
        .unwrap();
        let mut new = a.clone();
        new["data"]["k"] = json!("Yg==");
        record_update(Some(&a), &mut new, Schema(None), Scope::Whole, w("editor"));
        let entries = read_entries(&new);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].manager, "editor");
        assert_eq!(entries[0].operation, "Update");
        let e = apply(
            Some(&new),
            &secret(json!({"k": "YQ=="})),
            Schema(None),
            Scope::Whole,
            false,
            w("a"),
        )
        .unwrap_err();
        assert!(
            e.message.contains(r#"conflict with "editor" using v1"#),
            "{}",
            e.message
        );
    }

    #[test]
    fn keyed_list_items_merge_by_key() {
        let schema = Schema(None);
        let mut live = json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}});
        merge_applied(
            &mut live,
            &json!({"status": {"conditions": [{"type": "B", "status": "True"}]}}),
            schema,
            &mut Vec::new(),
        );
        assert_eq!(live["status"]["conditions"][1]["status"], "True");
        assert_eq!(live["status"]["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(
            path_string(&[
                "f:status".into(),
                "f:conditions".into(),
                r#"k:{"type":"A"}"#.into()
            ]),
            r#".status.conditions[type="A"]"#
        );
    }
}
