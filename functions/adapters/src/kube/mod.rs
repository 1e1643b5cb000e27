//! The Kubernetes port over the real kube client.
//!
//! Every list is paginated (`limit`/`continue`) and converted page by page, so memory stays
//! bounded on large clusters; pods are read per node or per selector, so a step makes requests
//! in proportion to nodes plus workloads, never nodes × pods.
//!
//! Every request goes through [`crate::retry::call`]: throttles (429), server errors (5xx) and
//! transport failures are retried within the invocation's budget, honouring `Retry-After`.

mod client;
mod convert;

pub use client::{
    ClusterEndpoint, RetryAfterLayer, client_for_cluster, lambda_function_name,
    status_with_retry_after, user_agent,
};

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Node, ObjectReference, PersistentVolume, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions as K8sDeleteOptions, Preconditions as K8sPreconditions,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, Resource};
use ngm_core::model::{
    DaemonSetView, EndpointSliceView, EventType, HpaView, LabelSelector, NodeView, ObjectRef,
    PdbView, PodView, ReplicaSetView, ServiceView, Taint, WorkloadKind, WorkloadRef, WorkloadView,
};
use ngm_core::ports::{EvictOutcome, HpaPatch, KubePort, MetadataPatch, PortError, PortResult};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::retry::{self, Failure};

/// Items per list page: large enough to keep request counts low, small enough to bound memory.
pub const PAGE_SIZE: u32 = 500;
/// The field manager ngm writes as, so its changes are attributable in managedFields.
const MANAGER: &str = "ngm";

/// Classifies a kube client error once.
pub fn classify_kube(op: &str, err: kube::Error) -> PortError {
    let op = op.to_owned();
    match err {
        kube::Error::Api(status) => match status.code {
            404 => PortError::NotFound {
                what: format!("{op}: {}", status.message),
            },
            409 => PortError::Conflict {
                op,
                detail: status.message,
            },
            429 => PortError::Throttled { op },
            401 | 403 => PortError::AccessDenied { op },
            400 | 422 => PortError::Invalid {
                op,
                detail: status.message,
            },
            504 => PortError::Timeout { op },
            // 500, 502, 503...: the API server (or etcd behind it) could not answer now.
            500..=599 => PortError::Unavailable {
                op,
                detail: format!("{} {}", status.code, status.message),
            },
            _ => PortError::Unexpected {
                op,
                detail: format!("{} {}", status.code, status.message),
            },
        },
        kube::Error::HyperError(e) => PortError::Timeout {
            op: format!("{op}: {e}"),
        },
        kube::Error::Service(e) => PortError::Timeout {
            op: format!("{op}: {e}"),
        },
        other => PortError::Unexpected {
            op,
            detail: other.to_string(),
        },
    }
}

/// A kube error for the retry layer, with the delay the API server named (`Retry-After`,
/// carried into `details.retryAfterSeconds` by [`RetryAfterLayer`]).
pub fn kube_failure(op: &str, err: kube::Error) -> Failure {
    let retry_after = match &err {
        kube::Error::Api(s) => s
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| std::time::Duration::from_secs(u64::from(s))),
        _ => None,
    };
    Failure {
        error: classify_kube(op, err),
        retry_after,
    }
}

/// One kube request under the adapter retry policy.
async fn kcall<T, F, Fut>(op: &str, mut request: F) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    retry::call(op, || {
        let answer = request();
        async move { answer.await.map_err(|e| kube_failure(op, e)) }
    })
    .await
}

/// Marking and unmarking: an object that is gone has nothing left to mark or unmark.
fn done_if_gone(r: PortResult<()>) -> PortResult<()> {
    match r {
        Err(PortError::NotFound { what }) => {
            tracing::info!(what = %what, "object gone; nothing to mark");
            Ok(())
        }
        other => other,
    }
}

