//! The twin's Cluster Autoscaler: the loop that reads the Auto Scaling groups and the cluster
//! every `--scan-interval`, applies [`crate::sim::autoscaler`]'s rules, and acts as upstream's
//! AWS provider does (docs/research/cluster-awareness.md §1):
//! - it writes only desired capacity (`SetDesiredCapacity`, `HonorCooldown: false`) and
//!   removes a node with `TerminateInstanceInAutoScalingGroup`, decrementing desired
//!   (`auto_scaling_groups.go`);
//! - it re-lists which groups it owns at most once a minute (`aws_manager.go`,
//!   `refreshInterval`); their sizes are read every scan;
//! - it never reads `SuspendedProcesses` (§1.4): it may raise a group whose `Launch` is
//!   suspended, nothing launches, and after `--max-node-provision-time` it gives the nodes up
//!   (lowers desired back to the instances there are) and backs the group off for 5 minutes
//!   (`--initial-node-group-backoff-duration`, FAQ parameter table);
//! - a node it removes is tainted `ToBeDeletedByClusterAutoscaler` (`NoSchedule`), its pods
//!   are evicted through the Eviction API (PDBs honoured) for at most 2 minutes, else the
//!   taint goes and the node stays (FAQ "Does CA work with PodDisruptionBudget in
//!   scale-down?"); then it waits for the pods to go (`--max-graceful-termination-sec`) and
//!   terminates the instance. The cloud node controller, not CA, deletes the Node (FAQ): the
//!   EKS reconciler does that here.
//!
//! One node is removed at a time (the FAQ's "one non-empty node at a time"; the twin does not
//! delete empty nodes in bulk).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Serialize;
use serde_json::{Value, json};

use super::Eks;
use super::asg::{self, AsgView};
use super::error::EksError;
use crate::clock::secs_delta;
use crate::sim::autoscaler::{self as rules, AutoscalerSettings, GroupOption, TO_BE_DELETED_TAINT};
use crate::sim::nodes::{ASG_ANNOTATION, NodeTemplate, build_node, instance_id_of};
use crate::sim::podutil::{
    created, is_terminal, node_ready, node_taints, node_unschedulable, requests,
};
use crate::sim::scheduling::NodeInfo;
use crate::store::{LabelSelector, Resource};

/// How often the autoscaler re-lists the groups it owns (`aws_manager.go`, `refreshInterval`).
const REFRESH_SECONDS: f64 = 60.0;
/// How long it keeps retrying refused evictions before it keeps the node (FAQ).
const EVICTION_RETRY_SECONDS: f64 = 120.0;
/// `--initial-node-group-backoff-duration`.
const BACKOFF_SECONDS: f64 = 300.0;

/// What the autoscaler did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AutoscalerStep {
    /// Raised a group's desired capacity.
    ScaleUp,
    /// Gave up on nodes that did not come within the max node provision time.
    GaveUp,
    /// Removed a node (its instance terminated, desired decremented).
    ScaleDown,
    /// Started removing a node and kept it (an eviction stayed refused).
    ScaleDownFailed,
}

/// One action of the autoscaler, for the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerAction {
    pub at: DateTime<Utc>,
    pub step: AutoscalerStep,
    /// The Auto Scaling group.
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Desired capacity before and after.
    pub from: i32,
    pub to: i32,
    pub detail: String,
}

/// What the autoscaler keeps between scans (upstream keeps it in memory too).
#[derive(Default)]
struct Memory {
    owned: Vec<String>,
    listed_at: Option<DateTime<Utc>>,
    /// Nodes found unneeded, and since when.
    unneeded: HashMap<String, DateTime<Utc>>,
    last_scale_up: Option<DateTime<Utc>>,
    /// Groups it raised whose nodes have not all come, and when it raised them.
    raised: HashMap<String, DateTime<Utc>>,
    /// Groups backed off after a failed scale-up, until when.
    backoff: HashMap<String, DateTime<Utc>>,
    /// A node removal under way.
    deleting: Arc<AtomicBool>,
}

