//! The one reconciler: Node objects follow the InService instances of every Auto Scaling
//! group tagged `kubernetes.io/cluster/<cluster>`, and managed groups move through their
//! statuses as their nodes come and go.
//!
//! moto starts every instance InService at once and in one zone, so boot time is counted from
//! the first pass that sees an instance, and zones are spread over the group's zone list in
//! launch order.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::asg::{self, AsgView};
use super::error::EksError;
use super::model::{NodegroupStatus, Taint};
use super::{Eks, InstanceRecord};
use crate::clock::secs_delta;
use crate::sim::nodes::{NodeTemplate, register_node, terminate_instance};
use crate::store::{ListParams, Resource};

/// An Auto Scaling group tag giving its nodes' boot time in seconds.
pub const BOOT_SECONDS_TAG: &str = "ngm-twin/boot-seconds";
/// Cluster Autoscaler's node-template tags, read for the labels and taints of a self-managed
/// group's nodes (the kubelet flags a real self-managed group would set).
const CA_LABEL_TAG: &str = "k8s.io/cluster-autoscaler/node-template/label/";
const CA_TAINT_TAG: &str = "k8s.io/cluster-autoscaler/node-template/taint/";

/// A Node to register for an instance.
struct Wanted {
    instance: String,
    template: NodeTemplate,
}

fn is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

impl Eks {
    /// One reconciler pass: register booted instances, remove Nodes whose instance is gone,
    /// and settle managed-group statuses.
    pub async fn reconcile_once(&self) -> Result<(), EksError> {
        let cfg = &self.inner.cfg;
        // A rebalance under way when the groups were read holds one above their size.
        let rebalancing = self.state().rebalancing.clone();
        let groups = asg::cluster_groups(&self.inner.asg, &cfg.cluster_name).await?;
        let wanted = self.observe(&groups);
        let store = &self.inner.store;
        for w in wanted {
            match register_node(store, &w.template) {
                Ok(node) => {
                    let name = node
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if let Some(rec) = self.state().instances.get_mut(&w.instance) {
                        rec.node_name = name;
                    }
                }
                // An unknown instance type cannot be sized; the instance stays unregistered.
                Err(e) => {
                    tracing::warn!(instance = %w.instance, error = %e, "node registration failed")
                }
            }
        }
        let live: HashSet<&str> = groups
            .iter()
            .flat_map(|g| g.instances.iter().filter(|i| i.in_service))
            .map(|i| i.id.as_str())
            .collect();
        let gone: Vec<(String, Option<String>)> = self
            .state()
            .instances
            .iter()
            .filter(|(id, _)| !live.contains(id.as_str()))
            .map(|(id, r)| (id.clone(), r.node_name.clone()))
            .collect();
        for (instance, node) in gone {
            if let Some(node) = node {
                self.terminate_node(&node);
            }
            self.state().instances.remove(&instance);
        }
        self.sync_desired(&groups, &rebalancing);
        self.settle_statuses(&groups);
        Ok(())
    }

    /// A managed group's `scalingConfig.desiredSize` follows its Auto Scaling group's desired
    /// capacity when someone else (the Cluster Autoscaler) changes it: "When the Cluster
    /// Autoscaler is used, the `desiredSize` parameter is altered by the Cluster Autoscaler"
    /// (EKS API reference, `NodegroupScalingConfig`). A group EKS itself is resizing or
    /// updating keeps the size it was asked for until the update settles.
    fn sync_desired(&self, groups: &[AsgView], rebalancing_before: &HashSet<String>) {
        let mut st = self.state();
        let rebalancing = st.rebalancing.clone();
        let st_rebalancing =
            |name: &str| rebalancing.contains(name) || rebalancing_before.contains(name);
        for ng in st.groups.values_mut() {
            let steady = matches!(
                ng.status,
                NodegroupStatus::Active | NodegroupStatus::Degraded
            );
            if ng.busy || !steady || !ng.backing_ready || st_rebalancing(&ng.spec.name) {
                continue;
            }
            if let Some(g) = groups.iter().find(|g| g.name == ng.asg_name) {
                ng.spec.scaling.desired_size = g.desired;
            }
        }
    }

