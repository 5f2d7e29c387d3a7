//! An in-process server that speaks the real Kubernetes HTTP API for the
//! resources `syva k8s` uses (pods, syvazonepolicies, leases), so the
//! adapter runs its real client code against it through a kubeconfig:
//! list and watch with resourceVersion, bookmarks and 410 Gone after
//! compaction; get/create/replace/delete; the status subresource; JSON merge
//! and strategic merge patches (as merge patches) and server-side apply with
//! per-manager field ownership, 409 conflicts and force. Also used by the
//! `k8sfake` example that the VM test runs in the guest.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

/// One served resource type.
#[derive(Debug)]
pub struct ResDef {
    /// "api/v1" or "apis/<group>/<version>".
    pub prefix: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub api_version: &'static str,
    pub namespaced: bool,
    pub status_sub: bool,
    /// Lists merged by key (x-kubernetes-list-type: map): (field path, key).
    pub list_keys: &'static [(&'static str, &'static str)],
}

pub const RESOURCES: &[ResDef] = &[
    ResDef {
        prefix: "api/v1",
        plural: "pods",
        kind: "Pod",
        api_version: "v1",
        namespaced: true,
        status_sub: true,
        list_keys: &[
            ("spec.containers", "name"),
            ("status.conditions", "type"),
            ("status.containerStatuses", "name"),
        ],
    },
    ResDef {
        prefix: "apis/syva.dev/v1alpha1",
        plural: "syvazonepolicies",
        kind: "SyvaZonePolicy",
        api_version: "syva.dev/v1alpha1",
        namespaced: false,
        status_sub: true,
        list_keys: &[
            ("spec.hostPaths", "path"),
            ("status.conditions", "type"),
            ("status.nodes", "node"),
            ("status.nodes.conditions", "type"),
        ],
    },
    ResDef {
        prefix: "apis/coordination.k8s.io/v1",
        plural: "leases",
        kind: "Lease",
        api_version: "coordination.k8s.io/v1",
        namespaced: true,
        status_sub: false,
        list_keys: &[],
    },
];

fn res(prefix: &str, plural: &str) -> Option<&'static ResDef> {
    RESOURCES
        .iter()
        .find(|r| r.prefix == prefix && r.plural == plural)
}

fn res_by_plural(plural: &str) -> &'static ResDef {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .expect("served resource")
}

type Key = (&'static str, String, String);

/// A field path: object fields and keyed list elements.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Field(String),
    /// List element whose `key` field equals the value (JSON text).
    Elem {
        key: String,
        value: String,
    },
}

type FieldPath = Vec<Seg>;

#[derive(Debug, Clone)]
struct Object {
    value: Value,
    /// Leaf field -> managers owning it.
    owners: BTreeMap<FieldPath, BTreeSet<String>>,
}

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    res: &'static str,
    kind: &'static str,
    old: Option<Value>,
    new: Value,
}

#[derive(Debug, Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<Key, Object>,
    history: Vec<Arc<Change>>,
    /// Watches from a resourceVersion below this get 410 Gone.
    oldest: u64,
    seq: u64,
}

#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    changes: broadcast::Sender<Arc<Change>>,
    /// Bumped to close every open watch (as an API server restart would).
    drop_watches: watch::Sender<u64>,
    /// While true, new watch requests wait (a client that cannot reach the
    /// server for a while).
    paused: watch::Sender<bool>,
    bookmark_every: Duration,
    requests: Mutex<Vec<String>>,
}

/// A running fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub causes: Vec<Value>,
}

fn err(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        reason,
        message: message.into(),
        causes: Vec::new(),
    }
}