/// What one scan read: the owned groups, their registered nodes, every pod and every node.
struct View<'a> {
    groups: &'a [AsgView],
    members: &'a [Member],
    pods: &'a [Pod],
    all: &'a [NodeInfo],
    now: DateTime<Utc>,
}

/// A registered node of an owned group, as one scan sees it.
struct Member {
    node: Node,
    group: String,
}

impl Eks {
    /// Every action the Cluster Autoscaler took, in order.
    pub fn autoscaler_log(&self) -> Vec<AutoscalerAction> {
        self.state().autoscaler.clone()
    }

    fn log_autoscaler(&self, action: AutoscalerAction) {
        tracing::info!(step = ?action.step, group = %action.group, node = ?action.node, from = action.from, to = action.to, detail = %action.detail, "cluster autoscaler");
        self.state().autoscaler.push(action);
    }

    /// Runs the Cluster Autoscaler every `scan_interval_seconds` of simulated time until the
    /// task is aborted. A failed scan (moto unreachable) is logged and the next one runs.
    pub fn start_autoscaler(&self, settings: AutoscalerSettings) -> tokio::task::JoinHandle<()> {
        let eks = self.clone();
        self.inner
            .store
            .supervisor()
            .spawn("cluster autoscaler", async move {
                let mut memory = Memory::default();
                let tags = settings.tags_for(&eks.inner.cfg.cluster_name);
                let period = Duration::from_secs_f64(settings.scan_interval_seconds.max(0.1));
                loop {
                    if let Err(e) = eks.autoscale_once(&settings, &tags, &mut memory).await {
                        tracing::warn!(error = %e, "cluster autoscaler scan failed");
                    }
                    eks.inner.clock.sleep(period).await;
                }
            })
    }

    async fn autoscale_once(
        &self,
        settings: &AutoscalerSettings,
        tags: &[String],
        memory: &mut Memory,
    ) -> Result<(), EksError> {
        let client = &self.inner.asg;
        let now = self.inner.clock.now();
        if memory
            .listed_at
            .is_none_or(|t| now - t >= secs_delta(REFRESH_SECONDS))
        {
            let listed = match tags.first() {
                Some(first) => {
                    let key = first.split_once('=').map_or(first.as_str(), |(k, _)| k);
                    asg::groups_with_tag(client, key).await?
                }
                None => Vec::new(),
            };
            memory.owned = listed
                .into_iter()
                .filter(|g| rules::discovered(&g.tags, tags))
                .map(|g| g.name)
                .collect();
            memory.listed_at = Some(now);
        }
        let groups = asg::groups_named(client, &memory.owned).await?;
        let store = &self.inner.store;
        let dead = store.dead_instances();
        let members: Vec<Member> = store
            .list_all(Resource::Node, None)
            .iter()
            .filter_map(|v| {
                let group = v
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(ASG_ANNOTATION))
                    .and_then(Value::as_str)?
                    .to_string();
                let node: Node = serde_json::from_value((**v).clone()).ok()?;
                let name = node.metadata.name.as_deref()?;
                (!dead.contains(name)).then_some(Member { node, group })
            })
            .collect();
        let pods: Vec<Pod> = store
            .list_all(Resource::Pod, None)
            .iter()
            .filter_map(|v| serde_json::from_value((**v).clone()).ok())
            .collect();
        let infos = self.node_infos(&pods);
        let ready_in = |g: &str| {
            members
                .iter()
                .filter(|m| m.group == g && node_ready(&m.node))
                .count() as i32
        };

        for g in &groups {
            self.give_up_if_late(g, ready_in(&g.name), settings, memory, now)
                .await?;
        }

