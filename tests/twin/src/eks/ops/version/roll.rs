//! The phases of a version update (see `super`): setup, scale up, upgrade, scale down.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use super::super::super::Eks;
use super::super::super::asg;
use super::super::super::error::EksError;
use super::super::super::model::{Issue, ScalingConfig};
use super::super::super::nodes::image_id;
use super::Roll;
use crate::clock::secs_delta;
use crate::lb::EXCLUDE_LABEL;
use crate::sim::nodes::{NODEGROUP_IMAGE_LABEL, instance_id_of};

/// The taint the scale-up phase puts on the nodes still on the earlier version.
pub const UPDATE_TAINT_KEY: &str = "eks.amazonaws.com/nodegroup";
pub const UPDATE_TAINT_VALUE: &str = "unschedulable";
/// "If the Pods don't leave the node within 15 minutes and there's no force flag, the upgrade
/// phase fails with a `PodEvictionFailure` error."
const EVICTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// "It cordons the node after every Pod is evicted and waits for 60 seconds."
const CORDON_WAIT: Duration = Duration::from_secs(60);
/// How long the scale-up phase waits for the new nodes before `NodeCreationFailure`.
const NEW_NODES_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Eks {
    pub(super) async fn roll(&self, r: &Roll) -> Result<(), Issue> {
        let client = &self.inner.asg;
        let unknown = |e: EksError| issue("Unknown", e.message, vec![r.asg.clone()]);
        // Setup: the group launches the new image from now on.
        let image = image_id(&r.ami_type, &r.release);
        asg::launch_image(client, &r.asg, &image, &r.instance_type)
            .await
            .map_err(unknown)?;
        let (mu, minimal) = {
            let mut st = self.state();
            let ng = st.groups.get_mut(&r.name);
            let ng = ng.ok_or_else(|| issue("Unknown", "node group deleted", vec![]))?;
            ng.launch_release = Some(r.release.clone());
            let n = self.group_nodes(&r.name).len();
            (ng.max_unavailable(n), ng.minimal_strategy())
        };
        let initial: BTreeSet<String> = self.group_nodes(&r.name).iter().map(node_name).collect();
        let old: BTreeSet<String> = self
            .group_nodes(&r.name)
            .iter()
            .filter(|n| r.replace_all || label_of(n, NODEGROUP_IMAGE_LABEL) != Some(&image))
            .map(node_name)
            .collect();
        let view = asg::groups_named(client, std::slice::from_ref(&r.asg))
            .await
            .map_err(unknown)?
            .into_iter()
            .next()
            .ok_or_else(|| issue("Unknown", "Auto Scaling group not found", vec![]))?;
        let before = ScalingConfig {
            min_size: view.min,
            max_size: view.max,
            desired_size: view.desired,
        };
        let zones = view.zones.len().max(1);
        let surge = if minimal {
            0
        } else {
            surge_size(zones, mu, old.len())
        };
        let surge_i = i32::try_from(surge).unwrap_or(i32::MAX);

        // Scale up, and wait for the new nodes.
        if surge > 0 {
            let (max, desired) = (before.max_size + surge_i, before.desired_size + surge_i);
            asg::set_size(client, &r.asg, before.min_size, max, desired)
                .await
                .map_err(unknown)?;
            self.wait_new_nodes(r, &initial, &image, surge).await?;
        }
        for node in &old {
            self.mark_old(node);
        }

        // Upgrade: random batches of up to maxUnavailable old nodes.
        let mut rng = StdRng::seed_from_u64(seed(&r.name, &image));
        loop {
            let mut left: Vec<String> = self
                .group_nodes(&r.name)
                .iter()
                .map(node_name)
                .filter(|n| old.contains(n))
                .collect();
            if left.is_empty() {
                break;
            }
            left.shuffle(&mut rng);
            left.truncate(mu);
            left.sort();
            self.upgrade_batch(r, &left).await?;
        }

        // Scale down, one at a time, unless the Cluster Autoscaler scaled the group up.
        let mut current = ScalingConfig {
            min_size: before.min_size,
            max_size: before.max_size + surge_i,
            desired_size: before.desired_size + surge_i,
        };
        while current.desired_size > before.desired_size {
            let now = asg::groups_named(client, std::slice::from_ref(&r.asg))
                .await
                .map_err(unknown)?;
            if now
                .first()
                .is_some_and(|g| g.desired > current.desired_size)
            {
                tracing::info!(nodegroup = %r.name, "group scaled up during the update: scale-down skipped");
                return Ok(());
            }
            let next = ScalingConfig {
                max_size: (current.max_size - 1).max(before.max_size),
                desired_size: current.desired_size - 1,
                ..current
            };
            self.resize(&r.asg, current, next).await.map_err(unknown)?;
            current = next;
        }
        Ok(())
    }

    /// Waits until `surge` nodes launched since the update started run the new image and are
    /// Ready.
    async fn wait_new_nodes(
        &self,
        r: &Roll,
        initial: &BTreeSet<String>,
        image: &str,
        surge: usize,
    ) -> Result<(), Issue> {
        let clock = &self.inner.clock;
        let deadline = clock.now() + secs_delta(NEW_NODES_TIMEOUT.as_secs_f64());
        loop {
            let ready = self
                .group_nodes(&r.name)
                .iter()
                .filter(|n| !initial.contains(&node_name(n)))
                .filter(|n| label_of(n, NODEGROUP_IMAGE_LABEL) == Some(image) && node_ready(n))
                .count();
            if ready >= surge {
                return Ok(());
            }
            if clock.now() >= deadline {
                return Err(issue(
                    "NodeCreationFailure",
                    "Instances failed to join the kubernetes cluster",
                    vec![r.asg.clone()],
                ));
            }
            clock.sleep(self.inner.cfg.poll_interval).await;
        }
    }

    /// Drains `nodes` (15 minutes at most), cordons them, waits 60 s, and has the Auto Scaling
    /// group replace their instances; what is still on them goes with the instance.
    async fn upgrade_batch(&self, r: &Roll, nodes: &[String]) -> Result<(), Issue> {
        let left = self.evict_pods(nodes, EVICTION_TIMEOUT).await;
        if !left.is_empty() && !r.force {
            let pods: Vec<String> = left.iter().map(|(_, ns, p)| format!("{ns}/{p}")).collect();
            let nodes: BTreeSet<String> = left.into_iter().map(|(n, _, _)| n).collect();
            return Err(issue(
                "PodEvictionFailure",
                format!(
                    "Reached max retries while trying to evict pods from nodes in node group {}: {}",
                    r.name,
                    pods.join(", ")
                ),
                nodes.into_iter().collect(),
            ));
        }
        for node in nodes {
            self.cordon(node);
        }
        self.inner.clock.sleep(CORDON_WAIT).await;
        let instances: Vec<(String, String)> = self
            .group_nodes(&r.name)
            .iter()
            .filter(|n| nodes.contains(&node_name(n)))
            .filter_map(|n| Some((node_name(n), instance_id_of(n)?.to_string())))
            .collect();
        self.log_terminated(&self.pods_on(nodes));
        for (node, instance) in instances {
            tracing::info!(nodegroup = %r.name, node = %node, instance = %instance, "eks version update terminates a node");
            asg::replace(&self.inner.asg, &instance)
                .await
                .map_err(|e| issue("Unknown", e.message, vec![instance.clone()]))?;
            self.terminate_node(&node);
            self.state().instances.remove(&instance);
        }
        Ok(())
    }

    /// The scale-up phase's mark on a node of the earlier version: unschedulable for new pods,
    /// and out of the external load balancers before it is terminated.
    fn mark_old(&self, node: &str) {
        let _ = self
            .inner
            .store
            .mutate(crate::store::Resource::Node, "", node, |n| {
                n["metadata"]["labels"][EXCLUDE_LABEL] = json!("true");
                let mut taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
                if !taints.iter().any(|t| t["key"] == UPDATE_TAINT_KEY) {
                    taints.push(json!({
                        "key": UPDATE_TAINT_KEY,
                        "value": UPDATE_TAINT_VALUE,
                        "effect": "NoSchedule",
                    }));
                }
                n["spec"]["taints"] = json!(taints);
                Ok(())
            });
    }
}

