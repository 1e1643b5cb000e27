use std::collections::BTreeSet;

use super::*;
use crate::fixtures::{NodeExt, PodExt, WorkloadExt, deployment, node, pod, replicaset};
use crate::model::{IntOrPercent, LabelSelector, LbKind, PdbView};
use crate::request::{EmptyDirPolicy, Policy};

struct World {
    policy: Policy,
    nodes: Vec<NodeView>,
    pods: Vec<PodView>,
    rs: Vec<ReplicaSetView>,
    workloads: Vec<WorkloadView>,
    pdbs: Vec<PdbView>,
    lbs: Vec<LoadBalancerInfo>,
    services: Vec<ServiceView>,
    ip_services: BTreeSet<(String, String)>,
    zones: BTreeSet<String>,
    scaling: Scaling,
    volumes: Vec<crate::model::VolumeView>,
    node_pools: Option<Vec<crate::model::NodePoolView>>,
}

fn world() -> World {
    World {
        policy: Policy::default(),
        nodes: vec![
            node("old1", "ng-a"),
            node("old2", "ng-a").zone("eu-west-1b"),
        ],
        pods: vec![
            pod("a", "web-1", "web", "old1"),
            pod("a", "web-2", "web", "old2"),
        ],
        rs: vec![replicaset("a", "web")],
        workloads: vec![deployment("a", "web", 2).requests(500, 1 << 30)],
        pdbs: vec![],
        lbs: vec![],
        services: vec![],
        ip_services: BTreeSet::new(),
        zones: ["eu-west-1a".to_string(), "eu-west-1b".to_string()].into(),
        scaling: Scaling {
            min: 1,
            max: 4,
            desired: 2,
        },
        volumes: vec![],
        node_pools: None,
    }
}

/// The pre-flight's inputs from `w`, with `new` the new group's node when the target is known
/// (else the old sizing, a 2-CPU 8-GiB node) and its scaling.
fn inputs<'a>(
    w: &'a World,
    new: Option<&'a crate::plan::fit::NewNode>,
    old_group_labels: &'a crate::model::Labels,
    new_scaling: Scaling,
) -> PreflightInputs<'a> {
    PreflightInputs {
        policy: &w.policy,
        old_nodes: &w.nodes,
        old_pods: &w.pods,
        replicasets: &w.rs,
        workloads: &w.workloads,
        daemonsets: &[],
        pdbs: &w.pdbs,
        load_balancers: &w.lbs,
        services: &w.services,
        ip_services: &w.ip_services,
        new_node_allocatable: if new.is_some() {
            Resources::default()
        } else {
            Resources {
                cpu_millis: 2000,
                memory_bytes: 8 << 30,
            }
        },
        new_node: new,
        old_group_labels,
        volumes: &w.volumes,
        node_pools: w.node_pools.as_deref(),
        new_scaling,
        new_zones: &w.zones,
    }
}

fn run(w: &World) -> PreflightReport {
    plan_preflight(inputs(w, None, &crate::model::Labels::new(), w.scaling))
}

fn kinds(r: &PreflightReport, s: Severity) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.severity == s)
        .map(|f| f.kind.clone())
        .collect()
}

fn pdb(
    name: &str,
    app: &str,
    min: Option<IntOrPercent>,
    max: Option<IntOrPercent>,
    allowed: i32,
) -> PdbView {
    PdbView {
        namespace: "a".into(),
        name: name.into(),
        selector: LabelSelector::eq([("app", app)]),
        min_available: min,
        max_unavailable: max,
        disruptions_allowed: allowed,
        current_healthy: 2,
        desired_healthy: 2,
        expected_pods: 2,
    }
}

#[test]
fn a_healthy_world_passes_with_the_surge_counted() {
    let r = run(&world());
    assert!(r.ok(), "{:?}", r.findings);
    assert_eq!(r.deployments_to_surge, 1);
    assert_eq!(r.pods_to_move, 2);
    // Two extra pods of 500m / 1 GiB each.
    assert_eq!(
        r.capacity.needed,
        Resources {
            cpu_millis: 1000,
            memory_bytes: 2 << 30
        }
    );
}

