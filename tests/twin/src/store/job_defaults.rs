//! What the API server fills in on a new `batch/v1` Job (defaulting, then the job strategy).

use serde_json::{Map, Value, json};

/// What the API server does to a new Job, in its order:
/// - `SetDefaults_Job` (kubernetes `pkg/apis/batch/v1/defaults.go`): `completions` and
///   `parallelism` 1 when both are unset, else `parallelism` 1; `backoffLimit` 6;
///   `completionMode: NonIndexed`; `suspend: false`; `podReplacementPolicy:
///   TerminatingOrFailed` without a pod failure policy; the Job's labels are the template's
///   when it has none;
/// - the job strategy's `PrepareForCreate` (`pkg/registry/batch/job/strategy.go`) clears the
///   status and defaults `manualSelector` to false;
/// - its `generateSelector`: the template gets `job-name`, `batch.kubernetes.io/job-name`
///   (the Job's name), `controller-uid` and `batch.kubernetes.io/controller-uid` (its UID), and
///   the selector matches `batch.kubernetes.io/controller-uid`.
pub(crate) fn default_job(map: &mut Map<String, Value>) {
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let uid = map
        .get("metadata")
        .and_then(|m| m.get("uid"))
        .cloned()
        .unwrap_or(Value::Null);
    map.insert("status".into(), json!({}));
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    spec.entry("parallelism").or_insert(json!(1));
    spec.entry("backoffLimit").or_insert(json!(6));
    spec.entry("completionMode").or_insert(json!("NonIndexed"));
    spec.entry("suspend").or_insert(json!(false));
    if !spec.contains_key("podFailurePolicy") {
        spec.entry("podReplacementPolicy")
            .or_insert(json!("TerminatingOrFailed"));
    }
    let manual = spec
        .entry("manualSelector")
        .or_insert(json!(false))
        .as_bool()
        .unwrap_or(false);
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let template_labels = template.pointer("/metadata/labels").cloned();
    if !manual {
        if !template.get("metadata").is_some_and(Value::is_object) {
            template["metadata"] = json!({});
        }
        if !template["metadata"]
            .get("labels")
            .is_some_and(Value::is_object)
        {
            template["metadata"]["labels"] = json!({});
        }
        if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
            for key in ["job-name", "batch.kubernetes.io/job-name"] {
                labels.entry(key).or_insert(name.clone());
            }
            for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
                labels.entry(key).or_insert(uid.clone());
            }
        }
        if !spec.get("selector").is_some_and(Value::is_object) {
            spec.insert("selector".into(), json!({}));
        }
        let selector = &mut spec["selector"];
        if !selector.get("matchLabels").is_some_and(Value::is_object) {
            selector["matchLabels"] = json!({});
        }
        if let Some(m) = selector["matchLabels"].as_object_mut() {
            m.entry("batch.kubernetes.io/controller-uid")
                .or_insert(uid.clone());
        }
    }
    // Defaulting runs before the strategy, so the Job's own labels are the user's template
    // labels, without the generated ones.
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    let has_labels = meta
        .get("labels")
        .and_then(Value::as_object)
        .is_some_and(|l| !l.is_empty());
    if !has_labels
        && let Some(labels) =
            template_labels.filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
    {
        meta["labels"] = labels;
    }
}
