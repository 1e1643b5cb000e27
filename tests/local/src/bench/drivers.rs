//! The alternatives ngm is measured against, done as their users do them, over the real
//! aws-sdk-eks, aws-sdk-autoscaling and kube clients against the twin (docs/bench.md):
//!
//! - `mng-update`: UpdateNodegroupVersion on the old group, tracked with DescribeUpdate every
//!   30 s until it ends (the EKS console and `aws eks wait` poll so);
//! - `drain-rotation`: the new group created and waited for, the old nodes cordoned, `kubectl
//!   drain --ignore-daemonsets --delete-emptydir-data --force --timeout=10m` on each in turn,
//!   then the old group deleted;
//! - `replace`: what an infrastructure-as-code replacement does: the new group created and
//!   waited for, then the old group deleted (EKS's own drain, then forced termination).
//!
//! Waits poll every 30 s, the delay of the SDK's `NodegroupActive` and `NodegroupDeleted`
//! waiters (aws-sdk-eks `waiters`), which eksctl and Terraform's provider also use.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eks::types::{NodegroupScalingConfig, Taint, TaintEffect};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use ngm_core::request::{MigrationRequest, SourceGroup};
use ngm_twin::clock::Clock;
use ngm_twin::scenario::{NodeGroupKind, Scenario};

/// The SDK waiters' delay between two DescribeNodegroup calls.
const WAITER_POLL: Duration = Duration::from_secs(30);
/// kubectl drain's `--timeout` here: ngm's default drain deadline, for a like-for-like run.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// kubectl retries an eviction a PDB refused (429) after 5 s, and checks every 1 s that an
/// evicted pod is gone (staging/src/k8s.io/kubectl/pkg/drain/drain.go: `evictPods`,
/// `waitForDelete`).
const EVICTION_RETRY: Duration = Duration::from_secs(5);
const DELETE_POLL: Duration = Duration::from_secs(1);

/// What a driver talks to.
pub(super) struct Ctx {
    pub eks: aws_sdk_eks::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub kube: kube::Client,
    pub clock: Clock,
    /// Subnet ids of the cluster's VPC by zone (to place a self-managed source's successor).
    pub subnets: BTreeMap<String, String>,
}

/// How a strategy ended: `Ok(notes)` when it did all it does (notes say what it left out),
/// `Err(why)` when it stopped.
pub(super) type Ended = Result<Vec<String>, String>;

fn err(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or_default().to_string()
}

fn sdk_err<E: std::error::Error + 'static>(e: &aws_sdk_eks::error::SdkError<E>) -> String {
    use std::error::Error as _;
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out = format!("{out}: {s}");
        src = s.source();
    }
    out
}

fn effect(k8s: &str) -> TaintEffect {
    match k8s {
        "NoExecute" | "NO_EXECUTE" => TaintEffect::NoExecute,
        "PreferNoSchedule" | "PREFER_NO_SCHEDULE" => TaintEffect::PreferNoSchedule,
        _ => TaintEffect::NoSchedule,
    }
}

