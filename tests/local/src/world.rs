//! The cluster side of the world, read from the twin before and after a run for I3/I4: where
//! each pod runs and for which workload, which groups have nodes, and the marks ngm left.

use std::collections::{BTreeMap, BTreeSet};

use ngm_twin::scenario::{NodeGroupKind, Scenario};
use ngm_twin::store::Resource;
use ngm_twin::twin::Twin;
use serde::Serialize;
use serde_json::Value;

/// Where one pod runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPlace {
    /// The node group of its node; empty when it is not on a node.
    pub group: String,
    /// `Kind namespace/name` of its controller (a ReplicaSet's Deployment), or the pod itself.
    pub workload: String,
}

/// The cluster at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorldState {
    /// Nodes still in the source group.
    pub source_nodes: Vec<String>,
    /// Whether EKS still has the source group (managed sources only).
    pub source_group_exists: bool,
    /// Every group that has nodes.
    pub groups: BTreeSet<String>,
    /// Non-DaemonSet pods by `namespace/name`.
    pub pods: BTreeMap<String, PodPlace>,
    /// Labels, annotations and taints with ngm's prefix left on nodes and pods.
    pub marks_left: Vec<String>,
}

const ASG_ANNOTATION: &str = "twin.ngm.io/asg";

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn node_group(node: &Value) -> String {
    let label = node
        .pointer("/metadata/labels/eks.amazonaws.com~1nodegroup")
        .and_then(Value::as_str);
    let asg = node
        .pointer(&format!(
            "/metadata/annotations/{}",
            ASG_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    label.or(asg).unwrap_or_default().to_string()
}

/// ngm's labels, annotations and taints on an object.
pub fn marks(kind: &str, obj: &Value, out: &mut Vec<String>) {
    let name = text(obj, "/metadata/name");
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = obj.pointer(&format!("/metadata/{field}")) {
            for k in m.keys() {
                if k.starts_with("ngm.io/") || (k.contains(".ngm.io/") && !k.starts_with("twin.")) {
                    out.push(format!("{kind} {name}: {field} {k}"));
                }
            }
        }
    }
    if let Some(Value::Array(taints)) = obj.pointer("/spec/taints") {
        for t in taints {
            let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
            if key.starts_with("ngm.io/") {
                out.push(format!("{kind} {name}: taint {key}"));
            }
        }
    }
}

/// The source group the request names.
pub fn source_group(scenario: &Scenario) -> String {
    scenario
        .migration
        .as_ref()
        .and_then(|m| {
            m.pointer("/source/managedNodeGroup")
                .or_else(|| m.pointer("/source/autoScalingGroup"))
        })
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Reads the cluster from the twin.
pub fn read(twin: &Twin, scenario: &Scenario) -> WorldState {
    let store = twin.store();
    let source = source_group(scenario);
    let mut w = WorldState::default();
    let mut node_groups = BTreeMap::new();
    for node in store.list_all(Resource::Node, None) {
        let name = text(&node, "/metadata/name").to_string();
        let group = node_group(&node);
        if group == source {
            w.source_nodes.push(name.clone());
        }
        marks("node", &node, &mut w.marks_left);
        w.groups.insert(group.clone());
        node_groups.insert(name, group);
    }
    let replica_sets: BTreeMap<String, String> = store
        .list_all(Resource::ReplicaSet, None)
        .iter()
        .map(|rs| {
            let ns = text(rs, "/metadata/namespace");
            let owner = text(rs, "/metadata/ownerReferences/0/name");
            let name = text(rs, "/metadata/name");
            let workload = if owner.is_empty() {
                format!("ReplicaSet {ns}/{name}")
            } else {
                format!("Deployment {ns}/{owner}")
            };
            (format!("{ns}/{name}"), workload)
        })
        .collect();
    for pod in store.list_all(Resource::Pod, None) {
        marks("pod", &pod, &mut w.marks_left);
        let kind = text(&pod, "/metadata/ownerReferences/0/kind");
        if kind == "DaemonSet" {
            continue;
        }
        let ns = text(&pod, "/metadata/namespace");
        let name = text(&pod, "/metadata/name");
        let owner = text(&pod, "/metadata/ownerReferences/0/name");
        let workload = match kind {
            "" => format!("Pod {ns}/{name}"),
            "ReplicaSet" => replica_sets
                .get(&format!("{ns}/{owner}"))
                .cloned()
                .unwrap_or_else(|| format!("ReplicaSet {ns}/{owner}")),
            k => format!("{k} {ns}/{owner}"),
        };
        let node = text(&pod, "/spec/nodeName");
        w.pods.insert(
            format!("{ns}/{name}"),
            PodPlace {
                group: node_groups.get(node).cloned().unwrap_or_default(),
                workload,
            },
        );
    }
    let managed = scenario
        .cluster
        .node_groups
        .iter()
        .any(|g| g.name == source && g.kind == NodeGroupKind::Managed);
    w.source_group_exists = managed && twin.eks().and_then(|e| e.nodegroup(&source)).is_some();
    w
}

/// I3 on the cluster side, for a finished migration: the old group is gone, and only the
/// workloads that ran on it moved, each to the new group(s) or a group it already used. Pods of
/// other workloads, on other groups, are none of its business and must stay where they were.
pub fn migrated_problems(source: &str, before: &WorldState, after: &WorldState) -> Vec<String> {
    let mut out = Vec::new();
    if !after.source_nodes.is_empty() {
        out.push(format!(
            "old group still has nodes {:?}",
            after.source_nodes
        ));
    }
    if after.source_group_exists {
        out.push("the old node group still exists".into());
    }
    let new_groups: BTreeSet<&String> = after.groups.difference(&before.groups).collect();
    let mut used: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in before.pods.values() {
        used.entry(p.workload.as_str())
            .or_default()
            .insert(p.group.as_str());
    }
    for (pod, p) in &after.pods {
        let before_groups = used.get(p.workload.as_str());
        let migrated = before_groups.is_some_and(|g| g.contains(source));
        if p.group.is_empty() {
            out.push(format!("pod {pod} ({}) runs on no node", p.workload));
        } else if migrated {
            let allowed = new_groups.contains(&p.group)
                || before_groups.is_some_and(|g| p.group != source && g.contains(p.group.as_str()));
            if !allowed {
                out.push(format!(
                    "pod {pod} ({}) runs on group {:?}, not on the new group {:?}",
                    p.workload, p.group, new_groups
                ));
            }
        } else if let Some(g) = before_groups
            && !g.contains(p.group.as_str())
        {
            out.push(format!(
                "pod {pod} of {}, which the migration did not concern, moved to group {:?}",
                p.workload, p.group
            ));
        }
    }
    out
}

/// I4 on the cluster side: the old group is still there with its nodes.
pub fn as_before_problems(after: &WorldState) -> Vec<String> {
    if after.source_nodes.is_empty() {
        vec!["the old group has no nodes left".into()]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(group: &str, workload: &str) -> PodPlace {
        PodPlace {
            group: group.into(),
            workload: workload.into(),
        }
    }

    /// `web` on the old group, `batch` on an untouched group `other`.
    fn before() -> WorldState {
        WorldState {
            source_nodes: vec!["old-1".into()],
            source_group_exists: true,
            groups: BTreeSet::from(["old".into(), "other".into()]),
            pods: BTreeMap::from([
                ("apps/web-1".into(), place("old", "Deployment apps/web")),
                (
                    "jobs/batch-1".into(),
                    place("other", "Deployment jobs/batch"),
                ),
            ]),
            marks_left: Vec::new(),
        }
    }

    fn after() -> WorldState {
        WorldState {
            source_nodes: Vec::new(),
            source_group_exists: false,
            groups: BTreeSet::from(["new".into(), "other".into()]),
            pods: BTreeMap::from([
                ("apps/web-2".into(), place("new", "Deployment apps/web")),
                (
                    "jobs/batch-1".into(),
                    place("other", "Deployment jobs/batch"),
                ),
            ]),
            marks_left: Vec::new(),
        }
    }

    #[test]
    fn a_second_untouched_group_passes() {
        assert_eq!(
            migrated_problems("old", &before(), &after()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_migrated_pod_on_an_old_or_foreign_group_fails() {
        let mut a = after();
        a.pods
            .insert("apps/web-3".into(), place("other", "Deployment apps/web"));
        let p = migrated_problems("old", &before(), &a);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("apps/web-3"), "{p:?}");
    }

    #[test]
    fn an_untouched_workload_that_moved_fails() {
        let mut a = after();
        a.pods
            .insert("jobs/batch-1".into(), place("new", "Deployment jobs/batch"));
        let p = migrated_problems("old", &before(), &a);
        assert!(p[0].contains("did not concern"), "{p:?}");
    }

    #[test]
    fn old_nodes_an_old_group_or_a_pending_pod_fail() {
        let mut a = after();
        a.source_nodes = vec!["old-1".into()];
        a.source_group_exists = true;
        a.pods
            .insert("apps/web-4".into(), place("", "Deployment apps/web"));
        assert_eq!(migrated_problems("old", &before(), &a).len(), 3);
    }

    #[test]
    fn a_rollback_needs_the_old_nodes() {
        assert!(as_before_problems(&before()).is_empty());
        assert_eq!(as_before_problems(&after()).len(), 1);
    }
}
