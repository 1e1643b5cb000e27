//! Seeds a store from plain Kubernetes manifests (YAML, one or more documents, or `List`s),
//! for `ngm-twin serve --scenario` files that are just objects.

use serde_json::Value;

use crate::store::{ApiError, Resource, Store};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the manifest is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("document {index} has no known kind ({kind:?})")]
    UnknownKind { index: usize, kind: String },
    #[error("document {index} was refused: {source}")]
    Refused { index: usize, source: Box<ApiError> },
}

/// Creates every object of the manifests, creating their namespaces as needed. Returns how
/// many objects were created.
pub fn seed_manifests(store: &Store, text: &str) -> Result<usize, SeedError> {
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        match v.get("items").and_then(Value::as_array) {
            Some(items)
                if v.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                objects.extend(items.iter().cloned());
            }
            _ if !v.is_null() => objects.push(v),
            _ => {}
        }
    }
    for (index, obj) in objects.iter().enumerate() {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let resource = Resource::from_kind(kind).ok_or_else(|| SeedError::UnknownKind {
            index,
            kind: kind.to_string(),
        })?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        if resource.namespaced() {
            store.ensure_namespace(ns);
        }
        store
            .create(resource, ns, obj.clone())
            .map_err(|source| SeedError::Refused {
                index,
                source: Box::new(source),
            })?;
    }
    Ok(objects.len())
}
