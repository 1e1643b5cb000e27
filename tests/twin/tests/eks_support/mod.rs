//! Shared set-up for the EKS control-plane tests: a moto server, a store on a fast scaled
//! clock, the control plane served on 127.0.0.1, and real aws-sdk clients pointed at them.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use ngm_testkit::moto::MotoServer;
use ngm_twin::clock::Clock;
use ngm_twin::eks::{Eks, EksConfig};
use ngm_twin::store::{Resource, Store};
use serde_json::{Value, json};

pub const CLUSTER: &str = "twin";
/// 100 simulated seconds per real second: a 90 s boot takes 0.9 s, a 5-minute drain 3 s.
pub const SPEED: f64 = 100.0;

pub struct Harness {
    pub moto: MotoServer,
    pub clock: Clock,
    pub store: Store,
    pub eks: Eks,
    pub eks_client: aws_sdk_eks::Client,
    pub asg_client: aws_sdk_autoscaling::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub async fn start() -> Harness {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut EksConfig)) -> Harness {
    let moto = MotoServer::start(None).await.expect("moto starts");
    let clock = Clock::scaled(SPEED);
    let store = Store::new(clock.clone());
    let mut cfg = EksConfig::new(CLUSTER, &moto.url);
    tweak(&mut cfg);
    let eks = Eks::new(cfg, store.clone(), clock.clone());
    let reconciler = eks.start();
    let (url, server) = eks.serve().await.expect("eks serves");
    let eks_client = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(url)
            .build(),
    );
    let asg_client = aws_sdk_autoscaling::Client::from_conf(
        aws_sdk_autoscaling::Config::builder()
            .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_autoscaling::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_autoscaling::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(moto.url.clone())
            .build(),
    );
    Harness {
        moto,
        clock,
        store,
        eks,
        eks_client,
        asg_client,
        tasks: vec![reconciler, server],
    }
}

/// Polls `check` every 20 ms until it yields a value, failing after `secs` real seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Harness {
    /// A CreateNodegroup over all three default subnets.
    pub fn create(
        &self,
        name: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> aws_sdk_eks::operation::create_nodegroup::builders::CreateNodegroupFluentBuilder {
        self.eks_client
            .create_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name(name)
            .node_role("arn:aws:iam::123456789012:role/node")
            .subnets("subnet-00000000000000000")
            .subnets("subnet-00000000000000001")
            .subnets("subnet-00000000000000002")
            .instance_types("m5.large")
            .scaling_config(
                aws_sdk_eks::types::NodegroupScalingConfig::builder()
                    .min_size(min)
                    .max_size(max)
                    .desired_size(desired)
                    .build(),
            )
    }

    pub async fn status(&self, name: &str) -> Option<String> {
        match self
            .eks_client
            .describe_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(out) => out
                .nodegroup()
                .and_then(|g| g.status())
                .map(|s| s.as_str().to_string()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("DescribeNodegroup failed: {e:?}"),
        }
    }

    /// Waits until the group reports `status`.
    pub async fn wait_status(&self, name: &str, status: &str, secs: u64) {
        eventually(secs, &format!("{name} to be {status}"), || async {
            (self.status(name).await.as_deref() == Some(status)).then_some(())
        })
        .await;
    }

    /// Nodes labelled for a managed group.
    /// The group's Nodes whose instance runs (a terminated instance's Node lingers until the
    /// node lifecycle controllers delete it).
    pub fn group_nodes(&self, name: &str) -> Vec<Value> {
        self.all_group_nodes(name)
            .into_iter()
            .filter(|n| {
                n["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| !self.store.dead_instances().contains(n))
            })
            .collect()
    }

    /// Every Node object labelled for the group, lingering ones included.
    pub fn all_group_nodes(&self, name: &str) -> Vec<Value> {
        self.store
            .list_all(Resource::Node, None)
            .into_iter()
            .filter(|n| {
                n.pointer("/metadata/labels/eks.amazonaws.com~1nodegroup")
                    .and_then(Value::as_str)
                    == Some(name)
            })
            .map(|n| (*n).clone())
            .collect()
    }
}

pub fn is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// A Ready, Running `app: web` pod bound to `node` in `default`, with no grace period.
pub fn web_pod(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": "default", "labels": { "app": "web" } },
        "spec": { "nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{ "name": "c", "image": "x" }] },
        "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }] },
    })
}
