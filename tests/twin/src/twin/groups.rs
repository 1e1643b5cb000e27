//! The scenario's node groups, created the way they exist on AWS so that every node belongs to
//! a real Auto Scaling group in moto:
//! - a managed group goes through the EKS part's CreateNodegroup, which creates its Auto
//!   Scaling group (tagged as EKS tags it);
//! - a self-managed group is an Auto Scaling group the twin creates itself, tagged
//!   `kubernetes.io/cluster/<cluster>=owned`, with Cluster Autoscaler node-template tags for
//!   its nodes' labels and taints (the kubelet flags a real one would carry).
//!
//! The EKS reconciler then registers a Node for every InService instance of both kinds, and
//! removes it when the instance goes, so scaling or deleting the group really changes the
//! cluster.

use std::collections::BTreeSet;

use aws_sdk_autoscaling::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_autoscaling::types::Tag;
use serde_json::{Value, json};

use super::TwinError;
use crate::eks::{BOOT_SECONDS_TAG, EksConfig, NodegroupStatus, Subnet};
use crate::scenario::{NodeGroup, NodeGroupKind, Scenario};
use crate::sim::nodes::ASG_ANNOTATION;
use crate::store::{Resource, Store};

/// The label eksctl puts on a self-managed group's nodes; ngm and kubectl users select by it.
pub const SELF_MANAGED_LABEL: &str = "alpha.eksctl.io/nodegroup-name";
const CA_LABEL_TAG: &str = "k8s.io/cluster-autoscaler/node-template/label/";
const CA_TAINT_TAG: &str = "k8s.io/cluster-autoscaler/node-template/taint/";

/// FNV-1a, for ids that are stable across runs.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |a, b| {
        (a ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A subnet id for a zone: `subnet-0` and 16 hex digits, as EC2's.
pub fn subnet_id(zone: &str) -> String {
    format!("subnet-0{:016x}", fnv(zone))
}

/// The cluster's subnets: one per zone any node group uses, plus the region's `a`, `b` and
/// `c` zones, so a migration may target zones the old group lacks.
pub fn subnets(scenario: &Scenario) -> Vec<Subnet> {
    let region = &scenario.cluster.region;
    let mut zones: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let defaults = ["a", "b", "c"].map(|s| format!("{region}{s}"));
    for z in scenario
        .cluster
        .node_groups
        .iter()
        .flat_map(|g| g.zones.iter())
        .chain(defaults.iter())
    {
        if seen.insert(z.clone()) {
            zones.push(z.clone());
        }
    }
    zones
        .into_iter()
        .map(|zone| Subnet {
            id: subnet_id(&zone),
            zone,
        })
        .collect()
}

/// EKS spells taint effects in capitals (`NO_SCHEDULE`); scenarios use Kubernetes' spelling.
fn eks_effect(effect: &str) -> &'static str {
    match effect {
        "NoExecute" | "NO_EXECUTE" => "NO_EXECUTE",
        "PreferNoSchedule" | "PREFER_NO_SCHEDULE" => "PREFER_NO_SCHEDULE",
        _ => "NO_SCHEDULE",
    }
}

/// The CreateNodegroup request for a managed group.
pub fn create_request(cfg: &EksConfig, g: &NodeGroup) -> Value {
    let taints: Vec<Value> = g
        .taints
        .iter()
        .map(|t| {
            let mut v = json!({ "key": t.key, "effect": eks_effect(&t.effect) });
            if let Some(value) = &t.value {
                v["value"] = json!(value);
            }
            v
        })
        .collect();
    json!({
        "nodegroupName": g.name,
        "scalingConfig": { "minSize": g.min(), "maxSize": g.max(), "desiredSize": g.desired_size },
        "subnets": g.zones.iter().map(|z| cfg.subnet_in(z)).collect::<Vec<_>>(),
        "instanceTypes": g.instance_types,
        "amiType": g.ami_type,
        "releaseVersion": g.ami_release,
        "capacityType": g.capacity_type,
        "nodeRole": format!("arn:aws:iam::{}:role/{}-node", cfg.account_id, cfg.cluster_name),
        "labels": g.labels,
        "taints": taints,
        "tags": g.tags,
        "clientRequestToken": format!("ngm-twin-{}", g.name),
    })
}