/// Whether an eviction 429 is a PodDisruptionBudget refusal rather than API throttling: the
/// eviction REST handler names the budget (a `DisruptionBudget` cause, or its message
/// "Cannot evict pod as it would violate the pod's disruption budget."), while the
/// max-in-flight and priority-and-fairness filters answer a bare "Too many requests".
pub fn is_pdb_refusal(status: &kube::core::Status) -> bool {
    let cause = status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"));
    cause || status.message.contains("disruption budget")
}

/// Whether a 403 says the namespace is being deleted (cause `NamespaceTerminating`, from the
/// NamespaceLifecycle admission plugin; kubectl's drain checks the same cause).
pub fn is_namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}

fn none_if_missing<T>(r: PortResult<T>) -> PortResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(PortError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `{"k": "v", "gone": null}` from a metadata patch: null removes the key under merge patch.
fn metadata_json(patch: &MetadataPatch) -> Value {
    Value::Object(
        patch
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |s| json!(s))))
            .collect(),
    )
}

/// The pod name an eviction 429 blames, from the API server's `DisruptionBudget` cause
/// ("The disruption budget NAME needs N healthy pods and has M currently").
pub fn blocking_pdb(status: &kube::core::Status) -> Option<String> {
    let causes = &status.details.as_ref()?.causes;
    causes
        .iter()
        .filter(|c| c.reason == "DisruptionBudget")
        .find_map(|c| {
            c.message
                .strip_prefix("The disruption budget ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
}

#[derive(Clone)]
pub struct KubeAdapter {
    client: Client,
    page_size: u32,
}

impl std::fmt::Debug for KubeAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeAdapter")
    }
}

impl KubeAdapter {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            page_size: PAGE_SIZE,
        }
    }

    /// The same adapter with another list page size (tests use a small one to cross pages).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    fn all<K: Resource<Scope = kube::core::NamespaceResourceScope>>(&self) -> Api<K>
    where
        K::DynamicType: Default,
    {
        Api::all(self.client.clone())
    }

    fn ns<K: Resource<Scope = kube::core::NamespaceResourceScope>>(&self, ns: &str) -> Api<K>
    where
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn merge_patch<K>(
        &self,
        api: &Api<K>,
        op: &str,
        name: &str,
        body: Value,
    ) -> PortResult<()>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let pp = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(body);
        kcall(op, || api.patch(name, &pp, &patch)).await?;
        Ok(())
    }
}

