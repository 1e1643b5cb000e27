//! The AWS side of the world, read before and after a run for I3/I4: every Auto Scaling group
//! (scaling, tags, suspended processes, load balancers and target groups attached), every EKS
//! managed node group (status, scaling, labels, taints, tags) and every lock item.
//!
//! The runner reads moto with its own clients (their user agent carries no `app/ngm-local`, so
//! moto does not count them as the functions' calls) and EKS from the twin's control plane
//! in process (so the twin's EKS counters stay the functions' alone).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One Auto Scaling group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupState {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub tags: BTreeMap<String, String>,
    pub suspended_processes: BTreeSet<String>,
    pub load_balancers: BTreeSet<String>,
    pub target_groups: BTreeSet<String>,
    /// Traffic sources attached as such (AttachTrafficSources), not through the legacy calls
    /// that `load_balancers` and `target_groups` list: `type:identifier`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub traffic_sources: BTreeSet<String>,
}

/// One EKS managed node group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodegroupState {
    pub status: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub labels: BTreeMap<String, String>,
    pub taints: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
    /// The Auto Scaling group behind it.
    pub asg: String,
}

/// The AWS side at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsWorld {
    /// By Auto Scaling group name.
    pub groups: BTreeMap<String, GroupState>,
    /// By node group name.
    pub nodegroups: BTreeMap<String, NodegroupState>,
    /// Lock items by key: every attribute but the lease times, `name=value` sorted.
    pub locks: BTreeMap<String, BTreeMap<String, String>>,
}

/// The EKS tag on the Auto Scaling group of a managed node group.
const EKS_NODEGROUP_TAG: &str = "eks:nodegroup-name";
/// Tags ngm leaves on a group it created, by design: who created it and what it replaced.
const KEPT_NGM_TAGS: &[&str] = &["ngm.io/created-by", "ngm.io/migrated-from"];
/// Lock attributes that move with every renewal and say nothing about who holds the lock.
const VOLATILE_LOCK_ATTRIBUTES: &[&str] = &["leaseUntil", "acquiredAt", "state", "renewedAt"];

/// Where to read.
pub struct Source<'a> {
    pub moto_url: &'a str,
    pub region: &'a str,
    pub eks: Option<&'a ngm_twin::eks::Eks>,
    pub lock_table: &'a str,
}

fn conf(moto_url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(moto_url)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("runner", "runner", None, None, "ngm-local"),
            ),
        )
        .build()
}

/// Reads the AWS side now.
pub async fn read(src: &Source<'_>) -> Result<AwsWorld, String> {
    let conf = conf(src.moto_url, src.region);
    let asg = aws_sdk_autoscaling::Client::new(&conf);
    let mut world = AwsWorld::default();
    let mut pages = asg.describe_auto_scaling_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "DescribeAutoScalingGroups: {}",
                aws_sdk_autoscaling::error::DisplayErrorContext(e)
            )
        })?;
        for g in page.auto_scaling_groups() {
            let state = GroupState {
                min: g.min_size().unwrap_or_default(),
                max: g.max_size().unwrap_or_default(),
                desired: g.desired_capacity().unwrap_or_default(),
                tags: g
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                suspended_processes: g
                    .suspended_processes()
                    .iter()
                    .filter_map(|p| p.process_name().map(str::to_string))
                    .collect(),
                load_balancers: g.load_balancer_names().iter().cloned().collect(),
                target_groups: g.target_group_arns().iter().cloned().collect(),
                traffic_sources: g
                    .traffic_sources()
                    .iter()
                    .filter_map(|t| {
                        let id = t.identifier()?;
                        let legacy = g.load_balancer_names().iter().any(|n| n == id)
                            || g.target_group_arns().iter().any(|a| a == id);
                        (!legacy).then(|| format!("{}:{id}", t.r#type().unwrap_or_default()))
                    })
                    .collect(),
            };
            world.groups.insert(
                g.auto_scaling_group_name().unwrap_or_default().to_string(),
                state,
            );
        }
    }
    if let Some(eks) = src.eks {
        let names: BTreeSet<String> = world
            .groups
            .values()
            .filter_map(|g| g.tags.get(EKS_NODEGROUP_TAG).cloned())
            .collect();
        for name in names {
            if let Some(ng) = eks.nodegroup(&name) {
                world.nodegroups.insert(name, nodegroup_state(&ng));
            }
        }
    }
    world.locks = read_locks(&conf, src.lock_table).await?;
    Ok(world)
}

