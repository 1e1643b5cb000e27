//! Load balancers attached to Auto Scaling groups (ASG guide, `autoscaling-load-balancer.md`
//! and `ec2-auto-scaling-lifecycle.md`): "Instances that are launched by your Auto Scaling
//! group are automatically registered with the load balancer", they deregister with draining
//! when the group is detached, and nothing in Kubernetes (no Node label) adds or removes one.

use std::time::Duration;

use aws_sdk_autoscaling::config::{BehaviorVersion, Credentials, Region};
use ngm_twin::lb::{EXCLUDE_LABEL, TargetState};
use ngm_twin::scenario::Scenario;
use ngm_twin::store::Resource;
use ngm_twin::twin::{Twin, TwinOptions};
use serde_json::json;

const SCENARIO: &str = r#"
name: attached
cluster:
  name: attached
  region: eu-north-1
  speed: 60
  nodeGroups:
    - name: blue
      instanceTypes: [m5.large]
      zones: [eu-north-1a, eu-north-1b]
      amiRelease: 1.33.4-20251001
      desiredSize: 2
workloads:
  - { kind: Deployment, name: web, replicas: 2, startupSeconds: 2 }
services:
  - name: web
    workload: web
    type: NodePort
    loadBalancer: { kind: CLB, deregistrationDelaySeconds: 300, attachedTo: [blue] }
traffic:
  - { service: web, requestsPerSecond: 10, requestSeconds: 0.2 }
migration:
  cluster: { name: attached, region: eu-north-1 }
  source: { managedNodeGroup: blue }
  target: { name: green }
"#;

async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_clb_follows_the_groups_instances_not_node_labels_and_drains_on_detach() {
    follows_the_group(false).await;
}

// Auto Scaling API reference, AttachTrafficSources: a traffic source's instances are
// registered and deregistered as an attached load balancer's are; the group lists it among its
// `TrafficSources`, not in its legacy `LoadBalancerNames` (the moto wrapper's strict reading,
// tests/aws/traffic_sources.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clb_attached_as_a_traffic_source_follows_the_group_the_same_way() {
    follows_the_group(true).await;
}

/// The scenario's CLB, attached to blue's group (`as_source`: with AttachTrafficSources):
/// the group's instances are its targets whatever their labels, and drain on the detach.
async fn follows_the_group(as_source: bool) {
    let yaml = if as_source {
        SCENARIO.replace(
            "attachedTo: [blue] }",
            "attachedTo: [blue], attachedWith: trafficSources }",
        )
    } else {
        SCENARIO.to_string()
    };
    let scenario = Scenario::parse(&yaml).expect("scenario");
    let twin = Twin::start(Some(scenario), TwinOptions::default())
        .await
        .expect("the twin boots");
    let lbs = twin.balancers().expect("load balancers");
    let nodes: Vec<String> = twin
        .store()
        .list_all(Resource::Node, None)
        .iter()
        .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(str::to_string))
        .collect();
    assert_eq!(nodes.len(), 2);
    let targets = || lbs.targets("default", "web").unwrap_or_default();
    eventually(20, "both instances registered", || {
        targets().len() == 2 && targets().values().all(|s| *s == TargetState::Healthy)
    })
    .await;

    // The exclusion label is Kubernetes' business: the attachment ignores it.
    twin.store()
        .mutate(Resource::Node, "", &nodes[0], |v| {
            v["metadata"]["labels"][EXCLUDE_LABEL] = json!("true");
            Ok(())
        })
        .expect("label");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        targets().get(&nodes[0]),
        Some(&TargetState::Healthy),
        "{:?}",
        targets()
    );

    // Detaching the group deregisters its instances, which drain (a CLB ends an idle drain
    // at once, so they may already be gone).
    let moto_url = twin.moto_url().expect("moto").to_string();
    let asg_name = twin
        .eks()
        .and_then(|e| e.nodegroup("blue"))
        .map(|g| g.asg_name)
        .expect("blue's Auto Scaling group");
    let asg = aws_sdk_autoscaling::Client::from_conf(
        aws_sdk_autoscaling::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-north-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(&moto_url)
            .build(),
    );
    let clb = lbs.aws("default", "web").expect("the CLB in moto").name;
    let group = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg_name)
        .send()
        .await
        .expect("describe");
    let g = &group.auto_scaling_groups()[0];
    let sources: Vec<&str> = g
        .traffic_sources()
        .iter()
        .filter_map(|t| t.identifier())
        .collect();
    assert_eq!(
        sources,
        [clb.as_str()],
        "every traffic source of blue's group"
    );
    if as_source {
        assert!(g.load_balancer_names().is_empty(), "{g:?}");
        asg.detach_traffic_sources()
            .auto_scaling_group_name(&asg_name)
            .traffic_sources(
                aws_sdk_autoscaling::types::TrafficSourceIdentifier::builder()
                    .identifier(&clb)
                    .r#type("elb")
                    .build(),
            )
            .send()
            .await
            .expect("detach");
    } else {
        assert_eq!(
            g.load_balancer_names(),
            std::slice::from_ref(&clb),
            "the scenario attached the CLB to blue's group"
        );
        asg.detach_load_balancers()
            .auto_scaling_group_name(&asg_name)
            .load_balancer_names(&clb)
            .send()
            .await
            .expect("detach");
    }
    eventually(20, "no instance registered after the detach", || {
        targets().values().all(|s| *s == TargetState::Draining)
    })
    .await;
    let stats = twin.balancers().expect("lbs").stats();
    assert!(stats.sent() > 0);
}
