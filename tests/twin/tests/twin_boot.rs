//! The whole twin booted from `tests/scenarios/pulumi-tutorial.yaml`, checked through the real
//! clients: the node group through aws-sdk-eks, its Auto Scaling group through
//! aws-sdk-autoscaling against moto, the nodes and pods through the kube client — all on the
//! one URL the twin serves.

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use ngm_twin::scenario::Scenario;
use ngm_twin::twin::{Twin, TwinOptions};

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/pulumi-tutorial.yaml");
    Scenario::load(path).expect("the tutorial scenario loads")
}

async fn boot() -> Twin {
    let options = TwinOptions {
        speed: Some(300.0),
        ..TwinOptions::default()
    };
    Twin::start(Some(scenario()), options)
        .await
        .expect("the twin boots")
}

fn eks_client(twin: &Twin) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(twin.url())
            .build(),
    )
}

fn asg_client(twin: &Twin) -> aws_sdk_autoscaling::Client {
    use aws_sdk_autoscaling::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_autoscaling::Client::from_conf(
        aws_sdk_autoscaling::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(twin.moto_url().expect("the scenario twin runs moto"))
            .build(),
    )
}

fn kube_client(twin: &Twin) -> kube::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = kube::Config::new(twin.url().parse().expect("url"));
    kube::Client::try_from(config).expect("kube client")
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booted_scenario_serves_active_node_groups_backed_by_moto_and_ready_pods() {
    let twin = boot().await;
    let eks = eks_client(&twin);
    let kube = kube_client(&twin);

    let cluster = eks
        .describe_cluster()
        .name("pulumi-tutorial")
        .send()
        .await
        .expect("DescribeCluster");
    let cluster = cluster.cluster().expect("cluster");
    assert_eq!(cluster.endpoint(), Some(twin.url()));
    assert_eq!(cluster.version(), Some("1.33"));

    let listed = eks
        .list_nodegroups()
        .cluster_name("pulumi-tutorial")
        .send()
        .await
        .expect("ListNodegroups");
    assert_eq!(listed.nodegroups(), ["standard".to_string()]);
    let group = eks
        .describe_nodegroup()
        .cluster_name("pulumi-tutorial")
        .nodegroup_name("standard")
        .send()
        .await
        .expect("DescribeNodegroup");
    let group = group.nodegroup().expect("nodegroup");
    assert_eq!(group.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(group.release_version(), Some("1.33.4-20251001"));
    assert_eq!(
        group.scaling_config().and_then(|s| s.desired_size()),
        Some(3)
    );
    let asg_name = group
        .resources()
        .and_then(|r| r.auto_scaling_groups().first())
        .and_then(|g| g.name())
        .expect("the node group names its Auto Scaling group")
        .to_string();

    let nodes = Api::<Node>::all(kube.clone())
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    assert_eq!(nodes.items.len(), 3, "one node per desired instance");
    let mut zones = BTreeSet::new();
    let mut node_instances = BTreeSet::new();
    for node in &nodes.items {
        assert_eq!(label(node, "eks.amazonaws.com/nodegroup"), Some("standard"));
        assert_eq!(
            label(node, "node.kubernetes.io/instance-type"),
            Some("t3.2xlarge")
        );
        assert_eq!(
            label(node, "eks.amazonaws.com/capacityType"),
            Some("ON_DEMAND")
        );
        assert!(
            label(node, "eks.amazonaws.com/nodegroup-image").is_some_and(|i| i.starts_with("ami-"))
        );
        assert_eq!(
            label(node, "workload"),
            Some("general"),
            "the group's own label"
        );
        zones.extend(label(node, "topology.kubernetes.io/zone").map(str::to_string));
        let provider = node.spec.as_ref().and_then(|s| s.provider_id.clone());
        let provider = provider.expect("providerID");
        node_instances.insert(provider.rsplit('/').next().unwrap_or_default().to_string());
    }
    let want_zones: BTreeSet<String> = ["us-west-2a", "us-west-2b", "us-west-2c"]
        .map(str::to_string)
        .into();
    assert_eq!(zones, want_zones, "nodes are spread over the group's zones");

    let asg = asg_client(&twin)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg_name)
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    let asg = asg
        .auto_scaling_groups()
        .first()
        .expect("the group exists in moto");
    let asg_instances: BTreeSet<String> = asg
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    assert_eq!(
        asg_instances, node_instances,
        "every node is an instance of the group"
    );

    let pods = Api::<Pod>::all(kube)
        .list(&ListParams::default())
        .await
        .expect("list pods");
    assert_eq!(
        pods.items.len(),
        8,
        "3 ingress controllers, 3 echoservers and 2 CoreDNS replicas"
    );
    for pod in &pods.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(ready, "pod {:?} is not Ready", pod.metadata.name);
    }
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_the_managed_group_down_through_eks_removes_a_node_from_the_cluster() {
    let twin = boot().await;
    let eks = eks_client(&twin);
    eks.update_nodegroup_config()
        .cluster_name("pulumi-tutorial")
        .nodegroup_name("standard")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(2)
                .max_size(6)
                .desired_size(2)
                .build(),
        )
        .send()
        .await
        .expect("UpdateNodegroupConfig");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while twin.ready_nodes("standard").len() != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group still has {} nodes",
            twin.ready_nodes("standard").len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let env = twin.env();
    assert_eq!(
        env.get("AWS_ENDPOINT_URL_EKS").map(String::as_str),
        Some(twin.url())
    );
    assert_eq!(
        env.get("AWS_ENDPOINT_URL").map(String::as_str),
        twin.moto_url()
    );
    assert_eq!(env.get("AWS_REGION").map(String::as_str), Some("us-west-2"));
    twin.shutdown().await.expect("shutdown");
}
