//! A large migration for I6: the twin's generated scale cluster (Deployments of 30 replicas over
//! ten namespaces, every tenth with a PDB), migrated to a new group of the same size. Retire
//! marks every old pod, so it is where a single invocation would do the most work; the run must
//! keep every invocation under a quarter of its function's timeout, by batches and a
//! continuation.

use serde_json::{Value, json};

/// The scenario, as YAML-ready JSON: `pods` pods on `nodes` nodes (110 pods a node at most, as
/// EKS sets maxPods for instances under 30 vCPUs).
pub fn retire_scenario(pods: u32) -> Result<Value, String> {
    let nodes = pods.div_ceil(100).max(3);
    let mut s = serde_json::to_value(ngm_twin::scenario::scale_scenario(nodes, pods))
        .map_err(|e| e.to_string())?;
    s["name"] = json!(format!("retire-{pods}-pods"));
    s["description"] = json!(format!(
        "{pods} pods on {nodes} nodes migrated to a new group: every invocation within budget"
    ));
    // The functions' own work runs in real time while the cluster runs `speed` times faster:
    // at the benchmark's 600x one second of listing 1,000 pods is ten simulated minutes, 600
    // times its cost in production, and the loops' deadlines would measure the test
    // machine's load. At 60x a loaded second is still a simulated minute (harsher than
    // production, not kinder).
    s["cluster"]["speed"] = json!(60.0);
    s["cluster"]["nodeGroups"][0]["maxSize"] = json!(nodes * 2);
    s["migration"] = json!({
        "cluster": {"name": s["cluster"]["name"], "region": s["cluster"]["region"]},
        "source": {"managedNodeGroup": "bulk"},
        "target": {"name": "bulk-v2", "releaseVersion": "1.33.5-20251105",
                   "scaling": {"min": nodes, "max": nodes * 2, "desired": nodes}},
    });
    s["expect"] = json!({
        "outcome": "success",
        "figures": {"slowInvocations": 0, "budgetViolations": 0},
    });
    s["workflow"] = json!({"timeoutSeconds": 3600});
    Ok(s)
}
