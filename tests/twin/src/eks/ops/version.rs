//! UpdateNodegroupVersion, run as the EKS user guide's "Understand each phase of node updates"
//! (managed-node-update-behavior) describes it:
//! - setup: the Auto Scaling group launches the new release's image from now on;
//! - scale up: max and desired grow by the larger of twice the group's zones and
//!   `maxUnavailable` (neither beyond the nodes to upgrade); once the new nodes are Ready, the
//!   old ones get the `eks.amazonaws.com/nodegroup=unschedulable:NoSchedule` taint and the
//!   `node.kubernetes.io/exclude-from-external-load-balancers=true` label;
//! - upgrade: up to `maxUnavailable` random old nodes at a time are drained through the
//!   Eviction API (15 minutes, then `PodEvictionFailure` unless `force`), cordoned, left 60 s,
//!   and terminated through the Auto Scaling group, which replaces them with new instances;
//! - scale down: max and desired come back down one at a time to their values before the
//!   update, unless someone else (the Cluster Autoscaler) scaled the group up meanwhile.

mod roll;

use serde_json::Value;

use super::super::error::EksError;
use super::super::model::{Issue, NodegroupStatus, Update};
use super::super::{Eks, validate};
use super::{not_found, short_id};

/// One version update under way.
struct Roll {
    name: String,
    update_id: String,
    asg: String,
    ami_type: String,
    instance_type: String,
    release: String,
    /// Every node is replaced, whatever its image (a new launch template version).
    replace_all: bool,
    force: bool,
}

impl Eks {
    /// UpdateNodegroupVersion, with the request body as JSON.
    pub fn update_nodegroup_version(&self, name: &str, body: &Value) -> Result<Update, EksError> {
        let version = validate::opt_str(body, "version")?;
        let release = validate::opt_str(body, "releaseVersion")?;
        let launch_template: Option<Value> = validate::opt(body, "launchTemplate")?;
        let force = validate::opt::<bool>(body, "force")?.unwrap_or(false);
        let token = validate::opt_str(body, "clientRequestToken")?;
        let cfg = self.config();
        let now = self.inner.clock.now();

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
            .ok_or_else(|| not_found(name, &cfg.cluster_name))?;
        if !matches!(
            ng.status,
            NodegroupStatus::Active | NodegroupStatus::Degraded
        ) {
            return Err(EksError::in_use(format!(
                "Nodegroup {name} cannot be updated as it is currently not in Active State"
            )));
        }
        let version = version.unwrap_or_else(|| ng.version.clone());
        if version != ng.version && version != cfg.kubernetes_version {
            return Err(EksError::invalid_parameter(format!(
                "Requested Nodegroup version {version} is invalid. Allowed version is {}",
                cfg.kubernetes_version
            )));
        }
        // Without a release, the latest for the version (never older than the group's).
        let release = release.unwrap_or_else(|| {
            let latest = latest_release(&cfg.default_release_version, &version);
            if release_key(&latest) < release_key(&ng.spec.release_version) {
                ng.spec.release_version.clone()
            } else {
                latest
            }
        });
        if !release.starts_with(&format!("{version}.")) {
            return Err(EksError::invalid_parameter(format!(
                "Requested release version {release} is not valid for kubernetes version {version}."
            )));
        }
        if release_key(&release) < release_key(&ng.spec.release_version) {
            return Err(EksError::invalid_parameter(format!(
                "Requested Nodegroup release version {release} is invalid. Nodegroup release version cannot be downgraded from {}",
                ng.spec.release_version
            )));
        }
        let mut params: Vec<(&'static str, String)> = vec![
            ("Version", version.clone()),
            ("ReleaseVersion", release.clone()),
        ];
        let mut replace_all = false;
        if let Some(lt) = &launch_template {
            let current = ng.spec.launch_template.as_ref().ok_or_else(|| {
                EksError::invalid_parameter(
                    "A launch template cannot be specified: the node group was not created with one",
                )
            })?;
            let same = |k: &str| lt.get(k).is_none_or(|v| Some(v) == current.get(k));
            if !same("id") || !same("name") {
                return Err(EksError::invalid_parameter(
                    "The launch template must be the one the node group was created with",
                ));
            }
            let name_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            if let Some(n) = name_of(lt, "name").or_else(|| name_of(current, "name")) {
                params.push(("LaunchTemplateName", n));
            }
            if let Some(v) = name_of(lt, "version") {
                replace_all = name_of(current, "version").as_deref() != Some(v.as_str());
                params.push(("LaunchTemplateVersion", v));
            }
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
            kind: "VersionUpdate",
            nodegroup: name.to_string(),
            status: "InProgress",
            params,
            created_at: now,
            errors: Vec::new(),
            token,
        };
        let roll = Roll {
            name: name.to_string(),
            update_id: update.id.clone(),
            asg: ng.asg_name.clone(),
            ami_type: ng.spec.ami_type.clone(),
            instance_type: ng.spec.instance_types[0].clone(),
            release,
            replace_all,
            force,
        };
        if let Some(ng) = st.groups.get_mut(name) {
            ng.status = NodegroupStatus::Updating;
            ng.modified_at = now;
            ng.active_update = Some(update.id.clone());
            ng.busy = true;
        }
        st.updates.insert(update.id.clone(), update.clone());
        drop(st);

        let eks = self.clone();
        let sup = eks.inner.store.supervisor().clone();
        sup.spawn(format!("eks version update {name}"), async move {
            let result = eks.roll(&roll).await;
            eks.finish_roll(&roll, &version, launch_template, result);
        });
        Ok(update)
    }

