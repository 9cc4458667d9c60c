//! The controller's requests, checked one by one against kube's mock service: no API server
//! can run here, so each test plays it, answering each request as Kubernetes would after
//! checking its method, path, query, content type and body.

mod backup;
mod deletion;
pub mod fixtures;
mod restore;

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::Context;
use crate::render::RenderContext;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The API server of a test.
pub struct ApiServer {
    handle: Handle,
}

/// One request the operator made.
#[derive(Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Seen {
    /// Asserts the method and path, and returns the request for more checks.
    pub fn is(&self, method: Method, path: &str) -> &Self {
        assert_eq!(
            (&self.method, self.path.as_str()),
            (&method, path),
            "unexpected request {self:#?}"
        );
        self
    }

    /// Asserts a server-side apply by the operator's field manager, forcing conflicts.
    pub fn is_apply(&self, path: &str) -> &Self {
        self.is(Method::PATCH, path);
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{self:#?}"
        );
        assert_eq!(
            self.query.get("fieldManager").map(String::as_str),
            Some("kafka-backup-operator")
        );
        assert_eq!(self.query.get("force").map(String::as_str), Some("true"));
        self
    }

    /// Asserts a merge patch of the status subresource.
    pub fn is_status_patch(&self, path: &str) -> &Self {
        self.is(Method::PATCH, &format!("{path}/status"));
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/merge-patch+json"),
            "{self:#?}"
        );
        self
    }

    /// Asserts a list with this label selector.
    pub fn is_list(&self, path: &str, selector: &str) -> &Self {
        self.is(Method::GET, path);
        assert_eq!(
            self.query.get("labelSelector").map(String::as_str),
            Some(selector),
            "{self:#?}"
        );
        self
    }

    /// Asserts a JSON patch (the finalizer's) and returns `object` with it applied, as the
    /// API server would (its `test` operations included).
    pub fn json_patched(&self, object: &Value) -> Value {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/json-patch+json"),
            "{self:#?}"
        );
        let patch: json_patch::Patch =
            serde_json::from_value(self.body.clone()).expect("a JSON patch");
        // The API server's JSON patch (evanphx/json-patch) takes a missing member for null in
        // a `test`, which kube-runtime's finalizer relies on too; RFC 6902 (json_patch) fails.
        let operations: Vec<_> = patch
            .0
            .into_iter()
            .filter(|op| match op {
                json_patch::PatchOperation::Test(test) => {
                    !(test.value.is_null() && test.path.resolve(object).is_err())
                }
                _ => true,
            })
            .collect();
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &operations).expect("the patch applies to the object");
        patched
    }
}

/// How long the operator may take to make its next request.
const PATIENCE: Duration = Duration::from_secs(5);

impl ApiServer {
    /// A context whose client talks to this server.
    pub fn start() -> (Context, Self) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let render = RenderContext {
            image: "registry.example/kafka-backup:1.0".into(),
            ..RenderContext::default()
        };
        (Context::new(client, render), Self { handle })
    }

    /// Takes the next request, lets `check` look at it, and answers with what it returns.
    pub async fn next(&mut self, check: impl FnOnce(&Seen) -> (u16, Value)) -> Seen {
        let (request, respond) = tokio::time::timeout(PATIENCE, self.handle.next_request())
            .await
            .expect("the operator made no further request")
            .expect("the operator's client is gone");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("a request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        let seen = Seen {
            path: parts.uri.path().to_owned(),
            query: parts
                .uri
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            method: parts.method,
            body,
        };
        let (status, answer) = check(&seen);
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("a status code"))
            .body(Body::from(serde_json::to_vec(&answer).expect("JSON")))
            .expect("a response");
        respond.send_response(response);
        seen
    }

    /// Asserts that the operator makes no other request.
    pub async fn nothing_more(&mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), self.handle.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// A list answer.
pub fn list(items: Vec<Value>) -> (u16, Value) {
    (
        200,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "77"}, "items": items}),
    )
}

/// The object of a server-side apply as the API server returns it: with a uid.
pub fn applied(seen: &Seen, uid: &str) -> (u16, Value) {
    let mut object = seen.body.clone();
    object["metadata"]["uid"] = uid.into();
    object["metadata"]["resourceVersion"] = "78".into();
    (200, object)
}

/// An error answer as Kubernetes writes it.
pub fn refused(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "code": code, "reason": reason, "message": message}),
    )
}

/// The resource after a merge patch of its status.
pub fn status_patched(resource: &Value, seen: &Seen) -> (u16, Value) {
    let mut object = resource.clone();
    json_patch::merge(&mut object, &seen.body);
    (200, object)
}

/// The condition of `type_` in a status JSON.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
}

/// The owner reference every applied object must carry.
pub fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{
        "apiVersion": "kafka.oso.sh/v1alpha1", "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true
    }])
}
