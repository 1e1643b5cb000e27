//! CreateNodegroup over the real aws-sdk-eks client: statuses, nodes, idempotency, validation.

mod eks_support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_autoscaling::types::Filter;
use aws_sdk_eks::types::{NodegroupStatus, Taint, TaintEffect};
use eks_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_is_creating_until_its_nodes_boot_then_active_with_eks_labelled_ready_nodes() {
    // A 5-minute boot (3 s of wall time) leaves room to observe CREATING on a busy machine.
    let h = start_with(|c| c.boot_time = Duration::from_secs(300)).await;
    let out = h
        .create("web", 1, 5, 3)
        .labels("team", "web")
        .taints(
            Taint::builder()
                .key("dedicated")
                .value("web")
                .effect(TaintEffect::NoSchedule)
                .build(),
        )
        .send()
        .await
        .expect("create");
    // EKS answers CreateNodegroup with the group in CREATING; nodes join only after booting.
    let g = out.nodegroup().expect("nodegroup");
    assert_eq!(g.status(), Some(&NodegroupStatus::Creating));
    assert_eq!(h.status("web").await.as_deref(), Some("CREATING"));
    assert!(
        h.group_nodes("web").is_empty(),
        "nodes registered before booting"
    );

    h.wait_status("web", "ACTIVE", 30).await;
    let nodes = h.group_nodes("web");
    assert_eq!(nodes.len(), 3);
    let mut zones = BTreeSet::new();
    for n in &nodes {
        assert!(is_ready(n), "node not Ready: {n}");
        assert_eq!(
            label(n, "node.kubernetes.io/instance-type"),
            Some("m5.large")
        );
        assert_eq!(
            label(n, "eks.amazonaws.com/capacityType"),
            Some("ON_DEMAND")
        );
        assert!(
            label(n, "eks.amazonaws.com/nodegroup-image").is_some_and(|a| a.starts_with("ami-"))
        );
        assert_eq!(label(n, "team"), Some("web"));
        let name = n["metadata"]["name"].as_str().unwrap();
        assert_eq!(label(n, "kubernetes.io/hostname"), Some(name));
        let zone = label(n, "topology.kubernetes.io/zone").unwrap().to_string();
        let provider = n["spec"]["providerID"].as_str().unwrap();
        assert!(
            provider.starts_with(&format!("aws:///{zone}/i-")),
            "{provider}"
        );
        assert_eq!(n["spec"]["taints"][0]["effect"], "NoSchedule");
        assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(n["status"]["allocatable"]["cpu"], "1930m");
        zones.insert(zone);
    }
    // Three subnets in three zones: EKS spreads the group's instances over all of them.
    assert_eq!(zones.len(), 3, "{zones:?}");

    // The group is backed by a real Auto Scaling group, tagged as EKS tags it.
    let asg_name = h
        .eks_client
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("web")
        .send()
        .await
        .unwrap()
        .nodegroup()
        .and_then(|g| g.resources())
        .and_then(|r| r.auto_scaling_groups().first())
        .and_then(|a| a.name())
        .unwrap()
        .to_string();
    let asgs = h
        .asg_client
        .describe_auto_scaling_groups()
        .filters(
            Filter::builder()
                .name("tag:eks:nodegroup-name")
                .values("web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let asg = &asgs.auto_scaling_groups()[0];
    assert_eq!(asg.auto_scaling_group_name(), Some(asg_name.as_str()));
    assert_eq!(asg.desired_capacity(), Some(3));
    let tag = |k: &str| {
        asg.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("eks:cluster-name").as_deref(), Some(CLUSTER));
    assert_eq!(tag("kubernetes.io/cluster/twin").as_deref(), Some("owned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_create_with_the_same_token_returns_the_same_group_and_another_token_conflicts()
{
    let h = start().await;
    let first = h
        .create("api", 1, 2, 1)
        .client_request_token("exec-1-create")
        .send()
        .await
        .expect("create");
    let again = h
        .create("api", 1, 2, 1)
        .client_request_token("exec-1-create")
        .send()
        .await
        .expect("retry");
    // clientRequestToken makes CreateNodegroup idempotent (EKS API reference).
    assert_eq!(
        first.nodegroup().unwrap().nodegroup_arn(),
        again.nodegroup().unwrap().nodegroup_arn()
    );
    let err = h
        .create("api", 1, 2, 1)
        .client_request_token("exec-2-create")
        .send()
        .await
        .unwrap_err();
    let svc = err.as_service_error().expect("service error");
    assert!(svc.is_resource_in_use_exception(), "{svc:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    assert_eq!(h.eks.counters().get("CreateNodegroup"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_parameters_surface_as_invalid_parameter_exception() {
    let h = start().await;
    let too_many_taints: Vec<Taint> = (0..51)
        .map(|i| {
            Taint::builder()
                .key(format!("k{i}"))
                .effect(TaintEffect::NoSchedule)
                .build()
        })
        .collect();
    let cases = [
        ("desired above max", h.create("ok", 1, 2, 3)),
        ("bad name", h.create("-bad", 1, 2, 1)),
        (
            "reserved label",
            h.create("ok", 1, 2, 1)
                .labels("node-role.kubernetes.io/worker", ""),
        ),
        (
            "51 taints",
            h.create("ok", 1, 2, 1).set_taints(Some(too_many_taints)),
        ),
    ];
    for (what, req) in cases {
        let err = req.send().await.expect_err(what);
        let svc = err.as_service_error().expect("service error");
        assert!(svc.is_invalid_parameter_exception(), "{what}: {svc:?}");
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(400),
            "{what}"
        );
        assert!(
            svc.meta().message().is_some_and(|m| !m.is_empty()),
            "{what}: no message"
        );
    }
    assert_eq!(
        h.status("ok").await,
        None,
        "a rejected create left a group behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_groups_and_clusters_are_resource_not_found() {
    let h = start().await;
    let err = h
        .eks_client
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("nope")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let err = h
        .eks_client
        .describe_cluster()
        .name("other")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let cluster = h
        .eks_client
        .describe_cluster()
        .name(CLUSTER)
        .send()
        .await
        .unwrap();
    let c = cluster.cluster().unwrap();
    assert_eq!(c.version(), Some("1.33"));
    assert_eq!(c.status().map(|s| s.as_str()), Some("ACTIVE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_set_to_fail_ends_create_failed_without_nodes() {
    let h = start().await;
    h.eks.faults().fail_create("broken");
    h.create("broken", 1, 2, 2).send().await.expect("create");
    h.wait_status("broken", "CREATE_FAILED", 30).await;
    let out = h
        .eks_client
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("broken")
        .send()
        .await
        .unwrap();
    let issues = out.nodegroup().unwrap().health().unwrap().issues();
    assert_eq!(
        issues[0].code().map(|c| c.as_str()),
        Some("NodeCreationFailure")
    );
    assert!(h.group_nodes("broken").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_issue_makes_an_active_group_degraded_until_it_heals() {
    let h = start().await;
    h.create("ng", 0, 1, 0).send().await.expect("create");
    h.wait_status("ng", "ACTIVE", 30).await;
    h.eks
        .faults()
        .degrade("ng", "AsgInstanceLaunchFailures", "capacity");
    h.wait_status("ng", "DEGRADED", 30).await;
    h.eks.faults().heal("ng");
    h.wait_status("ng", "ACTIVE", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_are_retried_by_the_sdk_and_counted() {
    let h = start().await;
    h.create("ng", 0, 1, 0).send().await.expect("create");
    // ThrottlingException (429) is retryable for the SDK's standard retry (3 attempts).
    h.eks
        .faults()
        .fail_call("DescribeNodegroup", ngm_twin::eks::CallFault::Throttle, 2);
    assert!(h.status("ng").await.is_some());
    assert_eq!(h.eks.counters().get("DescribeNodegroup"), 3);
    h.eks
        .faults()
        .fail_call("ListNodegroups", ngm_twin::eks::CallFault::ServerError, 10);
    let err = h
        .eks_client
        .list_nodegroups()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_server_exception(),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_nodegroups_pages_with_max_results_and_next_token() {
    let h = start().await;
    for name in ["a", "b", "c", "d", "e"] {
        h.create(name, 0, 1, 0).send().await.expect("create");
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let out = h
            .eks_client
            .list_nodegroups()
            .cluster_name(CLUSTER)
            .max_results(2)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.nodegroups().len() <= 2);
        seen.extend(out.nodegroups().iter().cloned());
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let err = h
        .eks_client
        .list_nodegroups()
        .cluster_name(CLUSTER)
        .max_results(500)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_parameter_exception()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_on_a_nodegroup_arn_are_added_listed_and_removed() {
    let h = start().await;
    let arn = h
        .create("ng", 0, 1, 0)
        .tags("owner", "a")
        .send()
        .await
        .unwrap()
        .nodegroup()
        .unwrap()
        .nodegroup_arn()
        .unwrap()
        .to_string();
    h.eks_client
        .tag_resource()
        .resource_arn(&arn)
        .tags("ngm/migration", "exec-1")
        .send()
        .await
        .unwrap();
    let tags = h
        .eks_client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags = tags.tags().unwrap();
    assert_eq!(tags.get("owner").map(String::as_str), Some("a"));
    assert_eq!(
        tags.get("ngm/migration").map(String::as_str),
        Some("exec-1")
    );
    h.eks_client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("ngm/migration")
        .send()
        .await
        .unwrap();
    let tags = h
        .eks_client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(!tags.tags().unwrap().contains_key("ngm/migration"));
    let err = h
        .eks_client
        .list_tags_for_resource()
        .resource_arn("arn:aws:eks:us-east-1:123456789012:nodegroup/twin/x/y")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_not_found_exception());
}