/// The scale-up: the larger of "up to twice the number of Availability Zones that the Auto
/// Scaling group is deployed in" and "the maximum unavailable of upgrade", neither more than
/// the nodes to upgrade (no more new nodes are needed).
pub(crate) fn surge_size(zones: usize, max_unavailable: usize, old_nodes: usize) -> usize {
    (2 * zones)
        .min(old_nodes)
        .max(max_unavailable.min(old_nodes))
}

fn issue(code: &str, message: impl Into<String>, resource_ids: Vec<String>) -> Issue {
    Issue {
        code: code.to_string(),
        message: message.into(),
        resource_ids,
    }
}

fn node_name(n: &std::sync::Arc<Value>) -> String {
    n.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn label_of<'a>(n: &'a Value, key: &str) -> Option<&'a str> {
    n.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// A stable seed per group and target image (FNV-1a), so the random picks repeat run to run.
fn seed(nodegroup: &str, image: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in nodegroup.bytes().chain([b'/']).chain(image.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surge_is_twice_the_zones_or_max_unavailable_whichever_is_larger() {
        // "if your node group has five Availability Zones and maxUnavailable as one, the
        // upgrade process can launch a maximum of 10 nodes ... when maxUnavailable is 20 ...
        // the process would launch 20 new nodes."
        assert_eq!(surge_size(5, 1, 40), 10);
        assert_eq!(surge_size(5, 20, 40), 20);
        assert_eq!(surge_size(2, 1, 6), 4);
        assert_eq!(surge_size(2, 5, 6), 5);
        // Never more than the nodes to upgrade.
        assert_eq!(surge_size(3, 1, 2), 2);
        assert_eq!(surge_size(3, 20, 4), 4);
        assert_eq!(surge_size(3, 1, 0), 0);
    }
}
