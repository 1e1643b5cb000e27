//! Reading the cluster for planning, in a number of requests that grows with nodes plus
//! workloads and never with nodes × pods.

use ngm_core::model::{
    DaemonSetView, LabelSelector, NodeView, PdbView, PodView, ReplicaSetView, ServiceView,
    WorkloadKind, WorkloadView,
};
use ngm_core::ports::{KubePort, PortResult};

/// Above this many old nodes, one paginated cluster-wide pod list is cheaper than one list per
/// node (a cluster-wide list costs `pods / page` requests; per node costs one per node).
pub const PER_NODE_POD_LIST_LIMIT: usize = 64;

/// Everything the pre-flight report and the workload planners read from Kubernetes.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub old_nodes: Vec<NodeView>,
    /// Pods bound to an old node.
    pub old_pods: Vec<PodView>,
    pub replicasets: Vec<ReplicaSetView>,
    /// Deployments and StatefulSets.
    pub workloads: Vec<WorkloadView>,
    pub daemonsets: Vec<DaemonSetView>,
    pub pdbs: Vec<PdbView>,
    pub services: Vec<ServiceView>,
}

/// Reads the old group's nodes (by `old_nodes` selector), their pods, and the cluster's
/// workloads, budgets and services.
pub async fn observe_cluster(
    kube: &dyn KubePort,
    old_nodes: &LabelSelector,
) -> PortResult<ClusterView> {
    let nodes = kube.list_nodes(old_nodes).await?;
    observe_with_nodes(kube, nodes).await
}

/// As [`observe_cluster`], for old nodes already listed (a self-managed group's nodes are found
/// by instance id, not by a selector).
pub async fn observe_with_nodes(
    kube: &dyn KubePort,
    nodes: Vec<NodeView>,
) -> PortResult<ClusterView> {
    let old_pods = if nodes.len() <= PER_NODE_POD_LIST_LIMIT {
        let mut pods = Vec::new();
        for n in &nodes {
            pods.extend(kube.list_pods_on_node(&n.name).await?);
        }
        pods
    } else {
        let names: std::collections::BTreeSet<&str> =
            nodes.iter().map(|n| n.name.as_str()).collect();
        kube.list_pods(None, &LabelSelector::default())
            .await?
            .into_iter()
            .filter(|p| p.node_name.as_deref().is_some_and(|n| names.contains(n)))
            .collect()
    };
    let mut workloads = kube.list_workloads(WorkloadKind::Deployment).await?;
    workloads.extend(kube.list_workloads(WorkloadKind::StatefulSet).await?);
    Ok(ClusterView {
        old_pods,
        replicasets: kube.list_replicasets(None).await?,
        workloads,
        daemonsets: kube.list_daemonsets().await?,
        pdbs: kube.list_pdbs().await?,
        services: kube.list_services().await?,
        old_nodes: nodes,
    })
}
