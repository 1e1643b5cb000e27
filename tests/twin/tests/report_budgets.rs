//! I2 in the report: a PDB taken below what it allows is flagged; evictions within the budget
//! and blocked ones are not.

#[path = "eks_support/mod.rs"]
mod eks_support;

use eks_support::*;
use ngm_twin::report::{Recorder, RunParts, ViolationKind};
use ngm_twin::store::Resource;
use serde_json::{Value, json};

fn web_pod(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": "default", "labels": { "app": "web" } },
        "spec": { "nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{ "name": "c", "image": "x" }] },
        "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }] },
    })
}

// Upstream (EKS user guide, "Delete a managed node group"): EKS evicts for 5 minutes, then
// terminates the instance whatever PDBs say. Here minAvailable 1 of 2 pods allows one
// eviction; the other pod is blocked (429) and then killed with its node: a violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_flags_a_pdb_guarded_pod_that_eks_terminated_after_its_drain_timed_out() {
    let h = start().await;
    h.create("ng", 1, 1, 1).send().await.expect("create");
    h.wait_status("ng", "ACTIVE", 30).await;
    let node = h.group_nodes("ng")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for p in ["web-a", "web-b"] {
        h.store
            .create(Resource::Pod, "default", web_pod(p, &node))
            .expect("pod");
    }
    let pdb = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "web" } } },
    });
    h.store
        .create(Resource::PodDisruptionBudget, "default", pdb)
        .expect("pdb");
    h.store.refresh_pdbs(None);

    let recorder = Recorder::start(&h.store).named("delete-before-drain");
    h.eks_client
        .delete_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .send()
        .await
        .expect("delete");
    eventually(30, "the group to be gone", || async {
        h.status("ng").await.is_none().then_some(())
    })
    .await;
    let report = recorder.finish(RunParts::default().with_eks(&h.eks)).await;

    assert!(!report.invariants.budgets_respected, "{}", report.summary());
    assert_eq!(
        report.budget_violations.len(),
        1,
        "{:?}",
        report.budget_violations
    );
    let v = &report.budget_violations[0];
    assert_eq!(
        (v.kind, v.pdb.as_str()),
        (ViolationKind::ForcedTermination, "web")
    );
    // The one eviction the budget allowed is no violation, nor are the blocked ones.
    assert_eq!(report.evictions.allowed, 1);
    assert!(report.evictions.blocked >= 1);
    assert_eq!(
        (report.eks_drains.evicted, report.eks_drains.terminated),
        (1, 1)
    );
    assert!(
        report
            .requests
            .eks
            .get("DeleteNodegroup")
            .is_some_and(|n| *n >= 1)
    );
    assert!(
        report.summary().contains("FAIL I2 budgets respected"),
        "{}",
        report.summary()
    );
    let json: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(json["budgetViolations"][0]["kind"], "forcedTermination");
}