/// An Auto Scaling client for moto (moto accepts any credentials).
pub fn asg_client(moto_url: &str, region: &str) -> aws_sdk_autoscaling::Client {
    aws_sdk_autoscaling::Client::from_conf(
        aws_sdk_autoscaling::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new("twin", "twin", None, None, "ngm-twin"))
            .endpoint_url(moto_url)
            .build(),
    )
}

/// The tags of a self-managed group's Auto Scaling group.
fn self_managed_tags(cluster: &str, g: &NodeGroup) -> Vec<(String, String)> {
    let mut tags = vec![
        (
            format!("kubernetes.io/cluster/{cluster}"),
            "owned".to_string(),
        ),
        ("Name".to_string(), format!("{cluster}-{}-Node", g.name)),
        (BOOT_SECONDS_TAG.to_string(), g.boot_seconds.to_string()),
        (AMI_TYPE_TAG.to_string(), g.ami_type.clone()),
        (
            format!("{CA_LABEL_TAG}{SELF_MANAGED_LABEL}"),
            g.name.clone(),
        ),
    ];
    tags.extend(
        g.labels
            .iter()
            .map(|(k, v)| (format!("{CA_LABEL_TAG}{k}"), v.clone())),
    );
    tags.extend(g.taints.iter().map(|t| {
        let value = t.value.clone().unwrap_or_default();
        (
            format!("{CA_TAINT_TAG}{}", t.key),
            format!("{value}:{}", t.effect),
        )
    }));
    tags.extend(g.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags
}

/// An EC2 client for moto (launch templates of mixed-instances groups).
pub fn ec2_client(moto_url: &str, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "twin", "twin", None, None, "ngm-twin",
            ))
            .endpoint_url(moto_url)
            .build(),
    )
}

/// The tag that tells the twin's kubelet which AMI family a self-managed group's instances
/// boot (what their `status.nodeInfo.osImage` says).
pub const AMI_TYPE_TAG: &str = "ngm-twin/ami-type";

/// Creates a self-managed group and its launch configuration in moto; a Spot group or one of
/// several instance types is a mixed-instances group on a launch template, as eksctl makes
/// them (all Spot: `OnDemandBaseCapacity` 0 and `OnDemandPercentageAboveBaseCapacity` 0).
pub async fn create_self_managed(
    client: &aws_sdk_autoscaling::Client,
    ec2: &aws_sdk_ec2::Client,
    cluster: &str,
    g: &NodeGroup,
    subnets: &[String],
) -> Result<(), TwinError> {
    use aws_sdk_autoscaling::types::{
        InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides,
        LaunchTemplateSpecification, MixedInstancesPolicy,
    };
    let aws = |what: &str, e: String| TwinError::Aws(format!("{what} for {}: {e}", g.name));
    let lc = format!("{}-lc", g.name);
    let image = g
        .ami_id
        .clone()
        .unwrap_or_else(|| format!("ami-0{:016x}", fnv(&g.ami_release)));
    let spot = g.capacity_type == "SPOT";
    let mixed = spot || g.instance_types.len() > 1;
    if mixed {
        ec2.create_launch_template()
            .launch_template_name(&lc)
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id(&image)
                    .instance_type(aws_sdk_ec2::types::InstanceType::from(
                        g.instance_types[0].as_str(),
                    ))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws("CreateLaunchTemplate", format!("{e:?}")))?;
    } else {
        client
            .create_launch_configuration()
            .launch_configuration_name(&lc)
            .image_id(image)
            .instance_type(&g.instance_types[0])
            .send()
            .await
            .map_err(|e| aws("CreateLaunchConfiguration", format!("{e:?}")))?;
    }
    let tags = self_managed_tags(cluster, g).into_iter().map(|(k, v)| {
        Tag::builder()
            .resource_id(&g.name)
            .resource_type("auto-scaling-group")
            .key(k)
            .value(v)
            .propagate_at_launch(true)
            .build()
    });
    let create = client.create_auto_scaling_group();
    let create = if mixed {
        let overrides = g
            .instance_types
            .iter()
            .map(|t| LaunchTemplateOverrides::builder().instance_type(t).build())
            .collect();
        create.mixed_instances_policy(
            MixedInstancesPolicy::builder()
                .launch_template(
                    LaunchTemplate::builder()
                        .launch_template_specification(
                            LaunchTemplateSpecification::builder()
                                .launch_template_name(&lc)
                                .version("$Latest")
                                .build(),
                        )
                        .set_overrides(Some(overrides))
                        .build(),
                )
                .instances_distribution(
                    InstancesDistribution::builder()
                        .on_demand_base_capacity(0)
                        .on_demand_percentage_above_base_capacity(if spot { 0 } else { 100 })
                        .build(),
                )
                .build(),
        )
    } else {
        create.launch_configuration_name(&lc)
    };
    create
        .auto_scaling_group_name(&g.name)
        .min_size(to_i32(g.min()))
        .max_size(to_i32(g.max()))
        .desired_capacity(to_i32(g.desired_size))
        // Subnets, as eksctl's groups have: ngm derives the new group's subnets from them.
        .vpc_zone_identifier(subnets.join(","))
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .map_err(|e| aws("CreateAutoScalingGroup", format!("{e:?}")))?;
    Ok(())
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The names of a group's Ready nodes, and how many nodes it has in all.
pub fn nodes_of(store: &Store, g: &NodeGroup) -> (Vec<String>, usize) {
    let mut ready = Vec::new();
    let mut total = 0;
    for node in store.list_all(Resource::Node, None) {
        let label = |k: &str| node.pointer("/metadata/labels")?.get(k)?.as_str();
        let annotation = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ASG_ANNOTATION))
            .and_then(Value::as_str);
        let belongs = match g.kind {
            NodeGroupKind::Managed => label("eks.amazonaws.com/nodegroup") == Some(&g.name),
            NodeGroupKind::SelfManaged => {
                label(SELF_MANAGED_LABEL) == Some(&g.name) || annotation == Some(&g.name)
            }
        };
        let name = node.pointer("/metadata/name").and_then(Value::as_str);
        // A terminated instance's Node may linger; it is no longer the group's.
        if !belongs || name.is_some_and(|n| store.dead_instances().contains(n)) {
            continue;
        }
        total += 1;
        if node_ready(&node) {
            ready.extend(name.map(str::to_string));
        }
    }
    (ready, total)
}

