//! The load balancers also exist in moto with the scenario's attributes, the Service's
//! hostname names them, and their registered instances follow the target set, so ngm can
//! read all of it through the real ELB APIs.

mod lb_support;

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancing as elb;
use aws_sdk_elasticloadbalancingv2 as elbv2;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use lb_support::*;
use ngm_testkit::moto::MotoServer;
use ngm_twin::lb::{EXCLUDE_LABEL, LbConfig};
use ngm_twin::sim::nodes::instance_id_of;
use ngm_twin::store::Resource;
use serde_json::json;

const REGION: &str = "us-west-2";

const THREE: &str = "
workloads:
  - { kind: Deployment, name: web, namespace: apps, replicas: 2, startupSeconds: 2 }
services:
  - { name: web-alb, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: { kind: ALB, idleTimeoutSeconds: 45, deregistrationDelaySeconds: 120 } }
  - { name: web-nlb, namespace: apps, workload: web, type: LoadBalancer, externalTrafficPolicy: Local, loadBalancer: { kind: NLB, idleTimeoutSeconds: 400, deregistrationDelaySeconds: 30 } }
  - { name: web-clb, namespace: apps, workload: web, type: NodePort, loadBalancer: { kind: CLB, idleTimeoutSeconds: 75, deregistrationDelaySeconds: 90 } }
";

fn clients(url: &str) -> (elbv2::Client, elb::Client) {
    let creds = elbv2::config::Credentials::new("test", "test", None, None, "test");
    let v2 = elbv2::Config::builder()
        .behavior_version(elbv2::config::BehaviorVersion::latest())
        .region(elbv2::config::Region::new(REGION))
        .credentials_provider(creds.clone())
        .endpoint_url(url)
        .build();
    let classic = elb::Config::builder()
        .behavior_version(elb::config::BehaviorVersion::latest())
        .region(elb::config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(url)
        .build();
    (
        elbv2::Client::from_conf(v2),
        elb::Client::from_conf(classic),
    )
}

async fn hostname(services: &Api<Service>, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let svc = services.get(name).await.expect("service");
        let host = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().next())
            .and_then(|i| i.hostname);
        if let Some(h) = host {
            return h;
        }
        assert!(Instant::now() < deadline, "no hostname on {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn v2_by_dns(v2: &elbv2::Client, dns: &str) -> elbv2::types::LoadBalancer {
    let all = v2.describe_load_balancers().send().await.expect("describe");
    all.load_balancers()
        .iter()
        .find(|lb| lb.dns_name() == Some(dns))
        .cloned()
        .expect("an ELBv2 load balancer with the service's hostname")
}

/// The registered targets as DescribeTargetHealth lists them, draining ones left out.
async fn registered(v2: &elbv2::Client, tg: &str) -> Vec<String> {
    let mut ids: Vec<String> = health(v2, tg)
        .await
        .into_iter()
        .filter(|(_, state)| state != "draining")
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

/// Every target DescribeTargetHealth lists, with its state.
async fn health(v2: &elbv2::Client, tg: &str) -> Vec<(String, String)> {
    let h = v2
        .describe_target_health()
        .target_group_arn(tg)
        .send()
        .await
        .expect("target health");
    h.target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let id = d.target()?.id()?.to_string();
            let state = d.target_health()?.state()?.as_str().to_string();
            Some((id, state))
        })
        .collect()
}