/// Adds the named node groups the twin still knows (a group being deleted may have lost its
/// Auto Scaling group already).
pub fn add_nodegroups<'a>(
    world: &mut AwsWorld,
    eks: Option<&ngm_twin::eks::Eks>,
    names: impl IntoIterator<Item = &'a String>,
) {
    let Some(eks) = eks else { return };
    for name in names {
        if !world.nodegroups.contains_key(name)
            && let Some(ng) = eks.nodegroup(name)
        {
            world.nodegroups.insert(name.clone(), nodegroup_state(&ng));
        }
    }
}

fn nodegroup_state(ng: &ngm_twin::eks::Nodegroup) -> NodegroupState {
    let s = &ng.spec;
    NodegroupState {
        status: ng.status.as_str().to_string(),
        min: s.scaling.min_size,
        max: s.scaling.max_size,
        desired: s.scaling.desired_size,
        labels: s.labels.clone(),
        taints: s
            .taints
            .iter()
            .map(|t| serde_json::to_string(t).unwrap_or_default())
            .collect(),
        tags: s.tags.clone(),
        asg: ng.asg_name.clone(),
    }
}

async fn read_locks(
    conf: &aws_config::SdkConfig,
    table: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let ddb = aws_sdk_dynamodb::Client::new(conf);
    let mut out = BTreeMap::new();
    let mut pages = ddb.scan().table_name(table).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "Scan {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?;
        for item in page.items() {
            let text = |v: &AttributeValue| match v {
                AttributeValue::S(s) => s.clone(),
                AttributeValue::N(n) => n.clone(),
                other => format!("{other:?}"),
            };
            let key = item.get("pk").map(text).unwrap_or_default();
            let attrs = item
                .iter()
                .filter(|(k, _)| {
                    k.as_str() != "pk" && !VOLATILE_LOCK_ATTRIBUTES.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), text(v)))
                .collect();
            out.insert(key, attrs);
        }
    }
    Ok(out)
}

/// What the run was meant to leave on the AWS side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promise {
    /// I4: everything as before; the new group gone unless the policy keeps it.
    AsBefore { keep_new_group: bool },
    /// I3: the source group gone, the new group in its place, everything else as before.
    Migrated,
}

/// The source group of the migration, as the request names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceGroup {
    Managed(String),
    SelfManaged(String),
}

fn diff_group(name: &str, a: &GroupState, b: &GroupState, out: &mut Vec<String>) {
    if (a.min, a.max, a.desired) != (b.min, b.max, b.desired) {
        out.push(format!(
            "Auto Scaling group {name}: min/max/desired {}/{}/{} → {}/{}/{}",
            a.min, a.max, a.desired, b.min, b.max, b.desired
        ));
    }
    if a.tags != b.tags {
        out.push(format!(
            "Auto Scaling group {name}: tags {}",
            map_diff(&a.tags, &b.tags)
        ));
    }
    if a.suspended_processes != b.suspended_processes {
        out.push(format!(
            "Auto Scaling group {name}: suspended processes {:?} → {:?}",
            a.suspended_processes, b.suspended_processes
        ));
    }
    if a.load_balancers != b.load_balancers || a.target_groups != b.target_groups {
        out.push(format!(
            "Auto Scaling group {name}: load balancers {:?} and target groups {:?} → {:?} and {:?}",
            a.load_balancers, a.target_groups, b.load_balancers, b.target_groups
        ));
    }
    if a.traffic_sources != b.traffic_sources {
        out.push(format!(
            "Auto Scaling group {name}: traffic sources {:?} → {:?}",
            a.traffic_sources, b.traffic_sources
        ));
    }
}

fn diff_nodegroup(name: &str, a: &NodegroupState, b: &NodegroupState, out: &mut Vec<String>) {
    if b.status != "ACTIVE" {
        out.push(format!("node group {name} is {}", b.status));
    }
    if (a.min, a.max, a.desired) != (b.min, b.max, b.desired) {
        out.push(format!(
            "node group {name}: min/max/desired {}/{}/{} → {}/{}/{}",
            a.min, a.max, a.desired, b.min, b.max, b.desired
        ));
    }
    if a.labels != b.labels {
        out.push(format!(
            "node group {name}: labels {}",
            map_diff(&a.labels, &b.labels)
        ));
    }
    if a.taints != b.taints {
        out.push(format!(
            "node group {name}: taints {:?} → {:?}",
            a.taints, b.taints
        ));
    }
    if a.tags != b.tags {
        out.push(format!(
            "node group {name}: tags {}",
            map_diff(&a.tags, &b.tags)
        ));
    }
}