#[test]
fn preflight_cases() {
    type Setup = fn(&mut World);
    let cases: Vec<(&str, Setup, &str, Severity)> = vec![
        (
            "surge beyond max",
            |w| w.workloads[0] = deployment("a", "web", 2).requests(5000, 1 << 30),
            "surge-capacity",
            Severity::Blocking,
        ),
        (
            "surge beyond desired",
            |w| {
                w.workloads[0] = deployment("a", "web", 2).requests(1500, 1 << 30);
                w.scaling.desired = 1
            },
            "surge-capacity",
            Severity::Warning,
        ),
        (
            "bare pod with fail policy",
            |w| w.pods.push(pod("a", "solo", "x", "old1").bare()),
            "no-controller",
            Severity::Blocking,
        ),
        (
            "emptyDir with fail policy",
            |w| {
                w.policy.empty_dir = EmptyDirPolicy::Fail;
                w.pods[0] = pod("a", "web-1", "web", "old1").empty_dir()
            },
            "empty-dir",
            Severity::Blocking,
        ),
        (
            "emptyDir with evict policy",
            |w| w.pods[0] = pod("a", "web-1", "web", "old1").empty_dir(),
            "empty-dir",
            Severity::Warning,
        ),
        (
            "statefulset volume in a lost zone",
            |w| {
                w.zones = ["eu-west-1a".to_string()].into();
                w.pods.push(
                    pod("a", "db-0", "db", "old2")
                        .owned_by("StatefulSet", "db")
                        .pvc("data-db-0"),
                );
            },
            "volume-zone",
            Severity::Blocking,
        ),
        (
            "pdb that never allows eviction of a statefulset",
            |w| {
                w.pods
                    .push(pod("a", "db-0", "db", "old1").owned_by("StatefulSet", "db"));
                w.pdbs
                    .push(pdb("db-pdb", "db", None, Some(IntOrPercent::Int(0)), 0));
            },
            "pdb-blocks",
            Severity::Blocking,
        ),
        (
            "pdb at 100% on a surged deployment",
            |w| {
                w.pdbs.push(pdb(
                    "web-pdb",
                    "web",
                    Some(IntOrPercent::Percent(100)),
                    None,
                    0,
                ))
            },
            "pdb-blocks",
            Severity::Warning,
        ),
        (
            "pdb momentarily at zero",
            |w| {
                w.pods
                    .push(pod("a", "db-0", "db", "old1").owned_by("StatefulSet", "db"));
                w.pdbs
                    .push(pdb("db-pdb", "db", Some(IntOrPercent::Int(1)), None, 0));
            },
            "pdb-blocks",
            Severity::Warning,
        ),
        (
            "load balancer listed",
            |w| {
                w.lbs.push(LoadBalancerInfo {
                    id: "arn".into(),
                    kind: LbKind::Nlb,
                    dns_name: "nlb.example".into(),
                    idle_timeout_secs: None,
                    tcp_idle_timeout_secs: None,
                    target_groups: vec![],
                    classic_draining: None,
                })
            },
            "load-balancer",
            Severity::Info,
        ),
    ];
    for (name, setup, kind, severity) in cases {
        let mut w = world();
        setup(&mut w);
        let r = run(&w);
        assert!(
            kinds(&r, severity).iter().any(|k| k == kind),
            "{name}: {:#?}",
            r.findings
        );
        assert_eq!(r.ok(), severity != Severity::Blocking, "{name}");
    }
}