    fn finish_roll(
        &self,
        r: &Roll,
        version: &str,
        launch_template: Option<Value>,
        result: Result<(), Issue>,
    ) {
        let now = self.inner.clock.now();
        let mut st = self.state();
        if let Some(ng) = st.groups.get_mut(&r.name) {
            ng.busy = false;
            ng.status = NodegroupStatus::Active;
            ng.active_update = None;
            ng.modified_at = now;
            if result.is_ok() {
                ng.spec.release_version.clone_from(&r.release);
                ng.version = version.to_string();
                ng.launch_release = None;
                if let (Some(cur), Some(v)) = (ng.spec.launch_template.as_mut(), launch_template)
                    && let Some(ver) = v.get("version")
                {
                    cur["version"] = ver.clone();
                }
            }
        }
        if let Some(u) = st.updates.get_mut(&r.update_id) {
            match result {
                Ok(()) => u.status = "Successful",
                Err(e) => {
                    tracing::warn!(nodegroup = %r.name, code = %e.code, error = %e.message, "node group version update failed");
                    u.status = "Failed";
                    u.errors.push(e);
                }
            }
        }
    }
}

/// The twin's latest release for a Kubernetes version: its default release, moved to that
/// version when it belongs to another (`1.33.0-20260101` for 1.32 is `1.32.0-20260101`).
fn latest_release(default: &str, version: &str) -> String {
    if default.starts_with(&format!("{version}.")) {
        return default.to_string();
    }
    let date = default.split_once('-').map_or("20260101", |(_, d)| d);
    format!("{version}.0-{date}")
}

/// The numbers of a release (`1.33.0-20260101` → 1, 33, 0, 20260101), to order releases.
fn release_key(r: &str) -> Vec<u64> {
    r.split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_release_belongs_to_the_requested_version() {
        assert_eq!(latest_release("1.33.0-20260101", "1.33"), "1.33.0-20260101");
        assert_eq!(latest_release("1.33.0-20260101", "1.32"), "1.32.0-20260101");
    }

    #[test]
    fn releases_order_by_their_numbers() {
        assert!(release_key("1.33.0-20260201") > release_key("1.33.0-20260101"));
        assert!(release_key("1.33.10-20260101") > release_key("1.33.9-20260101"));
    }
}