    /// The node's instance terminated: the Node and its pods linger until the node lifecycle
    /// controller notices (`crate::sim::nodelifecycle`).
    pub(crate) fn terminate_node(&self, name: &str) {
        terminate_instance(&self.inner.store, name);
    }

    /// The Nodes of a managed group's running instances (EKS knows its instances from EC2; a
    /// terminated one's Node may linger in the API).
    pub(crate) fn group_nodes(&self, nodegroup: &str) -> Vec<std::sync::Arc<Value>> {
        let params = ListParams {
            label_selector: Some(format!("eks.amazonaws.com/nodegroup={nodegroup}")),
            ..ListParams::default()
        };
        let dead = self.inner.store.dead_instances();
        self.inner
            .store
            .list(Resource::Node, &params)
            .map(|p| p.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| {
                let name = n.pointer("/metadata/name").and_then(Value::as_str);
                name.is_none_or(|name| !dead.contains(name))
            })
            .collect()
    }

    /// Records newly seen instances and returns the Nodes whose boot time has passed.
    fn observe(&self, groups: &[AsgView]) -> Vec<Wanted> {
        let cfg = &self.inner.cfg;
        let now = self.inner.clock.now();
        let faults = &self.inner.faults;
        let mut st = self.state();
        let mut out = Vec::new();
        for g in groups {
            let managed = g
                .tag("eks:nodegroup-name")
                .and_then(|n| st.groups.get(n))
                .map(|ng| ng.spec.name.clone());
            let key = managed.clone().unwrap_or_else(|| g.name.clone());
            let boot = st
                .boot_overrides
                .get(&key)
                .copied()
                .or_else(|| {
                    g.tag(BOOT_SECONDS_TAG)
                        .and_then(|s| s.parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64)
                })
                .unwrap_or(cfg.boot_time);
            let zones = if g.zones.is_empty() {
                vec![format!("{}a", cfg.region)]
            } else {
                g.zones.clone()
            };
            for inst in g.instances.iter().filter(|i| i.in_service) {
                if !st.instances.contains_key(&inst.id) {
                    let n = st.launched.entry(g.name.clone()).or_default();
                    let zone = zones[*n % zones.len()].clone();
                    *n += 1;
                    let record = InstanceRecord {
                        asg: g.name.clone(),
                        first_seen: now,
                        zone,
                        node_name: None,
                    };
                    st.instances.insert(inst.id.clone(), record);
                }
                let Some(rec) = st.instances.get(&inst.id) else {
                    continue;
                };
                if rec.node_name.is_some() || now < rec.first_seen + secs_delta(boot.as_secs_f64())
                {
                    continue;
                }
                if managed.as_deref().is_some_and(|m| faults.creation_fails(m)) {
                    // Instances of a group whose creation fails never join the cluster.
                    continue;
                }
                let mut template = NodeTemplate {
                    asg: Some(g.name.clone()),
                    instance_type: inst.instance_type.clone(),
                    zone: rec.zone.clone(),
                    kubelet_version: format!("v{}.0-eks-twin", cfg.kubernetes_version),
                    instance_id: Some(inst.id.clone()),
                    never_ready: faults.is_never_ready(&key),
                    ..NodeTemplate::default()
                };
                match managed.as_deref().and_then(|m| st.groups.get(m)) {
                    Some(ng) => {
                        template.ami_type.clone_from(&ng.spec.ami_type);
                        template.nodegroup = Some(ng.spec.name.clone());
                        template.capacity_type = ng.spec.capacity_type.clone();
                        let release = ng.launching_release();
                        template.image_id = Some(image_id(&ng.spec.ami_type, release));
                        template.ami_release = Some(release.to_string());
                        template.labels = ng.spec.labels.clone();
                        template.taints = ng
                            .spec
                            .taints
                            .iter()
                            .map(|t| (t.key.clone(), t.value.clone(), t.k8s_effect().to_string()))
                            .collect();
                    }
                    None => {
                        (template.labels, template.taints) = self_managed_template(g);
                        if let Some(a) = g.tag(crate::twin::groups::AMI_TYPE_TAG) {
                            template.ami_type = a.to_string();
                        }
                    }
                }
                out.push(Wanted {
                    instance: inst.id.clone(),
                    template,
                });
            }
        }
        out
    }