/// The new group as the request asks for it, anything it leaves out copied from the source
/// (what ngm does too), created with CreateNodegroup; returns its name.
pub(super) async fn create_target(
    ctx: &Ctx,
    req: &MigrationRequest,
    scenario: &Scenario,
) -> Result<String, String> {
    let cluster = &req.cluster.name;
    let old = req.source.name();
    let t = &req.target;
    let name = t.name.clone().unwrap_or_else(|| format!("{old}-new"));
    let mut create = ctx
        .eks
        .create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(&name);
    let (
        mut types,
        mut subnets,
        mut ami,
        mut release,
        mut role,
        mut labels,
        mut taints,
        mut scaling,
    ) = match &req.source {
        SourceGroup::ManagedNodeGroup(g) => {
            let ng = ctx
                .eks
                .describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(g)
                .send()
                .await
                .map_err(|e| sdk_err(&e))?
                .nodegroup
                .ok_or("DescribeNodegroup answered no group")?;
            let s = ng.scaling_config.clone();
            (
                ng.instance_types.clone().unwrap_or_default(),
                ng.subnets.clone().unwrap_or_default(),
                ng.ami_type.as_ref().map(|a| a.as_str().to_string()),
                ng.release_version.clone(),
                ng.node_role.clone().unwrap_or_default(),
                ng.labels.clone().unwrap_or_default().into_iter().collect(),
                ng.taints
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key, t.value, t.effect.map(|e| e.as_str().to_string())))
                    .collect::<Vec<_>>(),
                s.map(|s| (s.min_size, s.max_size, s.desired_size)),
            )
        }
        SourceGroup::AutoScalingGroup(g) => {
            let spec = scenario
                .cluster
                .node_groups
                .iter()
                .find(|n| n.name == *g && n.kind == NodeGroupKind::SelfManaged)
                .ok_or_else(|| format!("the scenario has no self-managed group {g}"))?;
            let as_i32 = |n: u32| i32::try_from(n).ok();
            (
                spec.instance_types.clone(),
                spec.zones
                    .iter()
                    .filter_map(|z| ctx.subnets.get(z).cloned())
                    .collect(),
                Some(spec.ami_type.clone()),
                Some(spec.ami_release.clone()),
                "arn:aws:iam::000000000000:role/bench-node".to_string(),
                spec.labels.clone(),
                spec.taints
                    .iter()
                    .map(|t| (Some(t.key.clone()), t.value.clone(), Some(t.effect.clone())))
                    .collect(),
                Some((
                    spec.min_size.and_then(as_i32),
                    spec.max_size.and_then(as_i32),
                    as_i32(spec.desired_size),
                )),
            )
        }
    };
    if let Some(v) = &t.instance_types {
        types.clone_from(v);
    }
    if let Some(v) = &t.subnets {
        subnets.clone_from(v);
    }
    if let Some(v) = &t.ami_type {
        ami = Some(v.clone());
    }
    if let Some(v) = &t.release_version {
        release = Some(v.clone());
    }
    if let Some(v) = &t.node_role_arn {
        role.clone_from(v);
    }
    if let Some(v) = &t.labels {
        labels.clone_from(v);
    }
    if let Some(v) = &t.taints {
        taints = v
            .iter()
            .map(|t| (Some(t.key.clone()), t.value.clone(), Some(t.effect.clone())))
            .collect();
    }
    if let Some(s) = &t.scaling {
        scaling = Some((Some(s.min), Some(s.max), Some(s.desired)));
    }
    let (min, max, desired) = scaling.unwrap_or_default();
    create = create
        .set_instance_types(Some(types))
        .set_subnets(Some(subnets))
        .node_role(role)
        .set_labels(Some(labels.into_iter().collect()))
        .scaling_config(
            NodegroupScalingConfig::builder()
                .set_min_size(min)
                .set_max_size(max)
                .set_desired_size(desired)
                .build(),
        );
    if let Some(a) = ami {
        create = create.ami_type(a.as_str().into());
    }
    if let Some(r) = release {
        create = create.release_version(r);
    }
    if let Some(c) = &t.capacity_type {
        let c = serde_json::to_value(c).map_err(err)?;
        create = create.capacity_type(c.as_str().unwrap_or("ON_DEMAND").into());
    }
    for (key, value, eff) in taints {
        create = create.taints(
            Taint::builder()
                .set_key(key)
                .set_value(value)
                .effect(effect(eff.as_deref().unwrap_or_default()))
                .build(),
        );
    }
    create.send().await.map_err(|e| sdk_err(&e))?;
    Ok(name)
}

/// Polls DescribeNodegroup until the group is ACTIVE; fails on CREATE_FAILED.
pub(super) async fn wait_active(ctx: &Ctx, cluster: &str, name: &str) -> Result<(), String> {
    loop {
        let ng = ctx
            .eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
            .map_err(|e| sdk_err(&e))?
            .nodegroup
            .ok_or("DescribeNodegroup answered no group")?;
        match ng
            .status
            .as_ref()
            .map(aws_sdk_eks::types::NodegroupStatus::as_str)
        {
            Some("ACTIVE") => return Ok(()),
            Some("CREATE_FAILED") => return Err(format!("{name} ended CREATE_FAILED")),
            _ => ctx.clock.sleep(WAITER_POLL).await,
        }
    }
}

/// Deletes the old group and waits until it is gone: DeleteNodegroup for a managed group
/// (EKS drains it, for at most its drain timeout, then terminates), or a forced
/// DeleteAutoScalingGroup for a self-managed one (no drain at all: what deleting its stack does).
pub(super) async fn delete_old(ctx: &Ctx, cluster: &str, source: &SourceGroup) -> Ended {
    match source {
        SourceGroup::ManagedNodeGroup(g) => {
            ctx.eks
                .delete_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(g)
                .send()
                .await
                .map_err(|e| sdk_err(&e))?;
            loop {
                ctx.clock.sleep(WAITER_POLL).await;
                match ctx
                    .eks
                    .describe_nodegroup()
                    .cluster_name(cluster)
                    .nodegroup_name(g)
                    .send()
                    .await
                {
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_not_found_exception()) =>
                    {
                        return Ok(Vec::new());
                    }
                    Err(e) => return Err(sdk_err(&e)),
                    Ok(_) => {}
                }
            }
        }
        SourceGroup::AutoScalingGroup(g) => {
            ctx.asg
                .delete_auto_scaling_group()
                .auto_scaling_group_name(g)
                .force_delete(true)
                .send()
                .await
                .map_err(err)?;
            Ok(vec![format!(
                "{g} deleted with its instances (ForceDelete): a self-managed group has no drain"
            )])
        }
    }
}