impl ApiError {
    fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code, "details": { "causes": self.causes },
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.status())).into_response()
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl FakeApi {
    /// Serve on 127.0.0.1 on a free port (or `addr`).
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Duration::from_secs(1)).await
    }

    pub async fn start_on(addr: SocketAddr, bookmark_every: Duration) -> Self {
        let (changes, _) = broadcast::channel(4096);
        let (drop_watches, _) = watch::channel(0);
        let (paused, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                rv: 100,
                ..Default::default()
            }),
            changes,
            drop_watches,
            paused,
            bookmark_every,
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let s = shared.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(s, method, uri, headers, body).await }
            },
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        FakeApi { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at this server.
    pub fn write_kubeconfig(&self, path: &Path) {
        write_kubeconfig(&self.url(), path);
    }

    /// Forget history: watches from older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        let mut st = self.shared.store.lock().unwrap();
        st.oldest = st.rv + 1;
        st.history.clear();
    }

    /// Close every open watch (clients re-watch from their last version).
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
    }

    /// Close every watch and hold new ones until `resume_watches`: changes
    /// made meanwhile reach clients only through their next watch or list.
    pub fn pause_watches(&self) {
        self.shared.paused.send_replace(true);
        self.drop_watches();
    }

    pub fn resume_watches(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Request lines seen so far ("GET /api/v1/pods?...").
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let r = res_by_plural(plural);
        let st = self.shared.store.lock().unwrap();
        st.objects
            .get(&(r.plural, ns.to_owned(), name.to_owned()))
            .map(|o| o.value.clone())
    }

    pub fn create(&self, plural: &str, obj: Value) -> Result<Value, ApiError> {
        let r = res_by_plural(plural);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        create(&self.shared, r, &ns, obj)
    }

    /// Merge-patch an object (or its status with `status`).
    pub fn merge(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        patch: Value,
        status: bool,
    ) -> Result<Value, ApiError> {
        let r = res_by_plural(plural);
        patch_object(
            &self.shared,
            r,
            ns,
            name,
            status,
            PatchKind::Merge,
            &patch,
            "test",
            false,
        )
    }

    pub fn delete(&self, plural: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
        let r = res_by_plural(plural);
        delete(&self.shared, r, ns, name)
    }

    /// The managers owning fields of an object, e.g. for status entries.
    pub fn managers(&self, plural: &str, ns: &str, name: &str) -> BTreeSet<String> {
        let r = res_by_plural(plural);
        let st = self.shared.store.lock().unwrap();
        st.objects
            .get(&(r.plural, ns.to_owned(), name.to_owned()))
            .map(|o| o.owners.values().flatten().cloned().collect())
            .unwrap_or_default()
    }
}

pub fn write_kubeconfig(server: &str, path: &Path) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
         current-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

struct Req<'a> {
    res: &'static ResDef,
    ns: String,
    name: Option<String>,
    sub: Option<&'a str>,
}

fn parse_path(path: &str) -> Option<Req<'_>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("api/v1".to_owned(), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => ((*ns).to_owned(), rest),
        rest => (String::new(), rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some((*n).to_owned()), None),
        [p, n, s] => (*p, Some((*n).to_owned()), Some(*s)),
        _ => return None,
    };
    let res = res(&prefix, plural)?;
    // Cluster-scoped: no namespace; namespaced: one, except to list all.
    if (!res.namespaced && !ns.is_empty()) || (res.namespaced && ns.is_empty() && name.is_some()) {
        return None;
    }
    Some(Req { res, ns, name, sub })
}