#[test]
fn blocking_pdbs_are_named_with_their_pods() {
    let mut w = world();
    w.pods
        .push(pod("a", "db-0", "db", "old1").owned_by("StatefulSet", "db"));
    w.pdbs
        .push(pdb("db-pdb", "db", None, Some(IntOrPercent::Int(0)), 0));
    let r = run(&w);
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == "pdb-blocks")
        .map(|f| f.message.clone())
        .unwrap_or_default();
    assert_eq!(
        f,
        "PDB a/db-pdb never allows an eviction; it would block a/db-0"
    );
}

/// With `onPdbBlocked: waitForOperator` the request has chosen to have blocked pods forced
/// out by an operator, so a PDB that never allows an eviction is a warning, not a refusal.
#[test]
fn a_pdb_that_never_allows_eviction_only_warns_when_an_operator_will_force() {
    let mut w = world();
    w.pods
        .push(pod("a", "db-0", "db", "old1").owned_by("StatefulSet", "db"));
    w.pdbs
        .push(pdb("db-pdb", "db", None, Some(IntOrPercent::Int(0)), 0));
    assert!(!run(&w).ok());
    w.policy.on_pdb_blocked = crate::request::OnPdbBlocked::WaitForOperator;
    let r = run(&w);
    assert!(r.ok(), "{:#?}", r.findings);
    assert_eq!(
        r.findings
            .iter()
            .find(|f| f.kind == "pdb-blocks")
            .map(|f| (f.severity, f.message.as_str())),
        Some((
            Severity::Warning,
            "PDB a/db-pdb never allows an eviction; the drain will wait for an operator to force a/db-0"
        ))
    );
}

#[test]
fn drain_wait_uses_the_load_balancers_or_the_override() {
    let mut w = world();
    w.lbs.push(LoadBalancerInfo {
        id: "arn".into(),
        kind: LbKind::Alb,
        dns_name: "alb.example".into(),
        idle_timeout_secs: Some(60),
        tcp_idle_timeout_secs: None,
        target_groups: vec![],
        classic_draining: None,
    });
    assert_eq!(
        run(&w).drain_wait.seconds,
        300 + crate::plan::lbdrain::MARGIN_SECS
    );
    w.policy.lb_drain_seconds_override = Some(90);
    assert_eq!(run(&w).drain_wait.seconds, 90);
}

#[test]
fn summary_keeps_the_worst_findings_first_and_counts_them() {
    let mut w = world();
    w.pods.push(pod("a", "solo", "x", "old1").bare());
    w.pods.push(pod("a", "web-3", "web", "old1").empty_dir());
    let s = run(&w).summary(1);
    assert!(!s.ok);
    assert_eq!(s.blocking, 1);
    assert_eq!(s.warnings, 1);
    assert_eq!(s.findings, vec!["a/solo has no controller".to_string()]);
}

#[test]
fn affected_deployments_ignore_opted_out_and_terminating_pods() {
    let rs = vec![
        replicaset("a", "web"),
        replicaset("a", "api"),
        replicaset("a", "job"),
    ];
    let pods = vec![
        pod("a", "web-1", "web", "old1"),
        pod("a", "api-1", "api", "old1").annotate("ngm.io/skip-migration", "yes"),
        pod("a", "job-1", "job", "old1").terminating(),
    ];
    let set = affected_deployments(&pods, &rs, &Policy::default());
    let names: Vec<&str> = set.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, vec!["web"]);
}

