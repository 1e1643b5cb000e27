//! Steps 4 and 7 on the old nodes: taint and cordon them, then cut them from load balancers.
//! Every change is marked so the rollback undoes exactly what ngm did and nothing else.

use crate::marks;
use crate::model::{NodeView, Taint, TaintEffect};
use crate::plan::action::{Action, remove, set};

/// The NoSchedule taint ngm puts on old nodes.
pub fn ngm_taint(execution_digest: &str) -> Taint {
    Taint {
        key: marks::TAINT_KEY.to_string(),
        value: Some(execution_digest.to_string()),
        effect: TaintEffect::NoSchedule,
    }
}

fn has_ngm_taint(node: &NodeView) -> bool {
    node.taints
        .iter()
        .any(|t| t.key == marks::TAINT_KEY && t.effect == TaintEffect::NoSchedule)
}

/// Label, taint and cordon each old node; a node already done is a no-op.
pub fn plan_taint(old_nodes: &[NodeView], execution: &str, digest: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for node in old_nodes {
        let name = node.name.clone();
        let mut annotations = Vec::new();
        if node.labels.get(marks::RETIRING_LABEL).map(String::as_str) != Some(digest) {
            actions.push(Action::PatchNodeLabels {
                node: name.clone(),
                labels: set(&[(marks::RETIRING_LABEL, digest.to_string())]),
            });
        }
        if !has_ngm_taint(node) {
            actions.push(Action::AddNodeTaints {
                node: name.clone(),
                taints: vec![ngm_taint(digest)],
            });
        }
        // Cordon as kubectl drain does; the marker records that ngm, not someone else, did it.
        if !node.unschedulable {
            annotations.push((marks::CORDONED, "true".to_string()));
        }
        if node.annotations.get(marks::EXECUTION).map(String::as_str) != Some(execution) {
            annotations.push((marks::EXECUTION, execution.to_string()));
        }
        if !annotations.is_empty() {
            actions.push(Action::PatchNodeAnnotations {
                node: name.clone(),
                annotations: set(&annotations),
            });
        }
        if !node.unschedulable {
            actions.push(Action::SetUnschedulable {
                node: name,
                unschedulable: true,
            });
        }
    }
    actions
}

/// Label each retiring node out of external load balancers.
pub fn plan_cut_traffic(retiring_nodes: &[NodeView]) -> Vec<Action> {
    let mut actions = Vec::new();
    for node in retiring_nodes {
        if node.labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL) {
            continue;
        }
        // Marker first: a crash between the two leaves a marker the rollback can act on.
        actions.push(Action::PatchNodeAnnotations {
            node: node.name.clone(),
            annotations: set(&[(marks::EXCLUDED_FROM_LB, "true".to_string())]),
        });
        actions.push(Action::PatchNodeLabels {
            node: node.name.clone(),
            labels: set(&[(marks::EXCLUDE_FROM_LB_LABEL, "true".to_string())]),
        });
    }
    actions
}

/// Undo everything ngm did to surviving nodes: [`plan_taint`], [`plan_cut_traffic`], and the
/// autoscaler annotation the freeze put on new nodes.
pub fn plan_untaint(nodes: &[NodeView], execution: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for node in nodes {
        let ours = node.annotations.get(marks::EXECUTION).map(String::as_str) == Some(execution)
            || node.labels.contains_key(marks::RETIRING_LABEL);
        if !ours {
            continue;
        }
        let taints: Vec<Taint> = node
            .taints
            .iter()
            .filter(|t| t.key == marks::TAINT_KEY)
            .cloned()
            .collect();
        if !taints.is_empty() {
            actions.push(Action::RemoveNodeTaints {
                node: node.name.clone(),
                taints,
            });
        }
        let mut labels = vec![];
        if node.labels.contains_key(marks::RETIRING_LABEL) {
            labels.push(marks::RETIRING_LABEL);
        }
        if node.annotations.contains_key(marks::EXCLUDED_FROM_LB)
            && node.labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL)
        {
            labels.push(marks::EXCLUDE_FROM_LB_LABEL);
        }
        if !labels.is_empty() {
            actions.push(Action::PatchNodeLabels {
                node: node.name.clone(),
                labels: remove(&labels),
            });
        }
        if node.annotations.contains_key(marks::CORDONED) && node.unschedulable {
            actions.push(Action::SetUnschedulable {
                node: node.name.clone(),
                unschedulable: false,
            });
        }
        let mut annotations: Vec<&str> = [
            marks::CORDONED,
            marks::EXCLUDED_FROM_LB,
            marks::EXECUTION,
            marks::SCALE_DOWN_DISABLED_BY_NGM,
        ]
        .into_iter()
        .filter(|k| node.annotations.contains_key(*k))
        .collect();
        // The autoscaler annotation is ngm's to remove only when ngm put it there.
        if node
            .annotations
            .contains_key(marks::SCALE_DOWN_DISABLED_BY_NGM)
        {
            annotations.push(marks::CA_SCALE_DOWN_DISABLED);
        }
        if !annotations.is_empty() {
            actions.push(Action::PatchNodeAnnotations {
                node: node.name.clone(),
                annotations: remove(&annotations),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests;