        let mut pending: Vec<&Pod> = pods.iter().filter(|p| rules::unschedulable(p)).collect();
        pending.sort_by_key(|p| created(p));
        if !pending.is_empty() {
            let mut options = Vec::new();
            for g in &groups {
                if memory
                    .backoff
                    .get(&g.name)
                    .is_some_and(|until| now < *until)
                {
                    continue;
                }
                let Some(template) = self.template(g).await? else {
                    continue;
                };
                options.push(GroupOption {
                    name: g.name.clone(),
                    template,
                    desired: g.desired,
                    max: g.max,
                    upcoming: (g.desired - ready_in(&g.name)).max(0),
                });
            }
            let pending: Vec<Pod> = pending.into_iter().cloned().collect();
            let ready: Vec<NodeInfo> = infos
                .iter()
                .filter(|i| node_ready(&i.node))
                .cloned()
                .collect();
            if let Some(up) = rules::plan_scale_up(&pending, &ready, &options) {
                asg::set_desired(client, &up.group, up.to).await?;
                memory.last_scale_up = Some(now);
                memory.raised.insert(up.group.clone(), now);
                self.log_autoscaler(AutoscalerAction {
                    at: now,
                    step: AutoscalerStep::ScaleUp,
                    group: up.group,
                    node: None,
                    from: up.from,
                    to: up.to,
                    detail: format!("{} unschedulable pod(s)", up.pods),
                });
            }
        }

