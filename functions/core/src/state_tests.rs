//! The state envelope: size on a large cluster, round trip, committed schema.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::json;

use crate::fixtures::{deployment, node, pod, replicaset, request_with_target};
use crate::model::{PodView, Resources, Scaling, Timestamp};
use crate::plan::preflight::{PreflightInputs, affected_deployments, plan_preflight};
use crate::plan::{Action, nodes, surge};
use crate::state::{ExecutionRef, MigrationState, NewGroupInfo, Phase, state_schema};

const LIMIT: usize = 64 * 1024;

#[test]
fn state_stays_under_64_kib_for_1000_nodes_and_5000_deployments() {
    let req = request_with_target(json!({"releaseVersion": "1.33.0-20250704"}));
    let execution = ExecutionRef {
        name: "ng-a-to-ng-a-1f2e3d-20261122T040000Z".into(),
        arn: Some("arn:aws:states:eu-west-1:111122223333:execution:ngm:ng-a-to-ng-a-1f2e3d".into()),
        started_at: Timestamp(1_795_000_000),
    };
    let digest = execution.digest();
    let old_nodes: Vec<_> = (0..1000)
        .map(|i| {
            node(
                &format!("ip-10-0-{}-{}.eu-west-1.compute.internal", i / 250, i % 250),
                "ng-a",
            )
        })
        .collect();
    let workloads: Vec<_> = (0..5000)
        .map(|i| deployment(&format!("team-{}", i % 50), &format!("svc-{i:04}"), 6))
        .collect();
    let replicasets: Vec<_> = workloads
        .iter()
        .map(|w| replicaset(&w.namespace, &w.name))
        .collect();
    let pods: Vec<PodView> = workloads
        .iter()
        .enumerate()
        .flat_map(|(i, w)| {
            (0..6).map(move |k| {
                pod(
                    &w.namespace,
                    &format!("{}-{k}", w.name),
                    &w.name,
                    &format!(
                        "ip-10-0-{}-{}.eu-west-1.compute.internal",
                        (i * 6 + k) % 1000 / 250,
                        (i * 6 + k) % 250
                    ),
                )
            })
        })
        .collect();
    assert_eq!(pods.len(), 30_000);

    let mut state = MigrationState::new(execution.clone(), req.clone());
    let policy = &req.policy;
    let zones: BTreeSet<String> = ["eu-west-1a".to_string()].into();
    let report = plan_preflight(PreflightInputs {
        policy,
        old_nodes: &old_nodes,
        old_pods: &pods,
        replicasets: &replicasets,
        workloads: &workloads,
        daemonsets: &[],
        pdbs: &[],
        load_balancers: &[],
        services: &[],
        ip_services: &BTreeSet::new(),
        new_node_allocatable: Resources {
            cpu_millis: 16_000,
            memory_bytes: 64 << 30,
        },
        new_node: None,
        old_group_labels: &crate::model::Labels::new(),
        volumes: &[],
        node_pools: None,
        new_scaling: Scaling {
            min: 1000,
            max: 1000,
            desired: 1000,
        },
        new_zones: &zones,
    });
    state.preflight = Some(report.summary(20));
    let affected = affected_deployments(&pods, &replicasets, policy);
    let surge_actions = surge::plan_surge(&workloads, &affected, policy, &execution.name);
    let taint_actions = nodes::plan_taint(&old_nodes, &execution.name, &digest);
    state.counts.record(&surge_actions);
    state.counts.record(&taint_actions);
    state.counts.old_nodes = 1000;
    state.counts.pods_marked = 30_000;
    state.phase = Phase::Surged;
    state.new_group = Some(NewGroupInfo {
        name: "ng-a-1f2e3d".into(),
        created_by_ngm: true,
        arn: None,
        launch_template_version: Some(7),
    });
    state.originals.old_group_scaling = Some(Scaling {
        min: 900,
        max: 1200,
        desired: 1000,
    });
    for k in 0..3 {
        state
            .originals
            .suspended_processes
            .insert(format!("eks-ng-a-{k}"), vec!["AZRebalance".into()]);
    }
    state.marks_digest = Some(crate::hex_of(affected.iter().map(|w| w.name.as_str())));

    assert_eq!(state.counts.workloads_surged, 5000);
    assert_eq!(state.counts.nodes_tainted, 1000);
    let text = serde_json::to_string(&state).unwrap_or_default();
    assert!(text.len() < LIMIT, "state is {} bytes", text.len());
    // Nodes are found again by label, never listed in the state.
    assert!(
        !text.contains("compute.internal"),
        "node names leaked into the state"
    );
    assert!(
        !text.contains("svc-0001"),
        "workload names leaked into the state"
    );
}

#[test]
fn state_round_trips_and_rejects_unknown_fields() {
    let req = request_with_target(json!({"releaseVersion": "1.33.0-20250704"}));
    let state = MigrationState::new(
        ExecutionRef {
            name: "e".into(),
            arn: None,
            started_at: Timestamp(1),
        },
        req,
    );
    let text = serde_json::to_string(&state).unwrap_or_default();
    let back: MigrationState = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, state);
    assert!(text.contains("\"schemaVersion\":1"));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["surprise"] = json!(1);
    assert!(serde_json::from_value::<MigrationState>(v).is_err());
}

#[test]
fn committed_state_schema_matches_the_types() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../statemachine/state.schema.json");
    let generated = state_schema();
    if std::env::var_os("NGM_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let committed: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        committed == generated,
        "{} is stale. Regenerate it with `NGM_BLESS=1 cargo test -p ngm-core committed_state_schema`",
        path.display()
    );
}

#[test]
fn counts_record_what_each_action_did() {
    use crate::fixtures::deployment;
    use crate::ports::HpaPatch;
    let w = deployment("a", "web", 3).workload_ref();
    let mut counts = crate::state::Counts::default();
    counts.record(&[
        Action::ScaleWorkload {
            workload: w.clone(),
            from: 3,
            to: 6,
        },
        Action::ScaleWorkload {
            workload: w,
            from: 6,
            to: 3,
        },
        Action::PatchHpa {
            namespace: "a".into(),
            name: "h".into(),
            patch: HpaPatch {
                min_replicas: Some(Some(6)),
                max_replicas: None,
                annotations: crate::plan::action::set(&[("k", "v".into())]),
            },
        },
        Action::PatchHpa {
            namespace: "a".into(),
            name: "h".into(),
            patch: HpaPatch {
                min_replicas: Some(None),
                max_replicas: None,
                annotations: crate::plan::action::remove(&["k"]),
            },
        },
        Action::EvictPod {
            namespace: "a".into(),
            name: "p".into(),
            uid: "u".into(),
        },
    ]);
    assert_eq!(
        (
            counts.workloads_surged,
            counts.workloads_retired,
            counts.hpas_frozen,
            counts.hpas_restored,
            counts.pods_evicted
        ),
        (1, 1, 1, 1, 1)
    );
}