fn map_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => parts.push(format!("-{k}={v}")),
            Some(w) if w != v => parts.push(format!("{k}: {v} → {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            parts.push(format!("+{k}={v}"));
        }
    }
    parts.join(", ")
}

/// Every way `after` breaks what the run promised, against `before`.
pub fn problems(
    promise: Promise,
    source: &SourceGroup,
    before: &AwsWorld,
    after: &AwsWorld,
) -> Vec<String> {
    let mut out = Vec::new();
    let source_asg = match source {
        SourceGroup::Managed(ng) => before.nodegroups.get(ng).map(|n| n.asg.clone()),
        SourceGroup::SelfManaged(asg) => Some(asg.clone()),
    };
    let source_ng = match source {
        SourceGroup::Managed(ng) => Some(ng.clone()),
        SourceGroup::SelfManaged(_) => None,
    };
    let new_groups: Vec<&String> = after
        .groups
        .keys()
        .filter(|g| !before.groups.contains_key(*g))
        .collect();
    let new_nodegroups: Vec<&String> = after
        .nodegroups
        .keys()
        .filter(|g| !before.nodegroups.contains_key(*g))
        .collect();
    let migrated = promise == Promise::Migrated;
    for (name, a) in &before.groups {
        let is_source = source_asg.as_deref() == Some(name.as_str());
        match after.groups.get(name) {
            Some(_) if migrated && is_source => {
                out.push(format!("the old Auto Scaling group {name} still exists"));
            }
            Some(b) => diff_group(name, a, b, &mut out),
            None if migrated && is_source => {}
            None => out.push(format!("Auto Scaling group {name} is gone")),
        }
    }
    for (name, a) in &before.nodegroups {
        let is_source = source_ng.as_deref() == Some(name.as_str());
        match after.nodegroups.get(name) {
            Some(_) if migrated && is_source => {
                out.push(format!("the old node group {name} still exists"));
            }
            Some(b) => diff_nodegroup(name, a, b, &mut out),
            None if migrated && is_source => {}
            None => out.push(format!("node group {name} is gone")),
        }
    }
    match promise {
        Promise::AsBefore { keep_new_group } => {
            if !keep_new_group {
                for g in &new_groups {
                    out.push(format!("left behind: Auto Scaling group {g}"));
                }
                for g in &new_nodegroups {
                    out.push(format!("left behind: node group {g}"));
                }
            }
        }
        Promise::Migrated => {
            if new_groups.is_empty() {
                out.push("no new Auto Scaling group took the old one's place".into());
            }
            let old = source_asg.as_ref().and_then(|s| before.groups.get(s));
            // The operator's own tags on the old group (`ngm.io/auto-update`...) go with it.
            let mut source_tags: BTreeMap<String, String> =
                old.map(|g| g.tags.clone()).unwrap_or_default();
            if let Some(ng) = source_ng.as_ref().and_then(|s| before.nodegroups.get(s)) {
                source_tags.extend(ng.tags.clone());
            }
            let left = |k: &String, v: &String| {
                k.starts_with("ngm.io/")
                    && !KEPT_NGM_TAGS.contains(&k.as_str())
                    && source_tags.get(k) != Some(v)
            };
            for g in &new_groups {
                let b = &after.groups[*g];
                if !b.suspended_processes.is_empty() {
                    out.push(format!(
                        "new Auto Scaling group {g}: processes left suspended {:?}",
                        b.suspended_processes
                    ));
                }
                for (k, v) in &b.tags {
                    if left(k, v) {
                        out.push(format!(
                            "new Auto Scaling group {g}: tag {k}={v} left behind"
                        ));
                    }
                }
                if let Some(old) = old {
                    let lbs: Vec<&String> =
                        old.load_balancers.difference(&b.load_balancers).collect();
                    let tgs: Vec<&String> =
                        old.target_groups.difference(&b.target_groups).collect();
                    if !lbs.is_empty() || !tgs.is_empty() {
                        out.push(format!(
                            "new Auto Scaling group {g}: not attached to {lbs:?} {tgs:?} as the old one was"
                        ));
                    }
                    // Attached the way the old one was: a traffic source as a traffic source.
                    let sources: Vec<&String> =
                        old.traffic_sources.difference(&b.traffic_sources).collect();
                    if !sources.is_empty() {
                        out.push(format!(
                            "new Auto Scaling group {g}: not attached to traffic sources {sources:?} as the old one was"
                        ));
                    }
                }
            }
            for g in &new_nodegroups {
                let b = &after.nodegroups[*g];
                if b.status != "ACTIVE" {
                    out.push(format!("new node group {g} is {}", b.status));
                }
                for (k, v) in &b.tags {
                    if left(k, v) {
                        out.push(format!("new node group {g}: tag {k}={v} left behind"));
                    }
                }
            }
        }
    }
    for (key, holder) in &after.locks {
        match before.locks.get(key) {
            None => out.push(format!("lock {key} still held: {holder:?}")),
            Some(h) if h != holder => {
                out.push(format!("lock {key} changed hands: {h:?} → {holder:?}"));
            }
            Some(_) => {}
        }
    }
    for key in before.locks.keys() {
        if !after.locks.contains_key(key) {
            out.push(format!(
                "lock {key}, held before the run by another, was deleted"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(desired: i32) -> GroupState {
        GroupState {
            min: desired,
            max: desired + 2,
            desired,
            tags: BTreeMap::from([
                ("eks:nodegroup-name".into(), "old".into()),
                ("k8s.io/cluster-autoscaler/enabled".into(), "true".into()),
            ]),
            load_balancers: BTreeSet::from(["web-clb".into()]),
            ..GroupState::default()
        }
    }

    fn nodegroup(asg: &str) -> NodegroupState {
        NodegroupState {
            status: "ACTIVE".into(),
            min: 3,
            max: 5,
            desired: 3,
            asg: asg.into(),
            ..NodegroupState::default()
        }
    }

    /// Old managed group `old` (ASG `asg-old`), untouched group `other` (ASG `asg-other`).
    fn before() -> AwsWorld {
        AwsWorld {
            groups: BTreeMap::from([("asg-old".into(), group(3)), ("asg-other".into(), group(2))]),
            nodegroups: BTreeMap::from([
                ("old".into(), nodegroup("asg-old")),
                ("other".into(), nodegroup("asg-other")),
            ]),
            locks: BTreeMap::new(),
        }
    }

    fn migrated() -> AwsWorld {
        let mut w = before();
        w.groups.remove("asg-old");
        w.nodegroups.remove("old");
        let mut new = group(5);
        new.tags.insert("ngm.io/created-by".into(), "exec".into());
        w.groups.insert("asg-new".into(), new);
        w.nodegroups.insert("new".into(), nodegroup("asg-new"));
        w
    }

    fn source() -> SourceGroup {
        SourceGroup::Managed("old".into())
    }

    const ROLLBACK: Promise = Promise::AsBefore {
        keep_new_group: false,
    };

    #[test]
    fn an_unchanged_world_keeps_a_rollback_promise() {
        assert!(problems(ROLLBACK, &source(), &before(), &before()).is_empty());
    }

    #[test]
    fn a_pinned_old_group_breaks_a_rollback() {
        let mut after = before();
        let g = after
            .groups
            .get_mut("asg-old")
            .unwrap_or_else(|| panic!("asg-old"));
        g.max = 3;
        g.tags
            .insert("ngm.io/original-scaling".into(), "3/5/3".into());
        g.tags.remove("k8s.io/cluster-autoscaler/enabled");
        g.suspended_processes.insert("AZRebalance".into());
        let p = problems(ROLLBACK, &source(), &before(), &after);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|x| x.contains("min/max/desired")));
        assert!(p.iter().any(|x| x.contains("+ngm.io/original-scaling")));
        assert!(p.iter().any(|x| x.contains("suspended processes")));
    }

    #[test]
    fn a_detached_load_balancer_breaks_a_rollback() {
        let mut after = before();
        if let Some(g) = after.groups.get_mut("asg-old") {
            g.load_balancers.clear();
        }
        let p = problems(ROLLBACK, &source(), &before(), &after);
        assert!(p[0].contains("load balancers"), "{p:?}");
    }

    #[test]
    fn a_new_group_left_after_a_rollback_is_named_unless_the_policy_keeps_it() {
        let mut after = before();
        after.groups.insert("asg-new".into(), group(5));
        after.nodegroups.insert("new".into(), nodegroup("asg-new"));
        let p = problems(ROLLBACK, &source(), &before(), &after);
        assert_eq!(
            p,
            vec![
                "left behind: Auto Scaling group asg-new".to_string(),
                "left behind: node group new".to_string()
            ]
        );
        let keep = Promise::AsBefore {
            keep_new_group: true,
        };
        assert!(problems(keep, &source(), &before(), &after).is_empty());
    }

    #[test]
    fn a_held_lock_is_named() {
        let mut after = before();
        after.locks.insert(
            "arn:cluster".into(),
            BTreeMap::from([("holder".into(), "exec-1".into())]),
        );
        let p = problems(ROLLBACK, &source(), &before(), &after);
        assert!(p[0].starts_with("lock arn:cluster still held"), "{p:?}");
        // A lock another execution held before the run must be left to it.
        let p = problems(ROLLBACK, &source(), &after, &before());
        assert!(p[0].contains("was deleted"), "{p:?}");
        assert!(problems(ROLLBACK, &source(), &after, &after).is_empty());
    }

    #[test]
    fn a_migration_replaces_the_old_group_and_leaves_the_other_alone() {
        assert!(problems(Promise::Migrated, &source(), &before(), &migrated()).is_empty());
    }

    #[test]
    fn a_migration_that_left_the_old_group_or_touched_another_fails() {
        let mut after = migrated();
        after.groups.insert("asg-old".into(), group(3));
        after.nodegroups.insert("old".into(), nodegroup("asg-old"));
        if let Some(g) = after.groups.get_mut("asg-other") {
            g.desired = 4;
        }
        let p = problems(Promise::Migrated, &source(), &before(), &after);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|x| x.contains("asg-other")));
    }

    #[test]
    fn a_new_group_must_take_the_old_ones_load_balancers_and_no_leftover_tag() {
        let mut after = migrated();
        if let Some(g) = after.groups.get_mut("asg-new") {
            g.load_balancers.clear();
            g.tags.insert("ngm.io/execution".into(), "exec".into());
            g.suspended_processes.insert("Launch".into());
        }
        let p = problems(Promise::Migrated, &source(), &before(), &after);
        assert_eq!(p.len(), 3, "{p:?}");
    }

    /// The operator's `ngm.io/` tags on the old group go with it (so the next AMI release
    /// updates the new one); one the old group did not have, or had with another value, is
    /// left behind.
    #[test]
    fn the_operators_tags_carried_from_the_old_group_are_not_left_behind() {
        let mut before = before();
        if let Some(g) = before.nodegroups.get_mut("old") {
            g.tags.insert("ngm.io/auto-update".into(), "true".into());
        }
        let mut after = migrated();
        if let Some(g) = after.nodegroups.get_mut("new") {
            g.tags.insert("ngm.io/auto-update".into(), "true".into());
        }
        assert!(problems(Promise::Migrated, &source(), &before, &after).is_empty());
        if let Some(g) = after.nodegroups.get_mut("new") {
            g.tags.insert(
                "ngm.io/maintenance-window".into(),
                "Sun 02:00-06:00 UTC".into(),
            );
        }
        let p = problems(Promise::Migrated, &source(), &before, &after);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("ngm.io/maintenance-window"), "{p:?}");
    }

    #[test]
    fn a_traffic_source_must_stay_a_traffic_source() {
        let with_source = |world: &mut AwsWorld, asg: &str| {
            if let Some(g) = world.groups.get_mut(asg) {
                g.traffic_sources.insert("elbv2:arn:tg".into());
            }
        };
        let mut before = before();
        with_source(&mut before, "asg-old");
        // Attached through the legacy call instead: not as the old one was.
        let mut after = migrated();
        if let Some(g) = after.groups.get_mut("asg-new") {
            g.target_groups.insert("arn:tg".into());
        }
        let p = problems(Promise::Migrated, &source(), &before, &after);
        assert!(p.iter().any(|x| x.contains("traffic sources")), "{p:?}");
        with_source(&mut after, "asg-new");
        let p = problems(Promise::Migrated, &source(), &before, &after);
        assert!(p.iter().all(|x| !x.contains("traffic sources")), "{p:?}");
        // A rollback that leaves the old group without it.
        let mut after = before.clone();
        if let Some(g) = after.groups.get_mut("asg-old") {
            g.traffic_sources.clear();
        }
        let p = problems(ROLLBACK, &source(), &before, &after);
        assert!(p.iter().any(|x| x.contains("traffic sources")), "{p:?}");
    }

    #[test]
    fn a_migration_with_no_new_group_fails() {
        let mut after = before();
        after.groups.remove("asg-old");
        after.nodegroups.remove("old");
        let p = problems(Promise::Migrated, &source(), &before(), &after);
        assert_eq!(
            p,
            vec!["no new Auto Scaling group took the old one's place".to_string()]
        );
    }
}