/// Lists every page of `api` with `lp`, converting each page as it arrives.
async fn list_all<K, T>(
    api: &Api<K>,
    op: &str,
    page_size: u32,
    mut lp: ListParams,
    convert: impl Fn(&K) -> T,
) -> PortResult<Vec<T>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    lp = lp.limit(page_size);
    let mut out = Vec::new();
    loop {
        let page = kcall(op, || api.list(&lp)).await?;
        out.extend(page.items.iter().map(&convert));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

fn selector_params(selector: &LabelSelector) -> ListParams {
    let q = selector.to_query();
    if q.is_empty() {
        ListParams::default()
    } else {
        ListParams::default().labels(&q)
    }
}

#[async_trait]
impl KubePort for KubeAdapter {
    async fn list_nodes(&self, selector: &LabelSelector) -> PortResult<Vec<NodeView>> {
        let api: Api<Node> = Api::all(self.client.clone());
        list_all(
            &api,
            "list nodes",
            self.page_size,
            selector_params(selector),
            convert::node,
        )
        .await
    }

    async fn patch_node_labels(&self, name: &str, labels: &MetadataPatch) -> PortResult<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let body = json!({"metadata": {"labels": metadata_json(labels)}});
        done_if_gone(
            self.merge_patch(&api, "patch node labels", name, body)
                .await,
        )
    }

    async fn patch_node_annotations(
        &self,
        name: &str,
        annotations: &MetadataPatch,
    ) -> PortResult<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let body = json!({"metadata": {"annotations": metadata_json(annotations)}});
        done_if_gone(
            self.merge_patch(&api, "patch node annotations", name, body)
                .await,
        )
    }

    async fn patch_node_taints(
        &self,
        name: &str,
        add: &[Taint],
        remove: &[Taint],
    ) -> PortResult<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let Some(node) = none_if_missing(kcall("get node", || api.get(name)).await)? else {
            tracing::info!(node = name, "node gone; no taints to change");
            return Ok(());
        };
        let current = convert::node(&node).taints;
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| !remove.iter().chain(add).any(|r| r.same_slot(t)))
            .cloned()
            .collect();
        next.extend(add.iter().cloned());
        let unchanged = next.len() == current.len() && next.iter().all(|t| current.contains(t));
        if unchanged {
            return Ok(());
        }
        let taints: Vec<Value> = next
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value, "effect": t.effect.kube_name()}))
            .collect();
        // Merge patch replaces the whole list; carrying resourceVersion makes the API server
        // refuse it with 409 if anything else changed the taints since we read them.
        // An empty list is sent as null, which removes the field, as kubectl does (Go's
        // omitempty): the node is then exactly as it was before ngm tainted it.
        let taints = if taints.is_empty() {
            Value::Null
        } else {
            Value::Array(taints)
        };
        let body = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        done_if_gone(
            self.merge_patch(&api, "patch node taints", name, body)
                .await,
        )
    }

    async fn set_unschedulable(&self, name: &str, unschedulable: bool) -> PortResult<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        // Uncordon removes the field (null), as `kubectl uncordon` does, rather than writing
        // `false` onto a node that never had it.
        let value = if unschedulable {
            json!(true)
        } else {
            Value::Null
        };
        let body = json!({"spec": {"unschedulable": value}});
        done_if_gone(self.merge_patch(&api, "cordon node", name, body).await)
    }

    async fn list_pods_on_node(&self, node: &str) -> PortResult<Vec<PodView>> {
        let api: Api<Pod> = self.all();
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        list_all(&api, "list pods on node", self.page_size, lp, convert::pod).await
    }

    async fn list_pods(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> PortResult<Vec<PodView>> {
        let api: Api<Pod> = match namespace {
            Some(ns) => self.ns(ns),
            None => self.all(),
        };
        list_all(
            &api,
            "list pods",
            self.page_size,
            selector_params(selector),
            convert::pod,
        )
        .await
    }

    async fn annotate_pod(
        &self,
        namespace: &str,
        name: &str,
        annotations: &MetadataPatch,
    ) -> PortResult<()> {
        let api: Api<Pod> = self.ns(namespace);
        let body = json!({"metadata": {"annotations": metadata_json(annotations)}});
        done_if_gone(self.merge_patch(&api, "annotate pod", name, body).await)
    }

    async fn evict_pod(&self, namespace: &str, name: &str, uid: &str) -> PortResult<EvictOutcome> {
        let api: Api<Pod> = self.ns(namespace);
        // kube 5's `Api::evict` serialises `delete_options` in snake_case, which the API server
        // drops as an unknown field, losing the UID precondition; so the body is built here.
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            delete_options: Some(K8sDeleteOptions {
                preconditions: Some(K8sPreconditions {
                    uid: Some(uid.to_owned()),
                    resource_version: None,
                }),
                ..K8sDeleteOptions::default()
            }),
        };
        let pp = PostParams::default();
        retry::call("evict pod", || async {
            let result: Result<Value, kube::Error> = api
                .create_subresource("eviction", name, &pp, &eviction)
                .await;
            match result {
                Ok(_) => Ok(EvictOutcome::Evicted),
                Err(kube::Error::Api(status)) => match status.code {
                    // 429 while a PDB is at its limit: blocked, try again later (the step
                    // waits). A 429 of the API server's own throttling is retried here.
                    429 if is_pdb_refusal(&status) => Ok(EvictOutcome::PdbBlocked {
                        pdb: blocking_pdb(&status),
                    }),
                    // 404: the pod is gone; 409: the UID precondition failed, so a new pod
                    // took the name and ours is gone too.
                    404 | 409 => Ok(EvictOutcome::AlreadyGone),
                    403 if is_namespace_terminating(&status) => {
                        Ok(EvictOutcome::NamespaceTerminating)
                    }
                    _ => Err(kube_failure("evict pod", kube::Error::Api(status))),
                },
                Err(e) => Err(kube_failure("evict pod", e)),
            }
        })
        .await
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> PortResult<()> {
        let api: Api<Pod> = self.ns(namespace);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match kcall("delete pod", || api.delete(name, &dp)).await {
            Ok(_) => Ok(()),
            // 404 gone; 409 the UID precondition failed: a different pod has the name now.
            Err(PortError::NotFound { .. } | PortError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get_workload(&self, w: &WorkloadRef) -> PortResult<Option<WorkloadView>> {
        match w.kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = self.ns(&w.namespace);
                Ok(kcall("get deployment", || api.get_opt(&w.name))
                    .await?
                    .as_ref()
                    .map(convert::deployment))
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = self.ns(&w.namespace);
                Ok(kcall("get statefulset", || api.get_opt(&w.name))
                    .await?
                    .as_ref()
                    .map(convert::statefulset))
            }
        }
    }

    async fn scale_workload(&self, w: &WorkloadRef, replicas: i32) -> PortResult<()> {
        let body = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let pp = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        match w.kind {
            WorkloadKind::Deployment => {
                let api = self.ns::<Deployment>(&w.namespace);
                kcall("scale workload", || api.patch_scale(&w.name, &pp, &body)).await?;
            }
            WorkloadKind::StatefulSet => {
                let api = self.ns::<StatefulSet>(&w.namespace);
                kcall("scale workload", || api.patch_scale(&w.name, &pp, &body)).await?;
            }
        }
        Ok(())
    }

    async fn patch_workload_annotations(
        &self,
        w: &WorkloadRef,
        annotations: &MetadataPatch,
    ) -> PortResult<()> {
        let body = json!({"metadata": {"annotations": metadata_json(annotations)}});
        match w.kind {
            WorkloadKind::Deployment => {
                self.merge_patch(
                    &self.ns::<Deployment>(&w.namespace),
                    "annotate deployment",
                    &w.name,
                    body,
                )
                .await
            }
            WorkloadKind::StatefulSet => {
                self.merge_patch(
                    &self.ns::<StatefulSet>(&w.namespace),
                    "annotate statefulset",
                    &w.name,
                    body,
                )
                .await
            }
        }
    }

    async fn list_workloads(&self, kind: WorkloadKind) -> PortResult<Vec<WorkloadView>> {
        match kind {
            WorkloadKind::Deployment => {
                list_all(
                    &self.all::<Deployment>(),
                    "list deployments",
                    self.page_size,
                    ListParams::default(),
                    convert::deployment,
                )
                .await
            }
            WorkloadKind::StatefulSet => {
                list_all(
                    &self.all::<StatefulSet>(),
                    "list statefulsets",
                    self.page_size,
                    ListParams::default(),
                    convert::statefulset,
                )
                .await
            }
        }
    }

    async fn list_replicasets(&self, namespace: Option<&str>) -> PortResult<Vec<ReplicaSetView>> {
        let api: Api<ReplicaSet> = match namespace {
            Some(ns) => self.ns(ns),
            None => self.all(),
        };
        list_all(
            &api,
            "list replicasets",
            self.page_size,
            ListParams::default(),
            convert::replicaset,
        )
        .await
    }

    async fn list_daemonsets(&self) -> PortResult<Vec<DaemonSetView>> {
        list_all(
            &self.all::<DaemonSet>(),
            "list daemonsets",
            self.page_size,
            ListParams::default(),
            convert::daemonset,
        )
        .await
    }

    async fn list_hpas(&self) -> PortResult<Vec<HpaView>> {
        list_all(
            &self.all::<HorizontalPodAutoscaler>(),
            "list hpas",
            self.page_size,
            ListParams::default(),
            convert::hpa,
        )
        .await
    }

    async fn patch_hpa(&self, namespace: &str, name: &str, patch: &HpaPatch) -> PortResult<()> {
        let mut spec = serde_json::Map::new();
        if let Some(min) = patch.min_replicas {
            spec.insert("minReplicas".into(), json!(min));
        }
        if let Some(max) = patch.max_replicas {
            spec.insert("maxReplicas".into(), json!(max));
        }
        let body = json!({
            "metadata": {"annotations": metadata_json(&patch.annotations)},
            "spec": spec,
        });
        self.merge_patch(
            &self.ns::<HorizontalPodAutoscaler>(namespace),
            "patch hpa",
            name,
            body,
        )
        .await
    }

    async fn list_pdbs(&self) -> PortResult<Vec<PdbView>> {
        list_all(
            &self.all::<PodDisruptionBudget>(),
            "list pdbs",
            self.page_size,
            ListParams::default(),
            convert::pdb,
        )
        .await
    }

    async fn list_services(&self) -> PortResult<Vec<ServiceView>> {
        list_all(
            &self.all::<Service>(),
            "list services",
            self.page_size,
            ListParams::default(),
            convert::service,
        )
        .await
    }

    async fn list_target_group_bindings(
        &self,
    ) -> PortResult<Vec<ngm_core::model::TargetGroupBindingView>> {
        let ar = kube::core::ApiResource {
            group: "elbv2.k8s.aws".into(),
            version: "v1beta1".into(),
            api_version: "elbv2.k8s.aws/v1beta1".into(),
            kind: "TargetGroupBinding".into(),
            plural: "targetgroupbindings".into(),
        };
        let api: Api<kube::core::DynamicObject> = Api::all_with(self.client.clone(), &ar);
        match list_all(
            &api,
            "list targetgroupbindings",
            self.page_size,
            ListParams::default(),
            convert::target_group_binding,
        )
        .await
        {
            // The Load Balancer Controller is not installed: no binding.
            Err(PortError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    async fn list_persistent_volumes(&self) -> PortResult<Vec<ngm_core::model::VolumeView>> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        list_all(
            &api,
            "list persistentvolumes",
            self.page_size,
            ListParams::default(),
            convert::volume,
        )
        .await
    }

    async fn list_node_pools(&self) -> PortResult<Option<Vec<ngm_core::model::NodePoolView>>> {
        let ar = kube::core::ApiResource {
            group: "karpenter.sh".into(),
            version: "v1".into(),
            api_version: "karpenter.sh/v1".into(),
            kind: "NodePool".into(),
            plural: "nodepools".into(),
        };
        let api: Api<kube::core::DynamicObject> = Api::all_with(self.client.clone(), &ar);
        match list_all(
            &api,
            "list nodepools",
            self.page_size,
            ListParams::default(),
            convert::node_pool,
        )
        .await
        {
            // Karpenter (or its v1 API) is not installed.
            Err(PortError::NotFound { .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn list_endpointslices(
        &self,
        namespace: &str,
        service: &str,
    ) -> PortResult<Vec<EndpointSliceView>> {
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        list_all(
            &self.ns::<EndpointSlice>(namespace),
            "list endpointslices",
            self.page_size,
            lp,
            convert::endpointslice,
        )
        .await
    }

    async fn record_event(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> PortResult<()> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", object.name, now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(object.api_version.clone()),
                kind: Some(object.kind.clone()),
                name: Some(object.name.clone()),
                namespace: object.namespace.clone(),
                uid: object.uid.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(match event_type {
                EventType::Normal => "Normal".to_owned(),
                EventType::Warning => "Warning".to_owned(),
            }),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(MANAGER.to_owned()),
                host: None,
            }),
            reporting_component: Some(MANAGER.to_owned()),
            reporting_instance: Some(MANAGER.to_owned()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = self.ns(&ns);
        let pp = PostParams::default();
        match kcall("create event", || api.create(&pp, &event)).await {
            // The name is unique to the nanosecond: 409 is this event, created by an attempt
            // whose answer was lost.
            Ok(_) | Err(PortError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