/// CLB guide `config-conn-drain.md` (draining off cuts in-flight requests) and
/// aws/containers-roadmap#470 (an NLB delay under 120 s resets late connections): named, and
/// blocking unless the policy says warn.
#[test]
fn load_balancers_that_drop_requests_whatever_ngm_does_are_named_by_policy() {
    use crate::model::{ClassicDraining, LbKind, LoadBalancerInfo, TargetGroupInfo};
    use crate::request::TrafficRiskPolicy;
    let lb = |kind, draining: Option<bool>, delay: Option<u64>| LoadBalancerInfo {
        id: "lb".into(),
        kind,
        dns_name: format!("{kind:?}.example").to_lowercase(),
        idle_timeout_secs: None,
        tcp_idle_timeout_secs: None,
        target_groups: delay
            .map(|d| TargetGroupInfo {
                arn: "arn:tg".into(),
                deregistration_delay_secs: Some(d),
                target_type: Some("instance".into()),
            })
            .into_iter()
            .collect(),
        classic_draining: draining.map(|enabled| ClassicDraining {
            enabled,
            timeout_secs: 300,
        }),
    };
    let mut p = Policy::default();
    let kinds = |lbs: &[LoadBalancerInfo], p: &Policy| -> Vec<(Severity, String)> {
        traffic_risks(lbs, p)
            .into_iter()
            .map(|f| (f.severity, f.kind))
            .collect()
    };
    let risky = [
        lb(LbKind::Clb, Some(false), None),
        lb(LbKind::Nlb, None, Some(60)),
    ];
    assert_eq!(
        kinds(&risky, &p),
        vec![
            (Severity::Blocking, "clb-draining-off".to_string()),
            (
                Severity::Blocking,
                "nlb-short-deregistration-delay".to_string()
            ),
        ]
    );
    p.on_traffic_risk = TrafficRiskPolicy::Warn;
    assert!(
        kinds(&risky, &p)
            .iter()
            .all(|(s, _)| *s == Severity::Warning)
    );
    let fine = [
        lb(LbKind::Clb, Some(true), None),
        lb(LbKind::Nlb, None, Some(120)),
        lb(LbKind::Alb, None, Some(0)),
    ];
    assert!(kinds(&fine, &p).is_empty());
}

