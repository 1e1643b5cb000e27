//! UpdateNodegroupConfig: labels and taints are applied to the group's nodes at once; a size
//! change resizes the Auto Scaling group, scale-in draining the leaving nodes first as EKS
//! does before it terminates instances. The group is UPDATING until the new size is reached.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::asg;
use super::super::error::EksError;
use super::super::model::{Issue, NodegroupStatus, ScalingConfig, Taint, Update};
use super::super::{Eks, InstanceRecord, validate};
use super::{not_found, short_id};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelsPayload {
    #[serde(default)]
    add_or_update_labels: BTreeMap<String, String>,
    #[serde(default)]
    remove_labels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaintsPayload {
    #[serde(default)]
    add_or_update_taints: Vec<Taint>,
    #[serde(default)]
    remove_taints: Vec<Taint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartialScaling {
    min_size: Option<i32>,
    max_size: Option<i32>,
    desired_size: Option<i32>,
}

impl Eks {
    /// UpdateNodegroupConfig, with the request body as JSON.
    pub fn update_nodegroup_config(&self, name: &str, body: &Value) -> Result<Update, EksError> {
        let labels: LabelsPayload = validate::opt(body, "labels")?.unwrap_or_default();
        let taints: TaintsPayload = validate::opt(body, "taints")?.unwrap_or_default();
        let scaling: Option<PartialScaling> = validate::opt(body, "scalingConfig")?;
        let token = validate::opt_str(body, "clientRequestToken")?;
        let update_config = body.get("updateConfig").filter(|v| !v.is_null()).cloned();
        if let Some(u) = &update_config {
            validate::update_config(u)?;
        }
        validate::labels(&labels.add_or_update_labels)?;
        validate::taints(&taints.add_or_update_taints)?;
        let now = self.inner.clock.now();
        let cluster = self.config().cluster_name.clone();

        let mut st = self.state();
        if let Some(t) = &token
            && let Some(u) = st
                .updates
                .values()
                .find(|u| u.nodegroup == name && u.token.as_deref() == Some(t.as_str()))
        {
            return Ok(u.clone());
        }
        let ng = st
            .groups
            .get(name)
            .ok_or_else(|| not_found(name, &cluster))?;
        if !matches!(
            ng.status,
            NodegroupStatus::Active | NodegroupStatus::Degraded
        ) {
            return Err(EksError::in_use(format!(
                "Nodegroup {name} cannot be updated as it is currently not in Active State"
            )));
        }
        let old = ng.spec.scaling;
        let new = scaling.as_ref().map(|s| ScalingConfig {
            min_size: s.min_size.unwrap_or(old.min_size),
            max_size: s.max_size.unwrap_or(old.max_size),
            desired_size: s.desired_size.unwrap_or(old.desired_size),
        });
        if let Some(s) = &new {
            validate::scaling(s)?;
        }
        let mut new_labels = ng.spec.labels.clone();
        for k in &labels.remove_labels {
            new_labels.remove(k);
        }
        new_labels.extend(labels.add_or_update_labels.clone());
        let remove_taint_keys: Vec<String> =
            taints.remove_taints.iter().map(|t| t.key.clone()).collect();
        let mut new_taints: Vec<Taint> = ng
            .spec
            .taints
            .iter()
            .filter(|t| {
                !remove_taint_keys.contains(&t.key)
                    && !taints.add_or_update_taints.iter().any(|a| a.key == t.key)
            })
            .cloned()
            .collect();
        new_taints.extend(taints.add_or_update_taints.clone());
        validate::taints(&new_taints)?;

        let mut params: Vec<(&'static str, String)> = Vec::new();
        if !labels.add_or_update_labels.is_empty() {
            params.push(("LabelsToAdd", json_str(&labels.add_or_update_labels)));
        }
        if !labels.remove_labels.is_empty() {
            params.push(("LabelsToRemove", json_str(&labels.remove_labels)));
        }
        if !taints.add_or_update_taints.is_empty() {
            params.push(("TaintsToAdd", json_str(&taints.add_or_update_taints)));
        }
        if !taints.remove_taints.is_empty() {
            params.push(("TaintsToRemove", json_str(&taints.remove_taints)));
        }
        if let Some(s) = &new {
            params.push(("MinSize", s.min_size.to_string()));
            params.push(("MaxSize", s.max_size.to_string()));
            params.push(("DesiredSize", s.desired_size.to_string()));
        }
        if let Some(u) = &update_config {
            for (key, param) in [
                ("maxUnavailable", "MaxUnavailable"),
                ("maxUnavailablePercentage", "MaxUnavailablePercentage"),
                ("updateStrategy", "UpdateStrategy"),
            ] {
                if let Some(v) = u.get(key).filter(|v| !v.is_null()) {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    params.push((param, v));
                }
            }
        }
        if params.is_empty() {
            return Err(EksError::invalid_parameter(
                "No changes needed: the update specifies nothing to change",
            ));
        }
        let update = Update {
            id: format!(
                "{}-{}-{}-{}-{}",
                short_id(8),
                short_id(4),
                short_id(4),
                short_id(4),
                short_id(12)
            ),
            kind: "ConfigUpdate",
            nodegroup: name.to_string(),
            status: "InProgress",
            params,
            created_at: now,
            errors: Vec::new(),
            token,
        };
        let resize = new.filter(|s| *s != old);
        let asg_name = ng.asg_name.clone();
        if let Some(ng) = st.groups.get_mut(name) {
            ng.spec.labels = new_labels;
            ng.spec.taints = new_taints;
            if let Some(s) = new {
                ng.spec.scaling = s;
            }
            if update_config.is_some() {
                ng.spec.update_config = update_config;
            }
            ng.status = NodegroupStatus::Updating;
            ng.modified_at = now;
            ng.active_update = Some(update.id.clone());
            ng.busy = resize.is_some();
        }
        st.updates.insert(update.id.clone(), update.clone());
        drop(st);

        self.patch_group_nodes(
            name,
            &labels.add_or_update_labels,
            &labels.remove_labels,
            &taints.add_or_update_taints,
            &remove_taint_keys,
        );
        if let Some(s) = resize {
            let eks = self.clone();
            let (name, id) = (name.to_string(), update.id.clone());
            let sup = eks.inner.store.supervisor().clone();
            sup.spawn(format!("eks resize {name}"), async move {
                let result = eks.resize(&asg_name, old, s).await;
                eks.finish_resize(&name, &id, result);
            });
        }
        Ok(update)
    }

    /// Resizes the backing group. Scale-in picks its victims as the Auto Scaling default
    /// termination policy does (keep zones balanced, newest first among equals), drains them,
    /// and terminates them with the desired capacity lowered.
    pub(super) async fn resize(
        &self,
        asg_name: &str,
        old: ScalingConfig,
        new: ScalingConfig,
    ) -> Result<(), EksError> {
        let client = &self.inner.asg;
        if new.desired_size >= old.desired_size {
            return asg::set_size(
                client,
                asg_name,
                new.min_size,
                new.max_size,
                new.desired_size,
            )
            .await;
        }
        let leaving = usize::try_from(old.desired_size - new.desired_size).unwrap_or(0);
        let victims = self.pick_victims(asg_name, leaving);
        let nodes: Vec<String> = victims
            .iter()
            .filter_map(|(_, node)| node.clone())
            .collect();
        self.drain(&nodes).await;
        // Lower the minimum first so the terminations are allowed to decrement below it.
        asg::set_size(
            client,
            asg_name,
            new.min_size.min(old.min_size),
            old.max_size,
            old.desired_size,
        )
        .await?;
        for (instance, _) in &victims {
            asg::terminate(client, instance).await?;
        }
        // Forget them now, not at the reconciler's next pass: a resize right after this one
        // must not pick an instance that is already gone.
        self.state()
            .instances
            .retain(|id, _| !victims.iter().any(|(v, _)| v == id));
        asg::set_size(
            client,
            asg_name,
            new.min_size,
            new.max_size,
            new.desired_size,
        )
        .await?;
        for node in &nodes {
            self.terminate_node(node);
        }
        Ok(())
    }

    /// `(instance, node)` pairs to remove, picked as the Auto Scaling default termination
    /// policy does: from the zone with the most instances, unregistered instances first (they
    /// hold no pods), then the newest.
    fn pick_victims(&self, asg_name: &str, count: usize) -> Vec<(String, Option<String>)> {
        let st = self.state();
        let mut pool: Vec<(&String, &InstanceRecord)> = st
            .instances
            .iter()
            .filter(|(_, r)| r.asg == asg_name)
            .collect();
        pool.sort_by(|a, b| {
            a.1.node_name
                .is_some()
                .cmp(&b.1.node_name.is_some())
                .then(b.1.first_seen.cmp(&a.1.first_seen))
        });
        let mut out = Vec::new();
        while out.len() < count && !pool.is_empty() {
            let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, r) in &pool {
                *per_zone.entry(r.zone.as_str()).or_default() += 1;
            }
            let busiest = per_zone
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(z, _)| z.to_string());
            let Some(i) = pool
                .iter()
                .position(|(_, r)| Some(&r.zone) == busiest.as_ref())
            else {
                break;
            };
            let (id, r) = pool.remove(i);
            out.push((id.clone(), r.node_name.clone()));
        }
        out
    }

    fn finish_resize(&self, name: &str, update_id: &str, result: Result<(), EksError>) {
        let mut st = self.state();
        let failed = result.is_err();
        if let Some(ng) = st.groups.get_mut(name) {
            ng.busy = false;
            if failed {
                ng.status = NodegroupStatus::Active;
                ng.active_update = None;
            }
        }
        if let Err(e) = result {
            tracing::warn!(nodegroup = %name, error = %e, "node group resize failed");
            if let Some(u) = st.updates.get_mut(update_id) {
                u.status = "Failed";
                u.errors.push(Issue {
                    code: "Unknown".to_string(),
                    message: e.message,
                    resource_ids: vec![name.to_string()],
                });
            }
        }
    }
}

/// An update parameter's value as EKS writes it: compact JSON.
fn json_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