// Upstream: ngm finds a Service's load balancer by the hostname in
// `status.loadBalancer.ingress`, and reads its timing from the ELB attributes
// (`idle_timeout.timeout_seconds`, the NLB listener's `tcp.idle_timeout.seconds`,
// `deregistration_delay.timeout_seconds`, CLB ConnectionSettings/ConnectionDraining).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_load_balancer_exists_in_moto_with_its_attributes_and_follows_the_target_set() {
    let moto = MotoServer::start(None).await.expect("moto starts");
    let twin = boot(scenario(3, THREE)).await;
    let lbs =
        twin.balancers_with(LbConfig::from_scenario(&twin.scenario).with_aws(&moto.url, REGION));
    let (client, _server) = kube(&twin.store).await;
    let services: Api<Service> = Api::namespaced(client, "apps");
    let (v2, classic) = clients(&moto.url);
    let mut instances: Vec<String> = twin
        .nodes
        .iter()
        .map(|n| {
            instance_id_of(&twin.store.get(Resource::Node, "", n).expect("node"))
                .expect("instance id")
                .to_string()
        })
        .collect();
    instances.sort();

    let alb = v2_by_dns(&v2, &hostname(&services, "web-alb").await).await;
    let alb_arn = alb.load_balancer_arn().expect("arn");
    let attrs = v2
        .describe_load_balancer_attributes()
        .load_balancer_arn(alb_arn)
        .send()
        .await
        .expect("attributes");
    let idle = attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
        .and_then(|a| a.value());
    assert_eq!(idle, Some("45"));
    let tgs = v2
        .describe_target_groups()
        .load_balancer_arn(alb_arn)
        .send()
        .await
        .expect("target groups");
    let tg = tgs.target_groups()[0]
        .target_group_arn()
        .expect("tg arn")
        .to_string();
    let tg_attrs = v2
        .describe_target_group_attributes()
        .target_group_arn(&tg)
        .send()
        .await
        .expect("tg attributes");
    let delay = tg_attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value());
    assert_eq!(delay, Some("120"));

    let nlb = v2_by_dns(&v2, &hostname(&services, "web-nlb").await).await;
    let listeners = v2
        .describe_listeners()
        .load_balancer_arn(nlb.load_balancer_arn().expect("arn"))
        .send()
        .await
        .expect("listeners");
    let listener = listeners.listeners()[0]
        .listener_arn()
        .expect("listener arn");
    let l_attrs = v2
        .describe_listener_attributes()
        .listener_arn(listener)
        .send()
        .await
        .expect("listener attributes");
    let tcp_idle = l_attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("tcp.idle_timeout.seconds"))
        .and_then(|a| a.value());
    assert_eq!(tcp_idle, Some("400"));

    let clb_dns = hostname(&services, "web-clb").await;
    let described = classic
        .describe_load_balancers()
        .send()
        .await
        .expect("classic");
    let clb = described
        .load_balancer_descriptions()
        .iter()
        .find(|d| d.dns_name() == Some(clb_dns.as_str()))
        .expect("a CLB with the hostname");
    let clb_name = clb.load_balancer_name().expect("name").to_string();
    let c_attrs = classic
        .describe_load_balancer_attributes()
        .load_balancer_name(&clb_name)
        .send()
        .await
        .expect("classic attributes");
    let c_attrs = c_attrs.load_balancer_attributes().expect("attributes");
    assert_eq!(
        c_attrs.connection_settings().map(|c| c.idle_timeout()),
        Some(75)
    );
    assert_eq!(
        c_attrs
            .connection_draining()
            .map(|d| (d.enabled(), d.timeout())),
        Some((true, Some(90)))
    );

    // Registration runs behind creation; wait for every node, then exclude one.
    let deadline = Instant::now() + Duration::from_secs(20);
    while registered(&v2, &tg).await != instances {
        assert!(Instant::now() < deadline, "targets never matched the nodes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    twin.store
        .mutate(Resource::Node, "", &twin.nodes[0], |v| {
            v["metadata"]["labels"][EXCLUDE_LABEL] = json!("");
            Ok(())
        })
        .expect("label");
    let excluded = instance_id_of(
        &twin
            .store
            .get(Resource::Node, "", &twin.nodes[0])
            .expect("node"),
    )
    .expect("id")
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ids = registered(&v2, &tg).await;
        let clb_ids: Vec<String> = classic
            .describe_load_balancers()
            .load_balancer_names(&clb_name)
            .send()
            .await
            .expect("classic")
            .load_balancer_descriptions()[0]
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if ids.len() == 2
            && !ids.contains(&excluded)
            && clb_ids.len() == 2
            && !clb_ids.contains(&excluded)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the excluded instance stayed registered: {ids:?} {clb_ids:?}"
        );
        // The controllers see the label after their lag (`cluster.endpointLag`).
        twin.run_for(0.25, 0.25).await;
    }
    // ALB guide, "Deregistration delay": the deregistered target shows `draining` (the twin
    // gives moto its states: tests/aws/moto_server.py `POST /ngm/target-health`).
    let states = health(&v2, &tg).await;
    assert!(
        states.contains(&(excluded.clone(), "draining".to_string())),
        "{states:?}"
    );
    assert!(lbs.aws_errors().is_empty(), "{:?}", lbs.aws_errors());
    lbs.stop().await;
    moto.stop().await;
}