fn service(ns: &str, name: &str, app: &str, annotations: &[(&str, &str)]) -> ServiceView {
    ServiceView {
        namespace: ns.into(),
        name: name.into(),
        service_type: crate::model::ServiceType::LoadBalancer,
        external_traffic_policy: None,
        lb_hostnames: vec![],
        selector: [("app".to_string(), app.to_string())].into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn risk_kinds(w: &World) -> Vec<(Severity, String, String)> {
    run(w)
        .findings
        .into_iter()
        .filter(|f| {
            [
                "no-prestop",
                "short-grace",
                "short-prestop",
                "no-readiness-gate",
            ]
            .contains(&f.kind.as_str())
        })
        .map(|f| (f.severity, f.kind, f.message))
        .collect()
}

/// kubernetes.io "Pod Lifecycle" (termination of Pods): endpoint consumers see a pod leave
/// after their own delay, so a pod with no preStop hook gets requests after SIGTERM; and a
/// preStop that takes the whole grace period leaves no time for what is in flight. Named once
/// per workload, as warnings by default and blocking with `onWorkloadRisk: block`.
#[test]
fn workloads_that_drop_requests_when_they_stop_are_named_once_each() {
    use crate::model::PreStop;
    use crate::request::TrafficRiskPolicy;
    let mut w = world();
    w.services = vec![service("a", "web", "web", &[])];
    let found = risk_kinds(&w);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Warning);
    assert_eq!(found[0].1, "no-prestop");
    assert!(found[0].2.contains("Deployment a/web"), "{}", found[0].2);
    assert!(
        found[0].2.contains("behind Service a/web)"),
        "{}",
        found[0].2
    );
    assert!(run(&w).ok());

    w.policy.on_workload_risk = TrafficRiskPolicy::Block;
    assert_eq!(risk_kinds(&w)[0].0, Severity::Blocking);
    assert!(!run(&w).ok());

    // A 10 s sleep within a 30 s grace period is fine; within 10 s it is not.
    let with = |pre_stop, grace| -> Vec<PodView> {
        ["web-1", "web-2"]
            .iter()
            .zip(["old1", "old2"])
            .map(|(n, node)| pod("a", n, "web", node).pre_stop(pre_stop).grace(grace))
            .collect()
    };
    w.pods = with(PreStop::Sleep { seconds: 10 }, 30);
    assert!(risk_kinds(&w).is_empty());
    w.pods = with(PreStop::Sleep { seconds: 10 }, 10);
    assert_eq!(risk_kinds(&w)[0].1, "short-grace");
    // A hook whose length cannot be read is trusted.
    w.pods = with(PreStop::Other, 30);
    assert!(risk_kinds(&w).is_empty());

    // Not behind a Service, or behind one selecting other pods: nothing to say.
    w.pods = with(PreStop::None, 30);
    w.services = vec![
        service("a", "api", "api", &[]),
        service("b", "web", "web", &[]),
    ];
    assert!(risk_kinds(&w).is_empty());
}

/// aws-load-balancer-controller docs "Pod readiness gate" (IP targets need the gate for a
/// rollout without outage) and aws/containers-roadmap#470 (an NLB sends new connections to a
/// deregistered target for up to 120 s): both apply only to IP targets.
#[test]
fn ip_targets_need_a_readiness_gate_and_a_prestop_as_long_as_the_nlb_lags() {
    use crate::model::PreStop;
    let mut w = world();
    let ip = [(
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type",
        "ip",
    )];
    w.services = vec![service("a", "web", "web", &ip)];
    let pods = |pre_stop, gate: Option<&str>| -> Vec<PodView> {
        ["web-1", "web-2"]
            .iter()
            .zip(["old1", "old2"])
            .map(|(n, node)| {
                let p = pod("a", n, "web", node).pre_stop(pre_stop).grace(200);
                match gate {
                    Some(g) => p.readiness_gate(g),
                    None => p,
                }
            })
            .collect()
    };
    w.pods = pods(PreStop::Sleep { seconds: 15 }, None);
    let kinds: Vec<String> = risk_kinds(&w).into_iter().map(|f| f.1).collect();
    assert_eq!(kinds, vec!["short-prestop", "no-readiness-gate"]);
    w.pods = pods(
        PreStop::Sleep { seconds: 120 },
        Some("target-health.elbv2.k8s.aws/k8s-a-web-0123456789"),
    );
    assert!(risk_kinds(&w).is_empty());
    // The older annotation means the same.
    w.services = vec![service(
        "a",
        "web",
        "web",
        &[(
            "service.beta.kubernetes.io/aws-load-balancer-type",
            "nlb-ip",
        )],
    )];
    w.pods = pods(PreStop::Sleep { seconds: 120 }, None);
    let kinds: Vec<String> = risk_kinds(&w).into_iter().map(|f| f.1).collect();
    assert_eq!(kinds, vec!["no-readiness-gate"]);
    // Instance targets: neither applies.
    w.services = vec![service("a", "web", "web", &[])];
    w.pods = pods(PreStop::Sleep { seconds: 15 }, None);
    assert!(risk_kinds(&w).is_empty());
    // An IP TargetGroupBinding (an Ingress ALB's, or a user's): the gate applies; the NLB's
    // 120 s does not (ngm takes the pods out of the target group before they stop).
    w.ip_services = [("a".to_string(), "web".to_string())].into();
    let kinds: Vec<String> = risk_kinds(&w).into_iter().map(|f| f.1).collect();
    assert_eq!(kinds, vec!["no-readiness-gate"]);
}

/// Karpenter's `karpenter.sh/do-not-disrupt` ("Disruption", pod-level controls) and Cluster
/// Autoscaler's `safe-to-evict: "false"` (its FAQ, "What types of pods can prevent CA from
/// removing a node?"): the owner asked that the pod not be disrupted; a migration evicts it, so
/// the pre-flight names its workload, once per annotation, and blocks unless the request
/// accepts the risk by name.
#[test]
fn pods_that_ask_not_to_be_disrupted_block_unless_the_request_accepts_it() {
    let mut w = world();
    w.pods[0] = w.pods[0]
        .clone()
        .annotate(crate::marks::KARPENTER_DO_NOT_DISRUPT, "true");
    w.pods[1] = w.pods[1]
        .clone()
        .annotate(crate::marks::CA_SAFE_TO_EVICT, "false");
    let r = run(&w);
    let of =
        |kind: &str| -> Vec<&Finding> { r.findings.iter().filter(|f| f.kind == kind).collect() };
    let dnd = of("do-not-disrupt");
    assert_eq!(dnd.len(), 1, "{:?}", r.findings);
    assert_eq!(dnd[0].severity, Severity::Blocking);
    assert!(
        dnd[0]
            .message
            .starts_with("Deployment a/web has karpenter.sh/do-not-disrupt"),
        "{}",
        dnd[0].message
    );
    assert!(
        dnd[0].message.contains("a/web-1")
            && dnd[0].message.contains("acceptRisks: [do-not-disrupt]")
    );
    assert_eq!(of("safe-to-evict-false")[0].severity, Severity::Blocking);
    assert!(!r.ok());
    w.policy.accept_risks = vec![
        crate::request::AcceptedRisk::DoNotDisrupt,
        crate::request::AcceptedRisk::SafeToEvictFalse,
    ];
    let r = run(&w);
    assert!(r.ok(), "{:?}", r.findings);
    assert!(
        r.findings
            .iter()
            .any(|f| f.kind == "do-not-disrupt" && f.severity == Severity::Warning)
    );
    // Other values ask nothing.
    let mut w = world();
    w.pods[0] = w.pods[0]
        .clone()
        .annotate(crate::marks::CA_SAFE_TO_EVICT, "true");
    assert!(
        run(&w)
            .findings
            .iter()
            .all(|f| f.kind != "safe-to-evict-false")
    );
}

/// The report with a node of the new group built from `target` (m5.large by default).
fn run_with_target(w: &World, target: &crate::model::NodeGroupSpec) -> PreflightReport {
    let new = crate::plan::fit::NewNode::of(target, &w.zones).expect("known instance type");
    let group_labels = crate::fixtures::labels(&[("team", "web")]);
    plan_preflight(inputs(w, Some(&new), &group_labels, target.scaling))
}

fn new_target() -> crate::model::NodeGroupSpec {
    let mut t = crate::fixtures::managed_source();
    t.name = "ng-b".into();
    t
}

fn blocking(r: &PreflightReport) -> Vec<(String, String)> {
    r.findings
        .iter()
        .filter(|f| f.severity == Severity::Blocking)
        .map(|f| (f.kind.clone(), f.message.clone()))
        .collect()
}

#[test]
fn each_pod_must_fit_one_node_of_the_targets_instance_type() {
    let mut w = world();
    for p in &mut w.pods {
        p.requests.memory_bytes = 12 << 30;
    }
    w.workloads = vec![deployment("a", "web", 2).requests(500, 12 << 30)];
    let mut t = new_target();
    t.scaling.max = 10;
    let b = blocking(&run_with_target(&w, &t));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, "pod-too-big");
    assert!(
        b[0].1
            .contains("Deployment a/web requests 100m CPU and 12288 MiB"),
        "{b:?}"
    );
    assert!(b[0].1.contains("m5.large"), "{b:?}");
    // The same pods on m5.2xlarge nodes fit.
    t.instance_types = vec!["m5.2xlarge".into()];
    assert!(blocking(&run_with_target(&w, &t)).is_empty());
}

