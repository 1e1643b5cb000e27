//! Typed access over k8s-openapi types, for controllers that prefer structs to JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, Resource, Store};

fn resource_of<K: k8s_openapi::Resource>() -> Result<Resource, ApiError> {
    Resource::of::<K>()
        .ok_or_else(|| ApiError::internal(format!("the twin does not serve {}", K::KIND)))
}

fn from_value<K: DeserializeOwned>(v: &Value) -> Result<K, ApiError> {
    K::deserialize(v).map_err(|e| ApiError::internal(format!("stored object does not decode: {e}")))
}

fn to_value<K: Serialize>(k: &K) -> Result<Value, ApiError> {
    serde_json::to_value(k)
        .map_err(|e| ApiError::bad_request(format!("object does not encode: {e}")))
}

/// Namespace and name from a typed object's metadata.
fn ns_name<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(obj: &K) -> (String, String) {
    let meta = obj.metadata();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Store {
    /// The object as a typed value, or 404.
    pub fn get_typed<K>(&self, ns: &str, name: &str) -> Result<K, ApiError>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        from_value(&*self.get(resource_of::<K>()?, ns, name)?)
    }

    /// The object as a typed value, if it exists (and decodes).
    pub fn try_get_typed<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        let obj = self.try_get(resource_of::<K>().ok()?, ns, name)?;
        from_value(&obj).ok()
    }

    /// Every object of the type in a namespace (`None`: all). Objects that do not decode
    /// (a client wrote nonsense through the API) are skipped.
    pub fn list_typed<K>(&self, ns: Option<&str>) -> Vec<K>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        let Ok(resource) = resource_of::<K>() else {
            return Vec::new();
        };
        self.list_all(resource, ns)
            .iter()
            .filter_map(|v| from_value(v).ok())
            .collect()
    }

    /// Creates a typed object in the namespace its metadata names.
    pub fn create_typed<K>(&self, obj: &K) -> Result<K, ApiError>
    where
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = ObjectMeta>
            + Serialize
            + DeserializeOwned,
    {
        let (ns, _) = ns_name(obj);
        from_value(&*self.create(resource_of::<K>()?, &ns, to_value(obj)?)?)
    }

    /// Replaces a typed object entirely (409 if its `resourceVersion` is set and stale).
    pub fn update_typed<K>(&self, obj: &K) -> Result<K, ApiError>
    where
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = ObjectMeta>
            + Serialize
            + DeserializeOwned,
    {
        let (ns, name) = ns_name(obj);
        from_value(&*self.update(resource_of::<K>()?, &ns, &name, to_value(obj)?)?)
    }

    /// Edits a typed object in place, atomically (see [`Store::mutate`]).
    pub fn mutate_typed<K>(
        &self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut K) -> Result<(), ApiError>,
    ) -> Result<K, ApiError>
    where
        K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    {
        let out = self.mutate(resource_of::<K>()?, ns, name, |v| {
            let mut typed: K = from_value(v)?;
            f(&mut typed)?;
            *v = to_value(&typed)?;
            Ok(())
        })?;
        from_value(&out)
    }
}
