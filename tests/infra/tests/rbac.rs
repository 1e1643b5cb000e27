//! `infra/kubernetes/rbac.yaml` grants the ngm group exactly the verbs issue 5 lists, and binds
//! them to that group only.

use std::collections::BTreeSet;

use ngm_infra_tests::read;
use serde::Deserialize as _;
use serde_yaml::Value;

/// (API group, resource, verb) as issue 5 lists them, and the pre-flight's reads since.
const GRANTS: &[(&str, &[&str], &[&str])] = &[
    ("", &["nodes"], &["get", "list", "patch"]),
    ("", &["pods"], &["get", "list", "patch", "delete"]),
    ("", &["pods/eviction"], &["create"]),
    (
        "apps",
        &["deployments", "statefulsets"],
        &["get", "list", "patch"],
    ),
    (
        "apps",
        &["deployments/scale", "statefulsets/scale"],
        &["get", "patch"],
    ),
    (
        "autoscaling",
        &["horizontalpodautoscalers"],
        &["get", "list", "patch"],
    ),
    ("apps", &["replicasets", "daemonsets"], &["get", "list"]),
    ("policy", &["poddisruptionbudgets"], &["get", "list"]),
    ("", &["services"], &["get", "list"]),
    ("discovery.k8s.io", &["endpointslices"], &["get", "list"]),
    ("", &["events"], &["create"]),
    ("", &["persistentvolumes"], &["get", "list"]),
    ("elbv2.k8s.aws", &["targetgroupbindings"], &["get", "list"]),
    ("karpenter.sh", &["nodepools"], &["get", "list"]),
];

fn documents() -> Vec<Value> {
    let text = read("infra/kubernetes/rbac.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("rbac.yaml: {e}")))
        .collect()
}

fn of_kind(docs: &[Value], kind: &str) -> Vec<Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .cloned()
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

type Grant = (String, String, String);

fn granted(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().into_iter().flatten() {
        for key in ["resourceNames", "nonResourceURLs"] {
            assert!(rule[key].is_null(), "a rule uses {key}: {rule:?}");
        }
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

fn wanted() -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in GRANTS {
        for r in *resources {
            for v in *verbs {
                out.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_cluster_role_grants_exactly_the_verbs_ngm_uses() {
    let docs = documents();
    let roles = of_kind(&docs, "ClusterRole");
    assert_eq!(roles.len(), 1, "one ClusterRole");
    assert!(of_kind(&docs, "Role").is_empty(), "no namespaced Roles");
    let got = granted(&roles[0]);
    let want = wanted();
    for (g, r, v) in &got {
        assert!(
            !g.contains('*') && !r.contains('*') && !v.contains('*'),
            "wildcard grant {g}/{r}:{v}"
        );
    }
    let extra: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(extra.is_empty(), "granted beyond the list: {extra:?}");
    assert!(missing.is_empty(), "not granted: {missing:?}");
}

#[test]
fn the_binding_gives_that_role_to_the_ngm_group_only() {
    let docs = documents();
    let role = &of_kind(&docs, "ClusterRole")[0];
    let bindings = of_kind(&docs, "ClusterRoleBinding");
    assert_eq!(bindings.len(), 1, "one ClusterRoleBinding");
    let b = &bindings[0];
    assert_eq!(b["roleRef"]["kind"], "ClusterRole");
    assert_eq!(b["roleRef"]["name"], role["metadata"]["name"]);
    let subjects = b["subjects"].as_sequence().cloned().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0]["kind"], "Group");
    assert_eq!(subjects[0]["name"], "ngm-migrator");
}