#[test]
fn a_selected_label_is_missing_from_the_target_or_set_outside_the_group() {
    let mut w = world();
    w.nodes = w
        .nodes
        .into_iter()
        .map(|n| n.label("team", "web").label("disk", "nvme"))
        .collect();
    let select = |w: &mut World, k: &str, v: &str| {
        for p in &mut w.pods {
            p.placement.node_selector = crate::fixtures::labels(&[(k, v)]);
        }
    };
    select(&mut w, "disk", "nvme");
    // `team` is the group's own label and the target keeps it; `disk` was set on the nodes by
    // something else, so only the request can say the new nodes get it too.
    let b = blocking(&run_with_target(&w, &new_target()));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, "unmanaged-node-label");
    assert!(
        b[0].1.contains("acceptRisks: [unmanaged-node-label]"),
        "{b:?}"
    );
    w.policy.accept_risks = vec![crate::request::AcceptedRisk::UnmanagedNodeLabel];
    let r = run_with_target(&w, &new_target());
    assert!(blocking(&r).is_empty());
    assert!(kinds(&r, Severity::Warning).contains(&"unmanaged-node-label".to_string()));
    // A target that drops the group's label is a plain miss, which no policy accepts.
    select(&mut w, "team", "web");
    assert!(blocking(&run_with_target(&w, &new_target())).is_empty());
    let mut t = new_target();
    t.labels.clear();
    let b = blocking(&run_with_target(&w, &t));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, "node-selector");
    assert!(b[0].1.contains("the new nodes do not carry team"), "{b:?}");
}

