//! Auto Scaling: the self-managed groups ngm migrates from, and the managed groups' backing ASGs
//! that ngm pins while Cluster Autoscaler is frozen.

use async_trait::async_trait;
use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Tag, TrafficSourceIdentifier};
use ngm_core::model::{
    AsgInfo, AsgInstance, Labels, LaunchTemplateRef, OnDemandShare, Scaling, TrafficSource,
};
use ngm_core::ports::{AsgPort, PortError, PortResult};
use ngm_core::state::LbAttachments;

#[derive(Debug, Clone)]
pub struct AsgAdapter {
    client: Client,
}

impl AsgAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn info_of(g: &AutoScalingGroup) -> AsgInfo {
    let lt = g.launch_template().or_else(|| {
        g.mixed_instances_policy()
            .and_then(|m| m.launch_template())
            .and_then(|l| l.launch_template_specification())
    });
    AsgInfo {
        name: g.auto_scaling_group_name().unwrap_or_default().to_owned(),
        arn: g.auto_scaling_group_arn().map(str::to_owned),
        scaling: Scaling {
            min: g.min_size().unwrap_or(0),
            max: g.max_size().unwrap_or(0),
            desired: g.desired_capacity().unwrap_or(0),
        },
        instances: g
            .instances()
            .iter()
            .map(|i| AsgInstance {
                instance_id: i.instance_id().unwrap_or_default().to_owned(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                availability_zone: i.availability_zone().unwrap_or_default().to_owned(),
                instance_type: i.instance_type().map(str::to_owned),
            })
            .collect(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
        suspended_processes: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_owned))
            .collect(),
        launch_template: lt.map(|l| LaunchTemplateRef {
            id: l.launch_template_id().map(str::to_owned),
            name: l.launch_template_name().map(str::to_owned),
            version: l.version().map(str::to_owned),
        }),
        override_instance_types: g
            .mixed_instances_policy()
            .and_then(|m| m.launch_template())
            .map(|l| {
                l.overrides()
                    .iter()
                    .filter_map(|o| o.instance_type().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        on_demand_share: g
            .mixed_instances_policy()
            .and_then(|m| m.instances_distribution())
            .map(|d| OnDemandShare {
                base: d.on_demand_base_capacity().unwrap_or(0),
                percent_above_base: d.on_demand_percentage_above_base_capacity().unwrap_or(100),
            }),
        subnets: g
            .vpc_zone_identifier()
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        availability_zones: g.availability_zones().to_vec(),
        load_balancer_names: g.load_balancer_names().to_vec(),
        target_group_arns: g.target_group_arns().to_vec(),
        traffic_sources: g
            .traffic_sources()
            .iter()
            .filter_map(|t| {
                Some(TrafficSource {
                    identifier: t.identifier()?.to_string(),
                    kind: t.r#type().unwrap_or_default().to_string(),
                })
            })
            .collect(),
    }
}

/// The SDK's identifiers of traffic sources.
fn identifiers(sources: &[TrafficSource]) -> Vec<TrafficSourceIdentifier> {
    sources
        .iter()
        .map(|t| {
            TrafficSourceIdentifier::builder()
                .identifier(&t.identifier)
                .r#type(&t.kind)
                .build()
        })
        .collect()
}

#[async_trait]
impl AsgPort for AsgAdapter {
    async fn describe(&self, name: &str) -> PortResult<Option<AsgInfo>> {
        let out = crate::send!(
            "autoscaling:DescribeAutoScalingGroups",
            self.client
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
        )?;
        // An unknown name is an empty list, not an error.
        Ok(out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
            .map(info_of))
    }

    async fn update_size(&self, name: &str, scaling: Scaling) -> PortResult<()> {
        crate::send!(
            "autoscaling:UpdateAutoScalingGroup",
            self.client
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .min_size(scaling.min)
                .max_size(scaling.max)
                .desired_capacity(scaling.desired)
        )?;
        Ok(())
    }

    async fn suspend_processes(&self, name: &str, processes: &[String]) -> PortResult<()> {
        crate::send!(
            "autoscaling:SuspendProcesses",
            self.client
                .suspend_processes()
                .auto_scaling_group_name(name)
                .set_scaling_processes(Some(processes.to_vec()))
        )?;
        Ok(())
    }

    async fn resume_processes(&self, name: &str, processes: &[String]) -> PortResult<()> {
        crate::send!(
            "autoscaling:ResumeProcesses",
            self.client
                .resume_processes()
                .auto_scaling_group_name(name)
                .set_scaling_processes(Some(processes.to_vec()))
        )?;
        Ok(())
    }

    async fn tag(&self, name: &str, tags: &Labels) -> PortResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| {
                Tag::builder()
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .value(v)
                    .propagate_at_launch(false)
                    .build()
            })
            .collect();
        crate::send!(
            "autoscaling:CreateOrUpdateTags",
            self.client.create_or_update_tags().set_tags(Some(tags))
        )?;
        Ok(())
    }

    async fn untag(&self, name: &str, keys: &[String]) -> PortResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tags = keys
            .iter()
            .map(|k| {
                Tag::builder()
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .build()
            })
            .collect();
        crate::send!(
            "autoscaling:DeleteTags",
            self.client.delete_tags().set_tags(Some(tags))
        )?;
        Ok(())
    }