/// The old group's nodes: by the managed group's label, or by the Auto Scaling group's
/// instances for a self-managed one (each Node's providerID ends with its instance id).
pub(super) async fn old_nodes(ctx: &Ctx, source: &SourceGroup) -> Result<Vec<String>, String> {
    let nodes: Api<Node> = Api::all(ctx.kube.clone());
    let names = |list: Vec<Node>| -> Vec<String> {
        list.into_iter().filter_map(|n| n.metadata.name).collect()
    };
    match source {
        SourceGroup::ManagedNodeGroup(g) => {
            let lp = ListParams::default().labels(&format!("eks.amazonaws.com/nodegroup={g}"));
            Ok(names(nodes.list(&lp).await.map_err(err)?.items))
        }
        SourceGroup::AutoScalingGroup(g) => {
            let out = ctx
                .asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(g)
                .send()
                .await
                .map_err(err)?;
            let ids: Vec<String> = out
                .auto_scaling_groups()
                .iter()
                .flat_map(|a| a.instances())
                .filter_map(|i| i.instance_id().map(str::to_string))
                .collect();
            let all = nodes.list(&ListParams::default()).await.map_err(err)?.items;
            Ok(all
                .into_iter()
                .filter(|n| {
                    n.spec
                        .as_ref()
                        .and_then(|s| s.provider_id.as_deref())
                        .is_some_and(|p| ids.iter().any(|id| p.ends_with(id.as_str())))
                })
                .filter_map(|n| n.metadata.name)
                .collect())
        }
    }
}

/// `kubectl cordon`.
pub(super) async fn cordon(ctx: &Ctx, node: &str) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(ctx.kube.clone());
    let patch = serde_json::json!({ "spec": { "unschedulable": true } });
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(err)
}

fn drained_by_kubectl(p: &Pod) -> bool {
    let daemon = p
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"));
    let mirror = p
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    !daemon && !mirror
}

/// `kubectl drain NODE --ignore-daemonsets --delete-emptydir-data --force --timeout=T`:
/// every pod but DaemonSet and mirror pods evicted (a 429 retried after 5 s), then waited for
/// until gone. `Ok(None)` when the node is empty; `Ok(Some(pods))` when the timeout passed
/// with these pods left (kubectl exits 1; the rotation goes on, as a script with `|| true`).
pub(super) async fn kubectl_drain(
    ctx: &Ctx,
    node: &str,
    timeout: Duration,
) -> Result<Option<Vec<String>>, String> {
    let pods: Api<Pod> = Api::all(ctx.kube.clone());
    let deadline = ctx.clock.now() + chrono::TimeDelta::from_std(timeout).map_err(err)?;
    loop {
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let left: Vec<Pod> = pods
            .list(&lp)
            .await
            .map_err(err)?
            .items
            .into_iter()
            .filter(drained_by_kubectl)
            .collect();
        if left.is_empty() {
            return Ok(None);
        }
        if ctx.clock.now() >= deadline {
            return Ok(Some(
                left.iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.metadata.namespace.as_deref().unwrap_or_default(),
                            p.metadata.name.as_deref().unwrap_or_default()
                        )
                    })
                    .collect(),
            ));
        }
        let mut refused = false;
        for p in left
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(ctx.kube.clone(), &ns);
            match api.evict(&name, &EvictParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 429 => refused = true,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(err(e)),
            }
        }
        let pause = if refused { EVICTION_RETRY } else { DELETE_POLL };
        ctx.clock.sleep(pause).await;
    }
}

/// UpdateNodegroupVersion to `release`, then DescribeUpdate every 30 s until it ends.
pub(super) async fn mng_update(
    ctx: &Ctx,
    cluster: &str,
    group: &str,
    release: Option<&str>,
) -> Ended {
    let update = ctx
        .eks
        .update_nodegroup_version()
        .cluster_name(cluster)
        .nodegroup_name(group)
        .set_release_version(release.map(str::to_string))
        .send()
        .await
        .map_err(|e| sdk_err(&e))?
        .update
        .and_then(|u| u.id)
        .ok_or("UpdateNodegroupVersion answered no update id")?;
    loop {
        ctx.clock.sleep(WAITER_POLL).await;
        let u = ctx
            .eks
            .describe_update()
            .name(cluster)
            .nodegroup_name(group)
            .update_id(&update)
            .send()
            .await
            .map_err(|e| sdk_err(&e))?
            .update
            .ok_or("DescribeUpdate answered no update")?;
        match u
            .status
            .as_ref()
            .map(aws_sdk_eks::types::UpdateStatus::as_str)
        {
            Some("Successful") => return Ok(Vec::new()),
            Some("InProgress") | None => {}
            Some(other) => {
                let why: Vec<String> = u
                    .errors()
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.error_code().map(|c| c.as_str()).unwrap_or("?"),
                            e.error_message().unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(format!("update {other}: {}", why.join("; ")));
            }
        }
    }
}