#[test]
fn the_targets_taints_must_be_tolerated() {
    let w = world();
    let mut t = new_target();
    t.taints = vec![crate::model::Taint {
        key: "dedicated".into(),
        value: Some("gpu".into()),
        effect: crate::model::TaintEffect::NoSchedule,
    }];
    let b = blocking(&run_with_target(&w, &t));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, "taint-not-tolerated");
    assert!(b[0].1.contains("dedicated=gpu:NoSchedule"), "{b:?}");
}

/// EKS's max pods: 29 on an m5.large (3 ENIs × 9 + 2).
#[test]
fn max_pods_bound_what_the_new_group_holds() {
    let mut w = world();
    w.pods = (0..40)
        .map(|i| {
            pod(
                "a",
                &format!("web-{i}"),
                "web",
                if i % 2 == 0 { "old1" } else { "old2" },
            )
        })
        .collect();
    for p in &mut w.pods {
        p.requests.cpu_millis = 10;
        p.requests.memory_bytes = 16 << 20;
    }
    w.workloads = vec![deployment("a", "web", 40).requests(10, 16 << 20)];
    let mut t = new_target();
    t.scaling = Scaling {
        min: 1,
        max: 1,
        desired: 1,
    };
    let b = blocking(&run_with_target(&w, &t));
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0, "max-pods");
    assert!(
        b[0].1.contains("40 pods must run on the new group"),
        "{b:?}"
    );
    t.scaling.max = 2;
    let r = run_with_target(&w, &t);
    assert!(blocking(&r).is_empty(), "{:?}", blocking(&r));
    assert!(kinds(&r, Severity::Warning).contains(&"max-pods".to_string()));
}

/// kubernetes.io, "Volumes", local: a local PersistentVolume's required node affinity ties
/// its pod to one node.
#[test]
fn pods_on_local_volumes_block_unless_their_loss_is_accepted() {
    let mut w = world();
    w.pods.push(
        pod("db", "cache-0", "cache", "old1")
            .owned_by("StatefulSet", "cache")
            .pvc("data-cache-0"),
    );
    w.pods.push(
        pod("db", "pg-0", "pg", "old2")
            .owned_by("StatefulSet", "pg")
            .pvc("data-pg-0"),
    );
    w.volumes = vec![
        crate::model::VolumeView {
            name: "local-pv-1".into(),
            local_path: Some("/mnt/k8s-disks/0".into()),
            nodes: vec!["old1".into()],
            claim: Some(("db".into(), "data-cache-0".into())),
        },
        crate::model::VolumeView {
            name: "pvc-ebs".into(),
            local_path: None,
            nodes: vec![],
            claim: Some(("db".into(), "data-pg-0".into())),
        },
    ];
    let r = run(&w);
    let local: Vec<&Finding> = r.findings.iter().filter(|f| f.kind == "local-pv").collect();
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(local[0].severity, Severity::Blocking);
    assert!(
        local[0]
            .message
            .starts_with("StatefulSet db/cache keeps its data"),
        "{local:?}"
    );
    assert!(
        local[0]
            .message
            .contains("local-pv-1 (claim data-cache-0 of cache-0, /mnt/k8s-disks/0 on old1)"),
        "{local:?}"
    );
    assert!(!r.ok());
    w.policy.accept_risks = vec![crate::request::AcceptedRisk::LocalStorage];
    let r = run(&w);
    assert!(r.ok(), "{:?}", r.findings);
    assert!(kinds(&r, Severity::Warning).contains(&"local-pv".to_string()));
}

