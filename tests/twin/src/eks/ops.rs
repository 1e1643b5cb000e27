//! CreateNodegroup and DeleteNodegroup: the records, and the background work behind them.

mod update;
mod version;

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::Value;

use super::asg::{self, NewGroup};
use super::error::EksError;
use super::model::{Issue, Nodegroup, NodegroupSpec, NodegroupStatus, ScalingConfig, Taint};
use super::nodes::image_id;
use super::{Eks, GroupEvent, GroupEventKind, validate};

/// A short random hex id, as EKS appends to ARNs and Auto Scaling group names.
pub(crate) fn short_id(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn parse_spec(eks: &Eks, body: &Value) -> Result<(NodegroupSpec, Option<String>), EksError> {
    let cfg = eks.config();
    let name = validate::opt_str(body, "nodegroupName")?
        .ok_or_else(|| EksError::invalid_parameter("nodegroupName is required"))?;
    validate::nodegroup_name(&name)?;
    // The API's defaults: minSize 1, maxSize 2, desiredSize 2.
    let scaling = validate::opt::<ScalingConfig>(body, "scalingConfig")?.unwrap_or(ScalingConfig {
        min_size: 1,
        max_size: 2,
        desired_size: 2,
    });
    validate::scaling(&scaling)?;
    let subnets: Vec<String> = validate::opt(body, "subnets")?.unwrap_or_default();
    if subnets.is_empty() {
        return Err(EksError::invalid_parameter("Subnets are required"));
    }
    let node_role = validate::opt_str(body, "nodeRole")?
        .ok_or_else(|| EksError::invalid_parameter("nodeRole is required"))?;
    let labels: BTreeMap<String, String> = validate::opt(body, "labels")?.unwrap_or_default();
    validate::labels(&labels)?;
    let taints: Vec<Taint> = validate::opt(body, "taints")?.unwrap_or_default();
    validate::taints(&taints)?;
    let instance_types: Vec<String> =
        validate::opt(body, "instanceTypes")?.unwrap_or_else(|| vec!["t3.medium".to_string()]);
    if instance_types.is_empty() {
        return Err(EksError::invalid_parameter(
            "instanceTypes must not be empty",
        ));
    }
    let update_config = body.get("updateConfig").filter(|v| !v.is_null()).cloned();
    if let Some(u) = &update_config {
        validate::update_config(u)?;
    }
    let spec = NodegroupSpec {
        name,
        scaling,
        instance_types,
        subnets,
        ami_type: validate::opt_str(body, "amiType")?
            .unwrap_or_else(|| "AL2023_x86_64_STANDARD".to_string()),
        capacity_type: validate::opt_str(body, "capacityType")?
            .unwrap_or_else(|| "ON_DEMAND".to_string()),
        node_role,
        release_version: validate::opt_str(body, "releaseVersion")?
            .unwrap_or_else(|| cfg.default_release_version.clone()),
        disk_size: validate::opt(body, "diskSize")?.unwrap_or(20),
        labels,
        taints,
        tags: validate::opt(body, "tags")?.unwrap_or_default(),
        launch_template: body.get("launchTemplate").cloned(),
        update_config,
    };
    Ok((spec, validate::opt_str(body, "clientRequestToken")?))
}

impl Eks {
    /// CreateNodegroup, with the request body as JSON (the scenario loader calls this directly).
    /// A repeat with the same `clientRequestToken` and the same parameters
    /// answers the group as it is now; any other create of an existing name is
    /// `ResourceInUseException` (EKS API reference, CreateNodegroup errors).
    pub fn create_nodegroup(&self, body: &Value) -> Result<Nodegroup, EksError> {
        let (spec, token) = parse_spec(self, body)?;
        let cfg = self.config();
        let now = self.inner.clock.now();
        let group = {
            let mut st = self.state();
            if let Some(existing) = st.groups.get(&spec.name) {
                if token.is_some()
                    && existing.client_request_token == token
                    && existing.spec == spec
                {
                    return Ok(existing.clone());
                }
                return Err(EksError::in_use(format!(
                    "NodeGroup already exists with name {} and cluster name {}",
                    spec.name, cfg.cluster_name
                )));
            }
            let mut zones: Vec<String> = Vec::new();
            for s in &spec.subnets {
                let z = cfg.zone_of(s);
                if !zones.contains(&z) {
                    zones.push(z);
                }
            }
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                short_id(8),
                short_id(4),
                short_id(4),
                short_id(4),
                short_id(12)
            );
            let group = Nodegroup {
                arn: format!(
                    "arn:aws:eks:{}:{}:nodegroup/{}/{}/{uuid}",
                    cfg.region, cfg.account_id, cfg.cluster_name, spec.name
                ),
                asg_name: format!("eks-{}-{uuid}", spec.name),
                spec,
                cluster: cfg.cluster_name.clone(),
                version: cfg.kubernetes_version.clone(),
                status: NodegroupStatus::Creating,
                created_at: now,
                modified_at: now,
                client_request_token: token,
                zones,
                issues: Vec::new(),
                active_update: None,
                backing_ready: false,
                busy: false,
                launch_release: None,
            };
            st.groups.insert(group.spec.name.clone(), group.clone());
            st.history.push(GroupEvent {
                group: group.spec.name.clone(),
                at: now,
                kind: GroupEventKind::Created,
            });
            group
        };
        let eks = self.clone();
        let name = group.spec.name.clone();
        let sup = eks.inner.store.supervisor().clone();
        sup.spawn(format!("eks create {name}"), async move {
            eks.provision(&name).await
        });
        Ok(group)
    }

    /// Creates the backing Auto Scaling group; a group whose creation is set to fail ends in
    /// CREATE_FAILED once its instances had time to join and did not.
    async fn provision(&self, name: &str) {
        let Some(g) = self.nodegroup(name) else {
            return;
        };
        let cfg = self.config();
        let image = image_id(&g.spec.ami_type, &g.spec.release_version);
        let tags = vec![
            ("eks:cluster-name".to_string(), cfg.cluster_name.clone()),
            ("eks:nodegroup-name".to_string(), name.to_string()),
            (
                format!("kubernetes.io/cluster/{}", cfg.cluster_name),
                "owned".to_string(),
            ),
            (
                "k8s.io/cluster-autoscaler/enabled".to_string(),
                "true".to_string(),
            ),
            (
                format!("k8s.io/cluster-autoscaler/{}", cfg.cluster_name),
                "owned".to_string(),
            ),
        ];
        let s = g.spec.scaling;
        let created = asg::create_group(
            &self.inner.asg,
            NewGroup {
                name: &g.asg_name,
                image_id: &image,
                instance_type: &g.spec.instance_types[0],
                zones: &g.zones,
                min: s.min_size,
                max: s.max_size,
                desired: s.desired_size,
                tags,
            },
        )
        .await;
        if let Err(e) = created {
            self.fail_creation(
                name,
                "AutoScalingGroupInvalidConfiguration",
                &e.message,
                vec![],
            );
            return;
        }
        if let Some(ng) = self.state().groups.get_mut(name) {
            ng.backing_ready = true;
        }
        if self.inner.faults.creation_fails(name) {
            self.inner.clock.sleep(cfg.boot_time).await;
            let ids: Vec<String> = {
                let st = self.state();
                st.instances
                    .iter()
                    .filter(|(_, r)| r.asg == g.asg_name)
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            self.fail_creation(
                name,
                "NodeCreationFailure",
                "Instances failed to join the kubernetes cluster",
                ids,
            );
        }
    }

    fn fail_creation(&self, name: &str, code: &str, message: &str, resource_ids: Vec<String>) {
        let now = self.inner.clock.now();
        if let Some(ng) = self.state().groups.get_mut(name)
            && ng.status == NodegroupStatus::Creating
        {
            ng.status = NodegroupStatus::CreateFailed;
            ng.modified_at = now;
            ng.issues = vec![Issue {
                code: code.to_string(),
                message: message.to_string(),
                resource_ids,
            }];
        }
    }

    /// DeleteNodegroup: DELETING at once; EKS's drain, then the Auto Scaling group and its
    /// instances go, then the group itself (DescribeNodegroup answers 404).
    pub fn delete_nodegroup(&self, name: &str) -> Result<Nodegroup, EksError> {
        let now = self.inner.clock.now();
        let group = {
            let mut st = self.state();
            let cluster = self.config().cluster_name.clone();
            let ng = st
                .groups
                .get_mut(name)
                .ok_or_else(|| not_found(name, &cluster))?;
            if ng.status == NodegroupStatus::Deleting {
                return Ok(ng.clone());
            }
            ng.status = NodegroupStatus::Deleting;
            ng.modified_at = now;
            ng.busy = true;
            let group = ng.clone();
            st.history.push(GroupEvent {
                group: name.to_string(),
                at: now,
                kind: GroupEventKind::DeleteRequested,
            });
            group
        };
        let eks = self.clone();
        let name = name.to_string();
        let sup = eks.inner.store.supervisor().clone();
        sup.spawn(format!("eks delete {name}"), async move {
            eks.teardown(&name).await
        });
        Ok(group)
    }

    async fn teardown(&self, name: &str) {
        let Some(g) = self.nodegroup(name) else {
            return;
        };
        let nodes: Vec<String> = self
            .group_nodes(name)
            .iter()
            .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(str::to_string))
            .collect();
        self.drain(&nodes).await;
        self.log_group(name, GroupEventKind::Drained);
        // Re-read: the Auto Scaling group may have been created while the drain ran.
        if self.nodegroup(name).is_some_and(|g| g.backing_ready) {
            // Retry until the backend answers: a group left half-deleted would never go away.
            while let Err(e) = asg::delete_group(&self.inner.asg, &g.asg_name).await {
                tracing::warn!(error = %e, "deleting the node group's Auto Scaling group");
                self.inner.clock.sleep(self.config().poll_interval).await;
            }
        }
        for node in &nodes {
            self.terminate_node(node);
        }
        {
            let mut st = self.state();
            st.instances.retain(|_, r| r.asg != g.asg_name);
            st.groups.remove(name);
            st.updates.retain(|_, u| u.nodegroup != name);
        }
        self.log_group(name, GroupEventKind::Gone);
    }
}

pub(crate) fn not_found(name: &str, cluster: &str) -> EksError {
    EksError::not_found(format!(
        "No node group found for name: {name} in cluster {cluster}."
    ))
}