    fn settle_statuses(&self, groups: &[AsgView]) {
        let now = self.inner.clock.now();
        let names: Vec<String> = self.state().groups.keys().cloned().collect();
        for name in names {
            let ready = self
                .group_nodes(&name)
                .iter()
                .filter(|n| is_ready(n))
                .count();
            let degraded = self.inner.faults.degraded(&name);
            let mut st = self.state();
            let Some(ng) = st.groups.get(&name) else {
                continue;
            };
            let in_service = groups
                .iter()
                .find(|g| g.name == ng.asg_name)
                .map(|g| g.instances.iter().filter(|i| i.in_service).count());
            let desired = usize::try_from(ng.spec.scaling.desired_size).unwrap_or(0);
            let settled =
                !ng.busy && ng.backing_ready && in_service == Some(desired) && ready >= desired;
            let update = ng.active_update.clone();
            let status = ng.status;
            let mut next = status;
            match status {
                NodegroupStatus::Creating if settled => next = NodegroupStatus::Active,
                NodegroupStatus::Updating if settled => next = NodegroupStatus::Active,
                NodegroupStatus::Active if degraded.is_some() => next = NodegroupStatus::Degraded,
                NodegroupStatus::Degraded if degraded.is_none() => next = NodegroupStatus::Active,
                _ => {}
            }
            if next == status {
                continue;
            }
            if let Some(ng) = st.groups.get_mut(&name) {
                ng.status = next;
                ng.modified_at = now;
                ng.issues = degraded.into_iter().collect();
                if status == NodegroupStatus::Updating {
                    ng.active_update = None;
                }
            }
            if status == NodegroupStatus::Creating && next == NodegroupStatus::Active {
                st.history.push(super::GroupEvent {
                    group: name.clone(),
                    at: now,
                    kind: super::GroupEventKind::Active,
                });
            }
            if status == NodegroupStatus::Updating
                && let Some(u) = update.and_then(|id| st.updates.get_mut(&id))
            {
                u.status = "Successful";
            }
        }
    }

    /// Applies a label and taint change to the group's registered Nodes, as EKS does for an
    /// UpdateNodegroupConfig of labels or taints.
    pub(crate) fn patch_group_nodes(
        &self,
        nodegroup: &str,
        add_labels: &BTreeMap<String, String>,
        remove_labels: &[String],
        add_taints: &[Taint],
        remove_taints: &[String],
    ) {
        for node in self.group_nodes(nodegroup) {
            let Some(name) = node.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let result = self.inner.store.mutate(Resource::Node, "", name, |n| {
                let labels = &mut n["metadata"]["labels"];
                if let Some(map) = labels.as_object_mut() {
                    for k in remove_labels {
                        map.remove(k);
                    }
                    for (k, v) in add_labels {
                        map.insert(k.clone(), json!(v));
                    }
                }
                let mut taints: Vec<Value> =
                    n["spec"]["taints"].as_array().cloned().unwrap_or_default();
                let replaced: HashSet<&str> = add_taints.iter().map(|t| t.key.as_str()).collect();
                taints.retain(|t| {
                    let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
                    !replaced.contains(key) && !remove_taints.iter().any(|r| r == key)
                });
                taints.extend(add_taints.iter().map(Taint::to_k8s));
                // A scaling-only update leaves the node as it is; an emptied list goes, as
                // the kubelet's own taint sync leaves no `taints: []` behind.
                let before = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
                if taints != before {
                    if taints.is_empty() {
                        if let Some(spec) = n["spec"].as_object_mut() {
                            spec.remove("taints");
                        }
                    } else {
                        n["spec"]["taints"] = json!(taints);
                    }
                }
                Ok(())
            });
            if let Err(e) = result {
                tracing::warn!(node = %name, error = %e, "node label/taint update failed");
            }
        }
    }
}

/// A stable AMI id for an AMI type and release (the twin has no AMI catalogue).
pub(crate) fn image_id(ami_type: &str, release: &str) -> String {
    // FNV-1a: stable across runs and toolchains, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ami_type.bytes().chain([b'/']).chain(release.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ami-0{h:016x}")
}

/// Labels and taints of a self-managed group's nodes, from its node-template tags.
type Taints = Vec<(String, Option<String>, String)>;