#[test]
fn karpenter_is_named_with_what_it_may_do() {
    let mut w = world();
    assert!(!kinds(&run(&w), Severity::Info).contains(&"karpenter".to_string()));
    w.node_pools = Some(vec![
        crate::model::NodePoolView {
            name: "default".into(),
            node_class_group: "karpenter.k8s.aws".into(),
        },
        crate::model::NodePoolView {
            name: "general-purpose".into(),
            node_class_group: "eks.amazonaws.com".into(),
        },
    ]);
    let r = run(&w);
    let k: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.kind == "karpenter")
        .collect();
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].severity, Severity::Info);
    assert!(
        k[0].message
            .contains("default, general-purpose (EKS Auto Mode)"),
        "{k:?}"
    );
    // A surge beyond the desired size is where Karpenter steps in first.
    w.scaling.desired = 0;
    let r = run(&w);
    assert!(kinds(&r, Severity::Warning).contains(&"karpenter".to_string()));
}

#[test]
fn jobs_pods_are_named_with_what_the_drain_does_to_them() {
    let mut w = world();
    w.pods
        .push(pod("a", "etl-x1", "etl", "old1").owned_by("Job", "etl"));
    let mut finished = pod("a", "etl-x0", "etl", "old2").owned_by("Job", "etl");
    finished.phase = crate::model::PodPhase::Succeeded;
    w.pods.push(finished);
    let of = |r: &PreflightReport| -> Vec<Finding> {
        r.findings
            .iter()
            .filter(|f| f.kind == "long-job")
            .cloned()
            .collect()
    };
    // Evicted by default: a warning that their work is lost, naming the running pod only.
    let r = run(&w);
    let f = of(&r);
    assert_eq!(f.len(), 1, "{:?}", r.findings);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].message.starts_with("1 pod(s)"), "{}", f[0].message);
    assert!(f[0].message.contains("a/etl-x1") && !f[0].message.contains("a/etl-x0"));
    assert!(f[0].message.contains("waitToFinish"));
    assert!(r.ok());
    // Left to finish: said, with the wait.
    w.policy.jobs.mode = crate::request::JobMode::WaitToFinish;
    w.policy.jobs.finish_within_seconds = 5400;
    let f = of(&run(&w));
    assert_eq!(f[0].severity, Severity::Info);
    assert!(
        f[0].message.contains("for up to 5400 s"),
        "{}",
        f[0].message
    );
    // No Job pod, no finding.
    let mut w = world();
    w.policy.jobs.mode = crate::request::JobMode::WaitToFinish;
    assert!(of(&run(&w)).is_empty());
}

#[test]
fn a_jobs_selector_that_takes_a_deployments_pods_is_refused() {
    let mut w = world();
    w.policy.jobs.mode = crate::request::JobMode::WaitToFinish;
    w.policy.jobs.selector = Some(LabelSelector::eq([("app", "web")]));
    let r = run(&w);
    let refused: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.kind == "jobs-selector")
        .collect();
    // One finding for the Deployment, not one per pod.
    assert_eq!(refused.len(), 1, "{:?}", r.findings);
    assert_eq!(refused[0].severity, Severity::Blocking);
    assert!(
        refused[0].message.contains("Deployment a/web"),
        "{}",
        refused[0].message
    );
    assert!(!r.ok());
    // A selector for a batch system's own pods is fine.
    w.policy.jobs.selector = Some(LabelSelector::eq([("app", "spark")]));
    assert!(run(&w).ok());
}