        let view = View {
            groups: &groups,
            members: &members,
            pods: &pods,
            all: &infos,
            now,
        };
        self.find_unneeded(settings, memory, &view);
        let cooling = memory
            .last_scale_up
            .is_some_and(|t| now - t < secs_delta(settings.scale_down_delay_after_add_seconds));
        if cooling || memory.deleting.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut due: Vec<(DateTime<Utc>, String)> = memory
            .unneeded
            .iter()
            .filter(|(_, since)| now - **since >= secs_delta(settings.scale_down_unneeded_seconds))
            .map(|(n, since)| (*since, n.clone()))
            .collect();
        due.sort();
        for (_, name) in due {
            let Some(m) = members
                .iter()
                .find(|m| m.node.metadata.name.as_deref() == Some(&name))
            else {
                continue;
            };
            let Some(g) = groups.iter().find(|g| g.name == m.group) else {
                continue;
            };
            // Never below the group's minimum (README: "will respect the minimum and maximum").
            if g.desired <= g.min {
                continue;
            }
            memory.unneeded.remove(&name);
            memory.deleting.store(true, Ordering::SeqCst);
            let eks = self.clone();
            let (group, desired, grace) = (
                g.name.clone(),
                g.desired,
                settings.max_graceful_termination_seconds,
            );
            let node = m.node.clone();
            let flag = memory.deleting.clone();
            self.inner.store.supervisor().spawn(
                format!("cluster autoscaler removes {name}"),
                async move {
                    if let Err(e) = eks.remove_node(&node, &group, desired, grace).await {
                        tracing::warn!(error = %e, "cluster autoscaler node removal failed");
                    }
                    flag.store(false, Ordering::SeqCst);
                },
            );
            break;
        }
        Ok(())
    }

    /// Gives up on a raise whose nodes did not all become Ready within the max node provision
    /// time: the group goes back to the instances it has, and is backed off.
    async fn give_up_if_late(
        &self,
        g: &AsgView,
        ready: i32,
        settings: &AutoscalerSettings,
        memory: &mut Memory,
        now: DateTime<Utc>,
    ) -> Result<(), EksError> {
        let Some(raised) = memory.raised.get(&g.name).copied() else {
            return Ok(());
        };
        if ready >= g.desired {
            memory.raised.remove(&g.name);
            return Ok(());
        }
        if now - raised < secs_delta(settings.max_node_provision_seconds) {
            return Ok(());
        }
        memory.raised.remove(&g.name);
        memory
            .backoff
            .insert(g.name.clone(), now + secs_delta(BACKOFF_SECONDS));
        let there = g.instances.len() as i32;
        let to = there.clamp(g.min, g.desired);
        if to < g.desired {
            asg::set_desired(&self.inner.asg, &g.name, to).await?;
        }
        self.log_autoscaler(AutoscalerAction {
            at: now,
            step: AutoscalerStep::GaveUp,
            group: g.name.clone(),
            node: None,
            from: g.desired,
            to,
            detail: format!(
                "{} of {} nodes Ready after {} s",
                ready, g.desired, settings.max_node_provision_seconds
            ),
        });
        Ok(())
    }

    /// A node as the group would launch it: a managed group's labels and taints from its
    /// node group (as the AWS provider reads them from DescribeNodegroup), a self-managed
    /// group's from its node-template tags; its first zone; its instance type's allocatable.
    async fn template(&self, g: &AsgView) -> Result<Option<Node>, EksError> {
        let managed = g
            .tag("eks:nodegroup-name")
            .and_then(|n| self.state().groups.get(n).cloned());
        let mut t = NodeTemplate {
            asg: Some(g.name.clone()),
            zone: g.zones.first().cloned().unwrap_or_default(),
            ..NodeTemplate::default()
        };
        match managed {
            Some(ng) => {
                t.nodegroup = Some(ng.spec.name.clone());
                t.capacity_type = ng.spec.capacity_type.clone();
                t.instance_type = ng.spec.instance_types.first().cloned().unwrap_or_default();
                t.labels = ng.spec.labels.clone();
                t.taints = ng
                    .spec
                    .taints
                    .iter()
                    .map(|x| (x.key.clone(), x.value.clone(), x.k8s_effect().to_string()))
                    .collect();
            }
            None => {
                (t.labels, t.taints) = super::nodes::self_managed_template(g);
                t.instance_type = match g.instances.first() {
                    Some(i) => i.instance_type.clone(),
                    None => match &g.launch_configuration {
                        Some(lc) => asg::launch_instance_type(&self.inner.asg, lc)
                            .await?
                            .unwrap_or_default(),
                        None => String::new(),
                    },
                };
            }
        }
        // An instance type the twin cannot size cannot be simulated.
        Ok(build_node(&t, self.inner.clock.now())
            .ok()
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Marks the owned groups' nodes that could go as unneeded (keeping the time they first
    /// were), and forgets the rest.
    fn find_unneeded(&self, settings: &AutoscalerSettings, memory: &mut Memory, view: &View<'_>) {
        let View {
            groups,
            members,
            pods,
            all,
            now,
        } = *view;
        let pdbs = self
            .inner
            .store
            .list_all(Resource::PodDisruptionBudget, None);
        let pdb_of = |pod: &Pod| -> Option<(String, i64)> {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let labels = json!(pod.metadata.labels.clone().unwrap_or_default());
            pdbs.iter().find_map(|p| {
                if p.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns) {
                    return None;
                }
                let sel = LabelSelector::from_object(p.pointer("/spec/selector")).ok()?;
                sel.matches(Some(&labels)).then(|| {
                    (
                        p.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        p.pointer("/status/disruptionsAllowed")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                    )
                })
            })
        };
        let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for p in pods.iter().filter(|p| !is_terminal(p)) {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                by_node.entry(n).or_default().push(p);
            }
        }
        let info = |node: &Node| {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            all.iter().find(|i| i.name == name).cloned()
        };
        let being_deleted = |n: &Node| node_taints(n).iter().any(|t| t.key == TO_BE_DELETED_TAINT);
        let owned: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let mut still = HashMap::new();
        for m in members.iter().filter(|m| owned.contains(&m.group.as_str())) {
            let name = m.node.metadata.name.clone().unwrap_or_default();
            if !node_ready(&m.node) || rules::scale_down_disabled(&m.node) || being_deleted(&m.node)
            {
                continue;
            }
            let Some(mine) = info(&m.node) else {
                continue;
            };
            if rules::utilization(&mine) >= settings.utilization_threshold {
                continue;
            }
            let moving: Vec<&Pod> = by_node
                .get(name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| !rules::stays(p))
                .collect();
            if moving.iter().any(|p| {
                let pdb = pdb_of(p);
                rules::blocker(p, pdb.as_ref().map(|(n, a)| (n.as_str(), *a))).is_some()
            }) {
                continue;
            }
            let mut others: Vec<NodeInfo> = all
                .iter()
                .filter(|i| i.name != name && !being_deleted(&i.node))
                .filter(|i| !node_unschedulable(&i.node))
                .cloned()
                .collect();
            if rules::fit_elsewhere(&moving, &mut others).is_err() {
                continue;
            }
            let since = memory.unneeded.get(&name).copied().unwrap_or(now);
            still.insert(name, since);
        }
        memory.unneeded = still;
    }

    /// Every node whose instance runs, with the requests of the pods bound to it.
    fn node_infos(&self, pods: &[Pod]) -> Vec<NodeInfo> {
        let mut by_node: HashMap<&str, Vec<&Pod>> = HashMap::new();
        for p in pods.iter().filter(|p| !is_terminal(p)) {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                by_node.entry(n).or_default().push(p);
            }
        }
        let dead = self.inner.store.dead_instances();
        self.inner
            .store
            .list_all(Resource::Node, None)
            .iter()
            .filter_map(|v| serde_json::from_value::<Node>((**v).clone()).ok())
            .filter(|n| {
                n.metadata
                    .name
                    .as_deref()
                    .is_some_and(|x| !dead.contains(x))
            })
            .map(|n| {
                let mut i = NodeInfo::new(n);
                for p in by_node.get(i.name.as_str()).into_iter().flatten() {
                    i.add(requests(p));
                }
                i
            })
            .collect()
    }

    /// Taints, drains and terminates one node (see the module doc).
    async fn remove_node(
        &self,
        node: &Node,
        group: &str,
        desired: i32,
        grace_seconds: f64,
    ) -> Result<(), EksError> {
        let store = &self.inner.store;
        let clock = &self.inner.clock;
        let name = node.metadata.name.clone().unwrap_or_default();
        let Some(instance) = serde_json::to_value(node)
            .ok()
            .and_then(|v| instance_id_of(&v).map(str::to_string))
        else {
            return Ok(());
        };
        let start = clock.now();
        let taint = json!({
            "key": TO_BE_DELETED_TAINT,
            "value": start.timestamp().to_string(),
            "effect": "NoSchedule",
        });
        let _ = store.mutate(Resource::Node, "", &name, |n| {
            let mut taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
            taints.push(taint.clone());
            n["spec"]["taints"] = json!(taints);
            Ok(())
        });
        let on_node = || -> Vec<Pod> {
            store
                .list_all(Resource::Pod, None)
                .iter()
                .filter(|v| v.pointer("/spec/nodeName").and_then(Value::as_str) == Some(&name))
                .filter_map(|v| serde_json::from_value::<Pod>((**v).clone()).ok())
                .filter(|p| !rules::stays(p))
                .collect()
        };
        let evict_deadline = start + secs_delta(EVICTION_RETRY_SECONDS);
        loop {
            let mut refused = None;
            for p in on_node()
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                let (ns, pod) = crate::sim::podutil::key(&p.metadata);
                let eviction = json!({
                    "apiVersion": "policy/v1",
                    "kind": "Eviction",
                    "metadata": { "name": pod, "namespace": ns },
                });
                if let Err(e) = store.evict(&ns, &pod, &eviction)
                    && e.code != 404
                {
                    refused = Some(format!("eviction of {ns}/{pod} refused ({})", e.code));
                }
            }
            let Some(why) = refused else {
                break;
            };
            if clock.now() >= evict_deadline {
                let _ = store.mutate(Resource::Node, "", &name, |n| {
                    if let Some(ts) = n["spec"]["taints"].as_array_mut() {
                        ts.retain(|t| t["key"] != TO_BE_DELETED_TAINT);
                    }
                    Ok(())
                });
                self.log_autoscaler(AutoscalerAction {
                    at: clock.now(),
                    step: AutoscalerStep::ScaleDownFailed,
                    group: group.to_string(),
                    node: Some(name.clone()),
                    from: desired,
                    to: desired,
                    detail: why,
                });
                return Ok(());
            }
            clock.sleep(Duration::from_secs(5)).await;
        }
        let gone_by = clock.now() + secs_delta(grace_seconds);
        while !on_node().is_empty() && clock.now() < gone_by {
            clock.sleep(Duration::from_secs(1)).await;
        }
        asg::terminate(&self.inner.asg, &instance).await?;
        self.log_autoscaler(AutoscalerAction {
            at: clock.now(),
            step: AutoscalerStep::ScaleDown,
            group: group.to_string(),
            node: Some(name),
            from: desired,
            to: desired - 1,
            detail: format!("unneeded since before {start}"),
        });
        Ok(())
    }
}
