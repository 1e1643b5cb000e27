//! The namespace controller (pkg/controller/namespace/deletion/namespaced_resources_deleter.go):
//! a namespace being deleted is Terminating; the controller deletes everything in it (pods
//! gracefully, with their own grace periods, so the kubelet still runs their preStop and
//! waits for them), and once nothing is left it removes the `kubernetes` finalizer from
//! `spec.finalizers`, which lets the namespace go.

use serde_json::{Value, json};

use super::runner::Ctx;
use crate::store::{DeleteOptions, Resource};

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let terminating: Vec<String> = ctx
        .store
        .list_all(Resource::Namespace, None)
        .iter()
        .filter(|n| n.pointer("/metadata/deletionTimestamp").is_some())
        .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    for ns in terminating {
        let mut left = 0usize;
        for resource in Resource::ALL.into_iter().filter(|r| r.namespaced()) {
            for obj in ctx.store.list_all(resource, Some(&ns)) {
                left += 1;
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // Deleting an already terminating pod again changes nothing.
                let _ = ctx
                    .store
                    .delete(resource, &ns, name, &DeleteOptions::default());
            }
        }
        if left == 0 {
            let _ = ctx.store.mutate(Resource::Namespace, "", &ns, |v| {
                v["spec"]["finalizers"] = json!([]);
                Ok(())
            });
        }
    }
}