    async fn attach_load_balancers(&self, name: &str, a: &LbAttachments) -> PortResult<()> {
        if !a.load_balancer_names.is_empty() {
            crate::send!(
                "autoscaling:AttachLoadBalancers",
                self.client
                    .attach_load_balancers()
                    .auto_scaling_group_name(name)
                    .set_load_balancer_names(Some(a.load_balancer_names.clone()))
            )?;
        }
        if !a.target_group_arns.is_empty() {
            crate::send!(
                "autoscaling:AttachLoadBalancerTargetGroups",
                self.client
                    .attach_load_balancer_target_groups()
                    .auto_scaling_group_name(name)
                    .set_target_group_arns(Some(a.target_group_arns.clone()))
            )?;
        }
        // At most 10 traffic sources a call (Auto Scaling API reference).
        for chunk in a.traffic_sources.chunks(10) {
            crate::send!(
                "autoscaling:AttachTrafficSources",
                self.client
                    .attach_traffic_sources()
                    .auto_scaling_group_name(name)
                    .set_traffic_sources(Some(identifiers(chunk)))
            )?;
        }
        Ok(())
    }

    async fn detach_load_balancers(&self, name: &str, a: &LbAttachments) -> PortResult<()> {
        if !a.load_balancer_names.is_empty() {
            crate::send!(
                "autoscaling:DetachLoadBalancers",
                self.client
                    .detach_load_balancers()
                    .auto_scaling_group_name(name)
                    .set_load_balancer_names(Some(a.load_balancer_names.clone()))
            )?;
        }
        if !a.target_group_arns.is_empty() {
            crate::send!(
                "autoscaling:DetachLoadBalancerTargetGroups",
                self.client
                    .detach_load_balancer_target_groups()
                    .auto_scaling_group_name(name)
                    .set_target_group_arns(Some(a.target_group_arns.clone()))
            )?;
        }
        for chunk in a.traffic_sources.chunks(10) {
            crate::send!(
                "autoscaling:DetachTrafficSources",
                self.client
                    .detach_traffic_sources()
                    .auto_scaling_group_name(name)
                    .set_traffic_sources(Some(identifiers(chunk)))
            )?;
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> PortResult<()> {
        let out = crate::send!(
            "autoscaling:DeleteAutoScalingGroup",
            self.client
                .delete_auto_scaling_group()
                .auto_scaling_group_name(name)
                .force_delete(true)
        );
        match out {
            Ok(_) | Err(PortError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