async fn handle(
    s: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut log = s.requests.lock().unwrap();
        // Bounded: long runs (the VM guest, benchmarks) keep the newest.
        if log.len() >= 10_000 {
            log.drain(..5_000);
        }
        log.push(format!(
            "{method} {}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
        ));
    }
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let Some(req) = parse_path(uri.path()) else {
        return err(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
        )
        .into_response();
    };
    if req
        .sub
        .is_some_and(|s| s != "status" || !req.res.status_sub)
    {
        return err(404, "NotFound", "no such subresource").into_response();
    }
    let status_sub = req.sub == Some("status");
    let r = req.res;
    let result: Result<Value, ApiError> = match (&method, &req.name) {
        (&Method::GET, None) => {
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                let mut paused = s.paused.subscribe();
                // The sender lives as long as the server.
                let _ = paused.wait_for(|p| !*p).await;
                return watch_response(s, r, &req.ns, &query);
            }
            list(&s, r, &req.ns, &query)
        }
        (&Method::GET, Some(name)) => get(&s, r, &req.ns, name),
        (&Method::POST, None) => parse_body(&body).and_then(|obj| create(&s, r, &req.ns, obj)),
        (&Method::PUT, Some(name)) => {
            parse_body(&body).and_then(|obj| replace(&s, r, &req.ns, name, status_sub, obj))
        }
        (&Method::PATCH, Some(name)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = match ct.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    Ok(PatchKind::Merge)
                }
                "application/apply-patch+yaml" => Ok(PatchKind::Apply),
                other => Err(err(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    ),
                )),
            };
            let manager = query.get("fieldManager").cloned();
            let force = query.get("force").is_some_and(|v| v == "true");
            kind.and_then(|kind| {
                let patch = match kind {
                    PatchKind::Apply => serde_yaml_ng::from_slice::<Value>(&body)
                        .map_err(|e| err(400, "BadRequest", format!("error decoding YAML: {e}"))),
                    PatchKind::Merge => parse_body(&body),
                }?;
                if kind == PatchKind::Apply && manager.is_none() {
                    return Err(err(
                        400,
                        "BadRequest",
                        "PATCH, fieldManager is required for apply requests",
                    ));
                }
                patch_object(
                    &s,
                    r,
                    &req.ns,
                    name,
                    status_sub,
                    kind,
                    &patch,
                    manager.as_deref().unwrap_or("unknown"),
                    force,
                )
            })
        }
        (&Method::DELETE, Some(name)) => delete(&s, r, &req.ns, name),
        _ => Err(err(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
        )),
    };
    match result {
        Ok(v) => {
            let code = if method == Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, axum::Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| err(400, "BadRequest", format!("error decoding JSON: {e}")))
}

fn key(r: &'static ResDef, ns: &str, name: &str) -> Key {
    (r.plural, ns.to_owned(), name.to_owned())
}

fn with_type(r: &ResDef, mut v: Value) -> Value {
    v["apiVersion"] = json!(r.api_version);
    v["kind"] = json!(r.kind);
    v
}

/// labelSelector / fieldSelector: comma-separated terms of k=v, k==v,
/// k!=v, k (exists) and !k.
fn selector_matches(sel: &str, get: impl Fn(&str) -> Option<String>) -> bool {
    sel.split(',').filter(|t| !t.trim().is_empty()).all(|term| {
        let term = term.trim();
        if let Some((k, v)) = term.split_once("!=") {
            get(k.trim()).as_deref() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k.trim()).as_deref() == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(term).is_some()
        }
    })
}

fn matches(obj: &Value, ns: &str, query: &BTreeMap<String, String>) -> bool {
    if !ns.is_empty() && obj["metadata"]["namespace"].as_str() != Some(ns) {
        return false;
    }
    if let Some(sel) = query.get("labelSelector") {
        let labels = &obj["metadata"]["labels"];
        if !selector_matches(sel, |k| labels[k].as_str().map(str::to_owned)) {
            return false;
        }
    }
    if let Some(sel) = query.get("fieldSelector") {
        let field = |path: &str| {
            let mut v = obj;
            for p in path.split('.') {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        if !selector_matches(sel, field) {
            return false;
        }
    }
    true
}

fn list(
    s: &Shared,
    r: &'static ResDef,
    ns: &str,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let st = s.store.lock().unwrap();
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|((p, _, _), o)| *p == r.plural && matches(&o.value, ns, query))
        .map(|(_, o)| o.value.clone())
        .collect();
    Ok(json!({
        "apiVersion": r.api_version,
        "kind": format!("{}List", r.kind),
        "metadata": { "resourceVersion": st.rv.to_string() },
        "items": items,
    }))
}

fn get(s: &Shared, r: &'static ResDef, ns: &str, name: &str) -> Result<Value, ApiError> {
    let st = s.store.lock().unwrap();
    st.objects
        .get(&key(r, ns, name))
        .map(|o| o.value.clone())
        .ok_or_else(|| not_found(r, name))
}

fn not_found(r: &ResDef, name: &str) -> ApiError {
    err(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", r.plural),
    )
}

fn commit(
    s: &Shared,
    st: &mut Store,
    r: &'static ResDef,
    kind: &'static str,
    old: Option<Value>,
    new: Value,
) {
    let c = Arc::new(Change {
        rv: st.rv,
        res: r.plural,
        kind,
        old,
        new,
    });
    st.history.push(c.clone());
    // Nobody watching is fine.
    let _ = s.changes.send(c);
}

fn create(s: &Shared, r: &'static ResDef, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| err(422, "Invalid", "metadata.name: Required value"))?
        .to_owned();
    if r.namespaced && ns.is_empty() {
        return Err(err(422, "Invalid", "metadata.namespace: Required value"));
    }
    let mut st = s.store.lock().unwrap();
    let k = key(r, ns, &name);
    if st.objects.contains_key(&k) {
        return Err(err(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.plural),
        ));
    }
    st.rv += 1;
    st.seq += 1;
    let meta = obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| err(400, "BadRequest", "metadata must be an object"))?;
    meta.insert("resourceVersion".into(), json!(st.rv.to_string()));
    meta.insert(
        "uid".into(),
        json!(format!("00000000-0000-4000-8000-{:012x}", st.seq)),
    );
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if r.namespaced {
        meta.insert("namespace".into(), json!(ns));
    }
    if r.status_sub {
        obj.as_object_mut().unwrap().remove("status");
    }
    let obj = with_type(r, obj);
    st.objects.insert(
        k,
        Object {
            value: obj.clone(),
            owners: BTreeMap::new(),
        },
    );
    commit(s, &mut st, r, "ADDED", None, obj.clone());
    Ok(obj)
}