/// Each node group's Auto Scaling group names (managed: EKS's; self-managed: the group's own
/// name) and its nodes' instance ids now.
pub fn asgs_and_instances(
    store: &Store,
    eks: &crate::eks::Eks,
    s: &Scenario,
) -> std::collections::HashMap<String, (Vec<String>, std::collections::BTreeSet<String>)> {
    s.cluster
        .node_groups
        .iter()
        .map(|g| {
            let asgs = match g.kind {
                NodeGroupKind::Managed => eks
                    .nodegroup(&g.name)
                    .map(|n| n.asg_name)
                    .into_iter()
                    .collect(),
                NodeGroupKind::SelfManaged => vec![g.name.clone()],
            };
            let (ready, _) = nodes_of(store, g);
            let ids = ready
                .iter()
                .filter_map(|n| store.get(Resource::Node, "", n).ok())
                .filter_map(|v| crate::sim::nodes::instance_id_of(&v).map(str::to_string))
                .collect();
            (g.name.clone(), (asgs, ids))
        })
        .collect()
}

/// Why a group is not settled yet, or `None` once it is (managed: ACTIVE with its desired
/// Ready nodes; self-managed: its desired Ready nodes).
pub fn unsettled(
    store: &Store,
    status: Option<NodegroupStatus>,
    g: &NodeGroup,
) -> Result<Option<String>, TwinError> {
    let (ready, _) = nodes_of(store, g);
    let want = g.desired_size as usize;
    match (g.kind, status) {
        (NodeGroupKind::Managed, Some(NodegroupStatus::CreateFailed)) => {
            Err(TwinError::NodeGroup(format!("{} is CREATE_FAILED", g.name)))
        }
        (NodeGroupKind::Managed, s) if s != Some(NodegroupStatus::Active) => Ok(Some(format!(
            "node group {} is {}",
            g.name,
            s.map_or("absent", NodegroupStatus::as_str)
        ))),
        _ if ready.len() < want => Ok(Some(format!(
            "node group {} has {} of {want} nodes Ready",
            g.name,
            ready.len()
        ))),
        _ => Ok(None),
    }
}
