use super::*;
use crate::fixtures::{NodeExt, node};
use crate::plan::action::Action;

const EXEC: &str = "exec-1";
const DIGEST: &str = "abc123";

#[test]
fn taint_labels_taints_and_cordons_a_fresh_node() {
    let actions = plan_taint(&[node("n1", "ng-a")], EXEC, DIGEST);
    assert!(actions.contains(&Action::AddNodeTaints {
        node: "n1".into(),
        taints: vec![ngm_taint(DIGEST)]
    }));
    assert!(actions.contains(&Action::SetUnschedulable {
        node: "n1".into(),
        unschedulable: true
    }));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::PatchNodeLabels { labels, .. }
        if labels.get(marks::RETIRING_LABEL) == Some(&Some(DIGEST.to_string()))))
    );
    assert!(actions.iter().any(
        |a| matches!(a, Action::PatchNodeAnnotations { annotations, .. }
        if annotations.contains_key(marks::CORDONED))
    ));
}

#[test]
fn taint_is_a_no_op_on_a_node_already_done() {
    let done = node("n1", "ng-a")
        .label(marks::RETIRING_LABEL, DIGEST)
        .taint(ngm_taint(DIGEST))
        .annotate(marks::EXECUTION, EXEC)
        .annotate(marks::CORDONED, "true")
        .cordoned();
    assert_eq!(plan_taint(&[done], EXEC, DIGEST), vec![]);
}

#[test]
fn cordon_is_a_no_op_on_an_unschedulable_node_and_is_not_claimed() {
    let actions = plan_taint(&[node("n1", "ng-a").cordoned()], EXEC, DIGEST);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SetUnschedulable { .. }))
    );
    assert!(!actions.iter().any(
        |a| matches!(a, Action::PatchNodeAnnotations { annotations, .. }
        if annotations.contains_key(marks::CORDONED))
    ));
}

#[test]
fn cut_traffic_labels_only_nodes_lacking_the_exclusion() {
    let already = node("n1", "ng-a").label(marks::EXCLUDE_FROM_LB_LABEL, "");
    let fresh = node("n2", "ng-a");
    let actions = plan_cut_traffic(&[already, fresh]);
    assert_eq!(actions.len(), 2);
    assert!(actions.iter().all(|a| match a {
        Action::PatchNodeLabels { node, .. } | Action::PatchNodeAnnotations { node, .. } =>
            node == "n2",
        _ => false,
    }));
}

#[test]
fn untaint_undoes_only_what_ngm_did() {
    let ours = node("n1", "ng-a")
        .label(marks::RETIRING_LABEL, DIGEST)
        .label(marks::EXCLUDE_FROM_LB_LABEL, "true")
        .taint(ngm_taint(DIGEST))
        .annotate(marks::EXECUTION, EXEC)
        .annotate(marks::CORDONED, "true")
        .annotate(marks::EXCLUDED_FROM_LB, "true")
        .cordoned();
    // Cordoned and excluded by someone else before ngm: both stay.
    let theirs = node("n2", "ng-a")
        .label(marks::RETIRING_LABEL, DIGEST)
        .label(marks::EXCLUDE_FROM_LB_LABEL, "true")
        .taint(ngm_taint(DIGEST))
        .annotate(marks::EXECUTION, EXEC)
        .cordoned();
    let untouched = node("n3", "ng-b").cordoned();
    let actions = plan_untaint(&[ours, theirs, untouched], EXEC);
    let for_node = |n: &str| -> Vec<&Action> {
        actions
            .iter()
            .filter(|a| match a {
                Action::PatchNodeLabels { node, .. }
                | Action::PatchNodeAnnotations { node, .. }
                | Action::RemoveNodeTaints { node, .. }
                | Action::SetUnschedulable { node, .. } => node == n,
                _ => false,
            })
            .collect()
    };
    assert!(for_node("n1").contains(&&Action::SetUnschedulable {
        node: "n1".into(),
        unschedulable: false
    }));
    assert!(
        for_node("n1")
            .iter()
            .any(|a| matches!(a, Action::PatchNodeLabels { labels, .. }
        if labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL)))
    );
    assert!(
        !for_node("n2")
            .iter()
            .any(|a| matches!(a, Action::SetUnschedulable { .. }))
    );
    assert!(
        !for_node("n2")
            .iter()
            .any(|a| matches!(a, Action::PatchNodeLabels { labels, .. }
        if labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL)))
    );
    assert!(
        for_node("n2")
            .iter()
            .any(|a| matches!(a, Action::RemoveNodeTaints { .. }))
    );
    assert!(for_node("n3").is_empty());
}

#[test]
fn untaint_removes_the_autoscaler_annotation_only_where_ngm_set_it() {
    let ngm_set = node("new1", "ng-b")
        .annotate(marks::EXECUTION, EXEC)
        .annotate(marks::CA_SCALE_DOWN_DISABLED, "true")
        .annotate(marks::SCALE_DOWN_DISABLED_BY_NGM, "true");
    let user_set = node("new2", "ng-b")
        .annotate(marks::EXECUTION, EXEC)
        .annotate(marks::CA_SCALE_DOWN_DISABLED, "true");
    let actions = plan_untaint(&[ngm_set, user_set], EXEC);
    let removes_ca = |n: &str| {
        actions.iter().any(|a| {
            matches!(a, Action::PatchNodeAnnotations { node, annotations }
            if node == n && annotations.contains_key(marks::CA_SCALE_DOWN_DISABLED))
        })
    };
    assert!(removes_ca("new1"));
    assert!(!removes_ca("new2"));
}