/// Keep what the endpoint may not change: status on the main resource,
/// everything but status on the status subresource; bump generation when
/// the spec changed.
fn finalize(r: &ResDef, old: &Value, new: &mut Value, status_sub: bool) {
    if r.status_sub {
        let o = new.as_object_mut().unwrap();
        if status_sub {
            let status = o.remove("status");
            *new = old.clone();
            match status {
                Some(st) => new["status"] = st,
                None => {
                    new.as_object_mut().unwrap().remove("status");
                }
            }
        } else {
            o.remove("status");
            if let Some(st) = old.get("status") {
                new["status"] = st.clone();
            }
        }
    }
    for f in [
        "uid",
        "creationTimestamp",
        "generation",
        "name",
        "namespace",
        "resourceVersion",
    ] {
        match old["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    if old.get("spec") != new.get("spec") {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
    }
}

fn store_update(
    s: &Shared,
    st: &mut Store,
    r: &'static ResDef,
    k: &Key,
    mut new: Value,
    owners: BTreeMap<FieldPath, BTreeSet<String>>,
) -> Value {
    let old = st.objects[k].value.clone();
    if new == old {
        st.objects.get_mut(k).unwrap().owners = owners;
        return old; // no-op: no new version, no event
    }
    st.rv += 1;
    new["metadata"]["resourceVersion"] = json!(st.rv.to_string());
    let new = with_type(r, new);
    st.objects.insert(
        k.clone(),
        Object {
            value: new.clone(),
            owners,
        },
    );
    commit(s, st, r, "MODIFIED", Some(old), new.clone());
    new
}

fn check_rv(current: &Value, given: &Value, name: &str, r: &ResDef) -> Result<(), ApiError> {
    match given["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
        {
            Err(err(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    r.plural
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn replace(
    s: &Shared,
    r: &'static ResDef,
    ns: &str,
    name: &str,
    status_sub: bool,
    obj: Value,
) -> Result<Value, ApiError> {
    let mut st = s.store.lock().unwrap();
    let k = key(r, ns, name);
    let cur = st
        .objects
        .get(&k)
        .cloned()
        .ok_or_else(|| not_found(r, name))?;
    check_rv(&cur.value, &obj, name, r)?;
    let mut new = obj;
    finalize(r, &cur.value, &mut new, status_sub);
    let owners = update_owners(r, &cur, &new, "unknown");
    Ok(store_update(s, &mut st, r, &k, new, owners))
}

fn delete(s: &Shared, r: &'static ResDef, ns: &str, name: &str) -> Result<Value, ApiError> {
    let mut st = s.store.lock().unwrap();
    let k = key(r, ns, name);
    let cur = st
        .objects
        .get(&k)
        .cloned()
        .ok_or_else(|| not_found(r, name))?;
    if cur.value["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        let mut new = cur.value.clone();
        if new["metadata"].get("deletionTimestamp").is_none() {
            new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        }
        return Ok(store_update(s, &mut st, r, &k, new, cur.owners));
    }
    st.objects.remove(&k);
    st.rv += 1;
    let mut gone = cur.value.clone();
    gone["metadata"]["resourceVersion"] = json!(st.rv.to_string());
    commit(s, &mut st, r, "DELETED", Some(cur.value), gone.clone());
    Ok(gone)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    Merge,
    Apply,
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn generic(path: &[Seg]) -> String {
    path.iter()
        .filter_map(|s| match s {
            Seg::Field(f) => Some(f.as_str()),
            Seg::Elem { .. } => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn list_key(r: &ResDef, path: &[Seg]) -> Option<&'static str> {
    let g = generic(path);
    r.list_keys.iter().find(|(p, _)| *p == g).map(|(_, k)| *k)
}

/// The leaf fields of an object (keyed lists by element, other lists whole).
fn leaves(r: &ResDef, v: &Value, path: &mut FieldPath, out: &mut BTreeMap<FieldPath, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(Seg::Field(k.clone()));
                leaves(r, child, path, out);
                path.pop();
            }
        }
        Value::Array(items) if list_key(r, path).is_some() && !items.is_empty() => {
            let key = list_key(r, path).unwrap();
            for item in items {
                let kv = item.get(key).map(|k| k.to_string()).unwrap_or_default();
                path.push(Seg::Elem {
                    key: key.to_owned(),
                    value: kv,
                });
                leaves(r, item, path, out);
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), other.clone());
        }
    }
}

fn all_leaves(r: &ResDef, v: &Value) -> BTreeMap<FieldPath, Value> {
    let mut out = BTreeMap::new();
    leaves(r, v, &mut Vec::new(), &mut out);
    // Bookkeeping fields are nobody's.
    out.retain(|p, _| {
        !matches!(p.as_slice(), [Seg::Field(a), ..] if a == "apiVersion" || a == "kind")
            && !matches!(p.as_slice(), [Seg::Field(m), Seg::Field(f), ..] if m == "metadata"
                && !matches!(f.as_str(), "labels" | "annotations" | "finalizers"))
    });
    out
}

fn elem_index(items: &[Value], key: &str, value: &str) -> Option<usize> {
    items
        .iter()
        .position(|i| i.get(key).map(|k| k.to_string()).as_deref() == Some(value))
}

fn lookup<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Seg::Field(f) => cur.get(f)?,
            Seg::Elem { key, value } => {
                let items = cur.as_array()?;
                &items[elem_index(items, key, value)?]
            }
        };
    }
    Some(cur)
}

fn set_at(v: &mut Value, path: &[Seg], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = leaf;
        return;
    };
    match first {
        Seg::Field(f) => {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
            let child = v
                .as_object_mut()
                .unwrap()
                .entry(f.clone())
                .or_insert(Value::Null);
            set_at(child, rest, leaf);
        }
        Seg::Elem { key, value } => {
            if !v.is_array() {
                *v = Value::Array(Vec::new());
            }
            let items = v.as_array_mut().unwrap();
            let i = match elem_index(items, key, value) {
                Some(i) => i,
                None => {
                    let mut m = Map::new();
                    m.insert(
                        key.clone(),
                        serde_json::from_str(value).unwrap_or(Value::Null),
                    );
                    items.push(Value::Object(m));
                    items.len() - 1
                }
            };
            set_at(&mut items[i], rest, leaf);
        }
    }
}

fn remove_at(v: &mut Value, path: &[Seg]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match first {
        Seg::Field(f) => {
            let Some(m) = v.as_object_mut() else { return };
            if rest.is_empty() {
                m.remove(f);
            } else if let Some(child) = m.get_mut(f) {
                remove_at(child, rest);
                if child.as_object().is_some_and(Map::is_empty)
                    || child.as_array().is_some_and(Vec::is_empty)
                {
                    m.remove(f);
                }
            }
        }
        Seg::Elem { key, value } => {
            let Some(items) = v.as_array_mut() else {
                return;
            };
            let Some(i) = elem_index(items, key, value) else {
                return;
            };
            remove_at(&mut items[i], rest);
            // An element left with only its key is gone.
            if items[i].as_object().is_some_and(|m| m.len() <= 1) {
                items.remove(i);
            }
        }
    }
}

/// Ownership after an update operation: changed fields go to `manager`.
fn update_owners(
    r: &ResDef,
    cur: &Object,
    new: &Value,
    manager: &str,
) -> BTreeMap<FieldPath, BTreeSet<String>> {
    let before = all_leaves(r, &cur.value);
    let after = all_leaves(r, new);
    let mut owners = cur.owners.clone();
    owners.retain(|p, _| after.contains_key(p));
    for (p, v) in &after {
        if before.get(p) != Some(v) {
            owners.insert(p.clone(), BTreeSet::from([manager.to_owned()]));
        }
    }
    owners
}

fn path_text(p: &[Seg]) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Elem { key, value } => s.push_str(&format!("[{key}={value}]")),
        }
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    s: &Shared,
    r: &'static ResDef,
    ns: &str,
    name: &str,
    status_sub: bool,
    kind: PatchKind,
    patch: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let mut st = s.store.lock().unwrap();
    let k = key(r, ns, name);
    let Some(cur) = st.objects.get(&k).cloned() else {
        if kind == PatchKind::Apply && !status_sub {
            drop(st);
            // Apply creates a missing object.
            let mut obj = patch.clone();
            if r.namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            let created = create(s, r, ns, obj)?;
            let mut st = s.store.lock().unwrap();
            let o = st.objects.get_mut(&k).unwrap();
            for p in all_leaves(r, &created).into_keys() {
                o.owners.insert(p, BTreeSet::from([manager.to_owned()]));
            }
            return Ok(created);
        }
        return Err(not_found(r, name));
    };
    check_rv(&cur.value, patch, name, r)?;
    match kind {
        PatchKind::Merge => {
            let mut new = cur.value.clone();
            merge_patch(&mut new, patch);
            finalize(r, &cur.value, &mut new, status_sub);
            let owners = update_owners(r, &cur, &new, manager);
            Ok(store_update(s, &mut st, r, &k, new, owners))
        }
        PatchKind::Apply => {
            // The part of the applied configuration this endpoint takes.
            let mut applied = patch.clone();
            if r.status_sub {
                let o = applied
                    .as_object_mut()
                    .ok_or_else(|| err(400, "BadRequest", "apply body must be an object"))?;
                if status_sub {
                    o.retain(|k, _| k == "status");
                } else {
                    o.remove("status");
                }
            }
            let want = all_leaves(r, &applied);
            let mut conflicts = Vec::new();
            for (p, v) in &want {
                let others: Vec<&String> = cur
                    .owners
                    .get(p)
                    .map(|o| o.iter().filter(|m| *m != manager).collect())
                    .unwrap_or_default();
                if !others.is_empty() && lookup(&cur.value, p) != Some(v) {
                    conflicts.push((path_text(p), others[0].clone()));
                }
            }
            if !conflicts.is_empty() && !force {
                let mut e = err(
                    409,
                    "Conflict",
                    format!(
                        "Apply failed with {} conflict(s): {}",
                        conflicts.len(),
                        conflicts
                            .iter()
                            .map(|(f, m)| format!("conflict with \"{m}\": {f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                e.causes = conflicts
                    .iter()
                    .map(|(f, m)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f}))
                    .collect();
                return Err(e);
            }
            let mut new = cur.value.clone();
            let mut owners = cur.owners.clone();
            // Fields this manager applied before and no longer does.
            let dropped: Vec<FieldPath> = owners
                .iter()
                .filter(|(p, m)| m.contains(manager) && !want.contains_key(*p))
                .map(|(p, _)| p.clone())
                .collect();
            for p in dropped {
                let m = owners.get_mut(&p).unwrap();
                m.remove(manager);
                if m.is_empty() {
                    owners.remove(&p);
                    remove_at(&mut new, &p);
                }
            }
            for (p, v) in &want {
                let changed = lookup(&new, p) != Some(v);
                set_at(&mut new, p, v.clone());
                let m = owners.entry(p.clone()).or_default();
                if changed {
                    m.clear();
                }
                m.insert(manager.to_owned());
            }
            finalize(r, &cur.value, &mut new, status_sub);
            Ok(store_update(s, &mut st, r, &k, new, owners))
        }
    }
}

/// A watch: replay from the given version (or the current state for "0"
/// or none), then live changes and periodic bookmarks, until timeoutSeconds.
fn watch_response(
    s: Arc<Shared>,
    r: &'static ResDef,
    ns: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let ns = ns.to_owned();
    let query = query.clone();
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300));
    let from: Option<u64> = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse().ok());
    // Subscribe before reading history: nothing falls in between.
    let mut live = s.changes.subscribe();
    let mut drops = s.drop_watches.subscribe();
    drops.mark_unchanged();
    let (initial, mut last): (Vec<Value>, u64) = {
        let st = s.store.lock().unwrap();
        match from {
            Some(rv) if rv + 1 < st.oldest => {
                let gone = ApiError {
                    code: 410,
                    reason: "Expired",
                    message: format!("too old resource version: {rv} ({})", st.oldest - 1),
                    causes: Vec::new(),
                };
                (
                    vec![json!({"type": "ERROR", "object": gone.status()})],
                    u64::MAX,
                )
            }
            Some(rv) => (
                st.history
                    .iter()
                    .filter(|c| c.rv > rv && c.res == r.plural)
                    .filter_map(|c| event(c, &ns, &query))
                    .collect(),
                st.rv,
            ),
            None => (
                st.objects
                    .iter()
                    .filter(|((p, _, _), o)| *p == r.plural && matches(&o.value, &ns, &query))
                    .map(|(_, o)| json!({"type": "ADDED", "object": o.value}))
                    .collect(),
                st.rv,
            ),
        }
    };
    tokio::spawn(async move {
        let send = |v: Value| {
            let mut line = serde_json::to_vec(&v).unwrap();
            line.push(b'\n');
            Ok(Bytes::from(line))
        };
        for e in initial {
            if tx.send(send(e)).await.is_err() {
                return;
            }
        }
        if last == u64::MAX {
            return; // 410 sent
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(s.bookmark_every);
        tick.tick().await;
        loop {
            // Biased: a dropped watch delivers nothing more, not even a
            // change that raced with the drop.
            let out = tokio::select! {
                biased;
                _ = drops.changed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                c = live.recv() => match c {
                    Ok(c) if c.rv > last => {
                        last = c.rv;
                        if c.res != r.plural {
                            continue;
                        }
                        match event(&c, &ns, &query) { Some(e) => e, None => continue }
                    }
                    Ok(_) => continue,
                    // Too slow: end the watch, the client re-watches.
                    Err(_) => return,
                },
                _ = tick.tick() => {
                    if !bookmarks { continue; }
                    // Only versions this watch has processed: a bookmark
                    // promises that nothing before it is still to come.
                    json!({"type": "BOOKMARK", "object": {"apiVersion": r.api_version, "kind": r.kind, "metadata": {"resourceVersion": last.to_string()}}})
                }
            };
            if tx.send(send(out)).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap()
}

/// The watch event a change is for a filtered watch: objects moving in or
/// out of the selection are ADDED or DELETED, as the API server does.
fn event(c: &Change, ns: &str, query: &BTreeMap<String, String>) -> Option<Value> {
    let now = matches(&c.new, ns, query);
    let before = c.old.as_ref().is_some_and(|o| matches(o, ns, query));
    let t = match (c.kind, before, now) {
        ("DELETED", true, _) => "DELETED",
        ("DELETED", false, _) => return None,
        (_, true, true) => "MODIFIED",
        (_, false, true) => "ADDED",
        (_, true, false) => "DELETED",
        (_, false, false) => return None,
    };
    Some(json!({"type": t, "object": c.new}))
}
