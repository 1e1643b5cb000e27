//! EKS: clusters, managed node groups, their updates and tags.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_eks::Client;
use aws_sdk_eks::types::{
    AmiTypes, CapacityTypes, LaunchTemplateSpecification, Nodegroup, NodegroupScalingConfig,
    Taint as EksTaint, TaintEffect as EksTaintEffect, UpdateStatus as EksUpdateStatus,
};
use ngm_core::model::{
    CapacityType, ClusterInfo, Labels, LaunchTemplateRef, NodeGroupKind, NodeGroupSpec,
    NodeGroupStatus, Scaling, Taint, TaintEffect, UpdateStatus,
};
use ngm_core::ports::{EksPort, PortError, PortResult};

use super::none_if_missing;

#[derive(Debug, Clone)]
pub struct EksAdapter {
    client: Client,
}

impl EksAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn labels(map: Option<&HashMap<String, String>>) -> Labels {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn scaling_of(ng: &Nodegroup) -> Scaling {
    let s = ng.scaling_config();
    Scaling {
        min: s.and_then(|s| s.min_size()).unwrap_or(0),
        max: s.and_then(|s| s.max_size()).unwrap_or(0),
        desired: s.and_then(|s| s.desired_size()).unwrap_or(0),
    }
}

fn taint_of(t: &EksTaint) -> Option<Taint> {
    Some(Taint {
        key: t.key()?.to_owned(),
        value: t.value().map(str::to_owned),
        effect: TaintEffect::parse(t.effect()?.as_str())?,
    })
}

fn eks_taint(t: &Taint) -> EksTaint {
    EksTaint::builder()
        .key(&t.key)
        .set_value(t.value.clone())
        .effect(EksTaintEffect::from(t.effect.eks_name()))
        .build()
}

fn spec_of(ng: &Nodegroup) -> NodeGroupSpec {
    NodeGroupSpec {
        name: ng.nodegroup_name().unwrap_or_default().to_owned(),
        arn: ng.nodegroup_arn().map(str::to_owned),
        kind: NodeGroupKind::Managed,
        instance_types: ng.instance_types().to_vec(),
        ami_type: ng.ami_type().map(|a| a.as_str().to_owned()),
        release_version: ng.release_version().map(str::to_owned),
        custom_ami_id: None,
        launch_template: ng.launch_template().map(|lt| LaunchTemplateRef {
            id: lt.id().map(str::to_owned),
            name: lt.name().map(str::to_owned),
            version: lt.version().map(str::to_owned),
        }),
        capacity_type: ng.capacity_type().and_then(|c| match c {
            CapacityTypes::OnDemand => Some(CapacityType::OnDemand),
            CapacityTypes::Spot => Some(CapacityType::Spot),
            _ => None,
        }),
        scaling: scaling_of(ng),
        subnets: ng.subnets().to_vec(),
        labels: labels(ng.labels()),
        taints: ng.taints().iter().filter_map(taint_of).collect(),
        disk_size: ng.disk_size(),
        version: ng.version().map(str::to_owned),
        status: ng
            .status()
            .map(|s| NodeGroupStatus::from_eks(s.as_str()))
            .unwrap_or(NodeGroupStatus::Other(String::new())),
        asg_names: ng
            .resources()
            .map(|r| {
                r.auto_scaling_groups()
                    .iter()
                    .filter_map(|a| a.name().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        tags: labels(ng.tags()),
        node_role_arn: ng.node_role().map(str::to_owned),
        on_demand_share: None,
    }
}

fn scaling_config(s: Scaling) -> NodegroupScalingConfig {
    NodegroupScalingConfig::builder()
        .min_size(s.min)
        .max_size(s.max)
        .desired_size(s.desired)
        .build()
}

#[async_trait]
impl EksPort for EksAdapter {
    async fn describe_cluster(&self, cluster: &str) -> PortResult<Option<ClusterInfo>> {
        let out = crate::send!(
            "eks:DescribeCluster",
            self.client.describe_cluster().name(cluster)
        );
        let Some(out) = none_if_missing(out)? else {
            return Ok(None);
        };
        let Some(c) = out.cluster() else {
            return Ok(None);
        };
        Ok(Some(ClusterInfo {
            name: c.name().unwrap_or(cluster).to_owned(),
            arn: c.arn().unwrap_or_default().to_owned(),
            endpoint: c.endpoint().unwrap_or_default().to_owned(),
            ca_data: c
                .certificate_authority()
                .and_then(|ca| ca.data())
                .unwrap_or_default()
                .to_owned(),
            version: c.version().unwrap_or_default().to_owned(),
            tags: labels(c.tags()),
        }))
    }

    async fn describe_nodegroup(
        &self,
        cluster: &str,
        name: &str,
    ) -> PortResult<Option<NodeGroupSpec>> {
        let out = crate::send!(
            "eks:DescribeNodegroup",
            self.client
                .describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
        );
        Ok(none_if_missing(out)?.and_then(|o| o.nodegroup().map(spec_of)))
    }

    async fn list_nodegroups(&self, cluster: &str) -> PortResult<Vec<String>> {
        let pages = crate::paginate!(
            "eks:ListNodegroups",
            self.client.list_nodegroups().cluster_name(cluster)
        )?;
        let mut names = Vec::new();
        for page in pages {
            names.extend(page.nodegroups().iter().cloned());
        }
        Ok(names)
    }

    async fn create_nodegroup(
        &self,
        cluster: &str,
        spec: &NodeGroupSpec,
        client_request_token: &str,
    ) -> PortResult<NodeGroupSpec> {
        let invalid = |detail: &str| PortError::Invalid {
            op: "eks:CreateNodegroup".into(),
            detail: detail.into(),
        };
        let role = spec
            .node_role_arn
            .as_deref()
            .ok_or_else(|| invalid("the new group has no node role"))?;
        let mut req = self
            .client
            .create_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&spec.name)
            .node_role(role)
            .scaling_config(scaling_config(spec.scaling))
            .set_subnets(Some(spec.subnets.clone()))
            .set_labels(Some(spec.labels.clone().into_iter().collect()))
            .set_taints(Some(spec.taints.iter().map(eks_taint).collect()))
            .set_tags(Some(spec.tags.clone().into_iter().collect()))
            .client_request_token(client_request_token)
            .set_version(spec.version.clone())
            .set_release_version(spec.release_version.clone())
            .set_disk_size(spec.disk_size);
        if !spec.instance_types.is_empty() {
            req = req.set_instance_types(Some(spec.instance_types.clone()));
        }
        if let Some(ami) = &spec.ami_type {
            req = req.ami_type(AmiTypes::from(ami.as_str()));
        }
        if let Some(ct) = spec.capacity_type {
            req = req.capacity_type(match ct {
                CapacityType::OnDemand => CapacityTypes::OnDemand,
                CapacityType::Spot => CapacityTypes::Spot,
            });
        }
        if let Some(lt) = &spec.launch_template {
            req = req.launch_template(
                LaunchTemplateSpecification::builder()
                    .set_id(lt.id.clone())
                    .set_name(lt.name.clone())
                    .set_version(lt.version.clone())
                    .build(),
            );
        }
        let out = crate::send!("eks:CreateNodegroup", req)?;
        out.nodegroup()
            .map(spec_of)
            .ok_or_else(|| PortError::Unexpected {
                op: "eks:CreateNodegroup".into(),
                detail: "the answer carried no node group".into(),
            })
    }

    async fn delete_nodegroup(&self, cluster: &str, name: &str) -> PortResult<()> {
        let out = crate::send!(
            "eks:DeleteNodegroup",
            self.client
                .delete_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
        );
        match out {
            // Already gone, or already being deleted: both mean the request is done.
            Ok(_) | Err(PortError::NotFound { .. }) => Ok(()),
            Err(PortError::Conflict { detail, .. }) if detail.contains("DELETING") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn update_nodegroup_scaling(
        &self,
        cluster: &str,
        name: &str,
        scaling: Scaling,
        client_request_token: &str,
    ) -> PortResult<String> {
        let out = crate::send!(
            "eks:UpdateNodegroupConfig",
            self.client
                .update_nodegroup_config()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .scaling_config(scaling_config(scaling))
                .client_request_token(client_request_token)
        )?;
        out.update()
            .and_then(|u| u.id())
            .map(str::to_owned)
            .ok_or_else(|| PortError::Unexpected {
                op: "eks:UpdateNodegroupConfig".into(),
                detail: "the answer carried no update id".into(),
            })
    }

    async fn describe_update(
        &self,
        cluster: &str,
        nodegroup: &str,
        update_id: &str,
    ) -> PortResult<UpdateStatus> {
        let out = crate::send!(
            "eks:DescribeUpdate",
            self.client
                .describe_update()
                .name(cluster)
                .nodegroup_name(nodegroup)
                .update_id(update_id)
        )?;
        let update = out.update().ok_or_else(|| PortError::Unexpected {
            op: "eks:DescribeUpdate".into(),
            detail: "the answer carried no update".into(),
        })?;
        Ok(match update.status() {
            Some(EksUpdateStatus::Successful) => UpdateStatus::Successful,
            Some(EksUpdateStatus::Cancelled) => UpdateStatus::Cancelled,
            Some(EksUpdateStatus::Failed) => UpdateStatus::Failed {
                errors: update
                    .errors()
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.error_code().map(|c| c.as_str()).unwrap_or("Error"),
                            e.error_message().unwrap_or_default()
                        )
                    })
                    .collect(),
            },
            _ => UpdateStatus::InProgress,
        })
    }

    async fn tag_resource(&self, arn: &str, tags: &Labels) -> PortResult<()> {
        crate::send!(
            "eks:TagResource",
            self.client
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags.clone().into_iter().collect()))
        )?;
        Ok(())
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> PortResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        crate::send!(
            "eks:UntagResource",
            self.client
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(keys.to_vec()))
        )?;
        Ok(())
    }

    async fn list_tags(&self, arn: &str) -> PortResult<Labels> {
        let out = crate::send!(
            "eks:ListTagsForResource",
            self.client.list_tags_for_resource().resource_arn(arn)
        )?;
        Ok(labels(out.tags()))
    }
}
