//! `?watch=true`: a stream of newline-delimited `{"type":...,"object":...}` events.
//!
//! As upstream: a watch from a `resourceVersion` replays the later changes and then streams
//! live ones; without one (or "0") it starts with a synthetic ADDED per current object. It
//! ends after `timeoutSeconds`, and a watcher that falls too far behind gets an ERROR event
//! carrying a 410 Expired `Status`, upon which clients re-list.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::Target;
use crate::store::{ApiError, FieldSelector, LabelSelector, Store, WatchEvent};

/// Upstream picks a random timeout of 30–60 minutes when the client gives none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn admits(&self, ev: &WatchEvent) -> bool {
        ev.resource == self.target.resource
            && self
                .target
                .namespace
                .as_deref()
                .is_none_or(|ns| !self.target.resource.namespaced() || ev.namespace() == ns)
            && self.target.name.as_deref().is_none_or(|n| ev.name() == n)
            && self.labels.matches_object(&ev.object)
            && self.fields.matches(&ev.object)
    }
}

struct Stream {
    replay: VecDeque<WatchEvent>,
    rx: broadcast::Receiver<WatchEvent>,
    filter: Filter,
    deadline: Instant,
    done: bool,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    // Writing a serde_json::Value to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

async fn next(mut st: Stream) -> Option<(Result<Bytes, Infallible>, Stream)> {
    if st.done {
        return None;
    }
    while let Some(ev) = st.replay.pop_front() {
        if st.filter.admits(&ev) {
            return Some((Ok(line(ev.kind.as_str(), &ev.object)), st));
        }
    }
    loop {
        match tokio::time::timeout_at(st.deadline, st.rx.recv()).await {
            Err(_) | Ok(Err(RecvError::Closed)) => return None,
            Ok(Err(RecvError::Lagged(_))) => {
                st.done = true;
                let status =
                    ApiError::gone("too old resource version: the watch fell behind").status_body();
                return Some((Ok(line("ERROR", &status)), st));
            }
            Ok(Ok(ev)) if st.filter.admits(&ev) => {
                return Some((Ok(line(ev.kind.as_str(), &ev.object)), st));
            }
            Ok(Ok(_)) => {}
        }
    }
}

pub(super) fn serve(
    store: &Store,
    target: &Target,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let labels = match q.get("labelSelector") {
        Some(s) => LabelSelector::parse(s)?,
        None => LabelSelector::default(),
    };
    let fields = match q.get("fieldSelector") {
        Some(s) => FieldSelector::parse(s)?,
        None => FieldSelector::default(),
    };
    let since = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let (replay, rx) = store.watch(target.resource, target.namespace.as_deref(), since)?;
    let st = Stream {
        replay: replay.into(),
        rx,
        filter: Filter {
            target: target.clone(),
            labels,
            fields,
        },
        deadline: Instant::now() + timeout,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(st, next));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
