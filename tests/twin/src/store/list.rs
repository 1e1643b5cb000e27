//! Lists with selectors and `limit`/`continue` paging, and the start of watches.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    ApiError, EventKind, FieldSelector, Key, LabelSelector, ListPage, ListParams, Resource, Store,
    WatchEvent,
};

fn encode_continue(rv: u64, key: &Key) -> String {
    URL_SAFE_NO_PAD.encode(json!({ "rv": rv, "ns": key.0, "name": key.1 }).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Key), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

impl Store {
    /// A list call with selectors and `limit`/`continue` paging, as the API server answers it.
    pub fn list(&self, resource: Resource, params: &ListParams) -> Result<ListPage, ApiError> {
        let labels = match params.label_selector.as_deref() {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::default(),
        };
        let fields = match params.field_selector.as_deref() {
            Some(s) => FieldSelector::parse(s)?,
            None => FieldSelector::default(),
        };
        let resume = params
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_continue)
            .transpose()?;
        let limit = params.limit.filter(|l| *l > 0);
        let unfiltered = labels.is_everything() && fields.requirements.is_empty();

        let state = self.lock();
        let snapshot = resume.as_ref().map(|(rv, _)| *rv).unwrap_or(state.rv);
        let ns = params.namespace.as_deref();
        let mut items = Vec::new();
        let mut last: Option<&Key> = None;
        let mut more = false;
        let mut remaining = 0u64;
        let mut iter = state.iter_after(resource, ns, resume.as_ref().map(|(_, k)| k));
        for (key, obj) in iter.by_ref() {
            if !labels.matches_object(obj) || !fields.matches(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                if unfiltered {
                    remaining = 1;
                }
                break;
            }
            items.push(obj.clone());
            last = Some(key);
        }
        if more && unfiltered {
            remaining += iter.count() as u64;
        }
        let continue_token = match (more, last) {
            (true, Some(key)) => Some(encode_continue(snapshot, key)),
            _ => None,
        };
        Ok(ListPage {
            items,
            resource_version: snapshot,
            remaining_item_count: (more && unfiltered).then_some(remaining),
            continue_token,
        })
    }

    /// Subscribes to every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.inner.events.subscribe()
    }

    /// Starts a watch of one kind: the events to replay first, and the live receiver.
    ///
    /// - `since = Some(rv)`: replays retained events after `rv` (410 Gone if they were
    ///   dropped), as a watch that resumes from a list's `resourceVersion`;
    /// - `since = None` (or `Some(0)`): a synthetic ADDED for every current object, as upstream
    ///   does for a watch without a `resourceVersion`.
    ///
    /// Replayed and live events are not filtered by namespace or selector; the caller filters.
    pub fn watch(
        &self,
        resource: Resource,
        ns: Option<&str>,
        since: Option<u64>,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>), ApiError> {
        let state = self.lock();
        let rx = self.inner.events.subscribe();
        let replay = match since.filter(|rv| *rv > 0) {
            None => state
                .iter_ns(resource, ns)
                .map(|(_, obj)| WatchEvent {
                    kind: EventKind::Added,
                    resource,
                    object: obj.clone(),
                    resource_version: state.rv,
                    at: state.clock.now(),
                })
                .collect(),
            Some(rv) => {
                if rv < state.history_floor {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        state.history_floor + 1
                    )));
                }
                state
                    .history
                    .iter()
                    .filter(|e| e.resource_version > rv && e.resource == resource)
                    .cloned()
                    .collect()
            }
        };
        Ok((replay, rx))
    }
}