pub(crate) fn self_managed_template(g: &AsgView) -> (BTreeMap<String, String>, Taints) {
    let mut labels = BTreeMap::new();
    let mut taints = Vec::new();
    for (k, v) in &g.tags {
        if let Some(l) = k.strip_prefix(CA_LABEL_TAG) {
            labels.insert(l.to_string(), v.clone());
        } else if let Some(t) = k.strip_prefix(CA_TAINT_TAG) {
            let (value, effect) = v.rsplit_once(':').unwrap_or(("", v.as_str()));
            let value = (!value.is_empty()).then(|| value.to_string());
            taints.push((t.to_string(), value, effect.to_string()));
        }
    }
    (labels, taints)
}

impl Eks {
    /// A Spot rebalance recommendation for one instance of a managed group, handled as EKS
    /// handles it (EKS user guide, "Managed node groups", capacity types, Spot: "When a Spot
    /// node receives a rebalance recommendation, Amazon EKS automatically attempts to launch a
    /// new replacement Spot node and waits until it successfully joins the cluster. When a
    /// replacement Spot node is bootstrapped and in the Ready state on Kubernetes, Amazon EKS
    /// cordons and drains the Spot node that received the rebalance recommendation"). Auto
    /// Scaling's Capacity Rebalancing launches the replacement into the same group, above its
    /// maximum if it must (Auto Scaling user guide, "Capacity Rebalancing"): the replacement
    /// joins the group as any of its nodes, with the group's labels and none of anyone's
    /// taints. Once the old node is drained its instance is terminated and the group is back
    /// at its size. Returns the (recommended, replacement) nodes.
    pub async fn capacity_rebalance(
        &self,
        nodegroup: &str,
    ) -> Result<Option<(String, String)>, EksError> {
        let Some(g) = self.nodegroup(nodegroup) else {
            return Ok(None);
        };
        let before = self.group_nodes(nodegroup);
        // The node that gets the recommendation: the busiest, then by name.
        let pods = self.inner.store.list_all(Resource::Pod, None);
        let load = |node: &str| {
            pods.iter()
                .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
                .count()
        };
        let mut names: Vec<String> = before
            .iter()
            .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        names.sort_by_key(|n| (std::cmp::Reverse(load(n)), n.clone()));
        let Some(recommended) = names.first().cloned() else {
            return Ok(None);
        };
        let instance = before
            .iter()
            .find(|n| n.pointer("/metadata/name").and_then(Value::as_str) == Some(&recommended))
            .and_then(|n| n.pointer("/spec/providerID").and_then(Value::as_str))
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        // The replacement is Capacity Rebalancing's, not a new desired size EKS would report.
        self.state().rebalancing.insert(nodegroup.to_string());
        let result = self
            .rebalance(nodegroup, &g, &names, &recommended, &instance)
            .await;
        self.state().rebalancing.remove(nodegroup);
        result
    }

    async fn rebalance(
        &self,
        nodegroup: &str,
        g: &super::Nodegroup,
        names: &[String],
        recommended: &str,
        instance: &str,
    ) -> Result<Option<(String, String)>, EksError> {
        let s = g.spec.scaling;
        let client = &self.inner.asg;
        asg::set_size(
            client,
            &g.asg_name,
            s.min_size,
            s.max_size.max(s.desired_size + 1),
            s.desired_size + 1,
        )
        .await?;
        let clock = self.inner.clock.clone();
        let deadline = clock.now() + secs_delta(15.0 * 60.0);
        let replacement = loop {
            let joined = self.group_nodes(nodegroup).into_iter().find(|n| {
                let name = n.pointer("/metadata/name").and_then(Value::as_str);
                is_ready(n) && name.is_some_and(|name| !names.iter().any(|b| b == name))
            });
            if let Some(n) = joined {
                break n
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
            }
            if clock.now() > deadline {
                return Ok(None);
            }
            clock.sleep(Duration::from_secs(1)).await;
        };
        self.drain(&[recommended.to_string()]).await;
        asg::terminate(client, instance).await?;
        asg::set_size(client, &g.asg_name, s.min_size, s.max_size, s.desired_size).await?;
        Ok(Some((recommended.to_string(), replacement)))
    }
}
