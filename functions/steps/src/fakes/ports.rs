//! The AWS port traits over [`FakeCloud`]: each call changes the world at once and answers what the
//! real API would, with the adapters' error classification (absent is `Ok(None)`, deleting
//! something gone is `Ok`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use ngm_core::model::{
    AsgInfo, ClusterInfo, ExecutionInfo, ExecutionStatus, Labels, LaunchTemplateOverrides,
    LaunchTemplateRef, LaunchTemplateVersion, LoadBalancerInfo, NodeGroupSpec, NodeGroupStatus,
    Scaling, TargetHealth, UpdateStatus,
};
use ngm_core::ports::{
    AsgPort, Ec2Port, EksPort, ElbPort, MetadataPatch, PortError, PortResult, SfnPort, SsmPort,
};
use ngm_core::state::LbAttachments;

use super::FakeCloud;

pub(crate) fn apply(map: &mut Labels, patch: &MetadataPatch) {
    for (k, v) in patch {
        match v {
            Some(v) => map.insert(k.clone(), v.clone()),
            None => map.remove(k),
        };
    }
}

fn invalid(op: &str, detail: &str) -> PortError {
    PortError::Invalid {
        op: op.into(),
        detail: detail.into(),
    }
}

pub(crate) fn missing(what: &str) -> PortError {
    PortError::NotFound { what: what.into() }
}

#[async_trait]
impl EksPort for FakeCloud {
    async fn describe_cluster(&self, cluster: &str) -> PortResult<Option<ClusterInfo>> {
        let mut i = self.lock();
        i.enter("describe_cluster", cluster, false)?;
        Ok(i.w.clusters.get(cluster).cloned())
    }

    async fn describe_nodegroup(
        &self,
        _cluster: &str,
        name: &str,
    ) -> PortResult<Option<NodeGroupSpec>> {
        let mut i = self.lock();
        i.enter("describe_nodegroup", name, false)?;
        Ok(i.w.nodegroups.get(name).cloned())
    }

    async fn list_nodegroups(&self, cluster: &str) -> PortResult<Vec<String>> {
        let mut i = self.lock();
        i.enter("list_nodegroups", cluster, false)?;
        Ok(i.w.nodegroups.keys().cloned().collect())
    }

    async fn create_nodegroup(
        &self,
        cluster: &str,
        spec: &NodeGroupSpec,
        client_request_token: &str,
    ) -> PortResult<NodeGroupSpec> {
        let mut i = self.lock();
        i.enter("create_nodegroup", &spec.name, true)?;
        // EKS answers a repeated token with the same group instead of a conflict.
        if i.tokens.get(client_request_token) == Some(&spec.name)
            && let Some(g) = i.w.nodegroups.get(&spec.name)
        {
            return Ok(g.clone());
        }
        if i.w.nodegroups.contains_key(&spec.name) {
            return Err(PortError::Conflict {
                op: "CreateNodegroup".into(),
                detail: format!("node group {} already exists", spec.name),
            });
        }
        let mut g = spec.clone();
        g.status = NodeGroupStatus::Creating;
        g.arn = Some(format!(
            "arn:aws:eks:eu-west-1:111122223333:nodegroup/{cluster}/{}/1",
            spec.name
        ));
        i.tokens
            .insert(client_request_token.to_string(), spec.name.clone());
        i.w.nodegroups.insert(g.name.clone(), g.clone());
        Ok(g)
    }

    async fn delete_nodegroup(&self, _cluster: &str, name: &str) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("delete_nodegroup", name, true)?;
        if let Some(g) = i.w.nodegroups.get_mut(name) {
            g.status = NodeGroupStatus::Deleting;
        }
        Ok(())
    }

    async fn update_nodegroup_scaling(
        &self,
        _cluster: &str,
        name: &str,
        scaling: Scaling,
        _client_request_token: &str,
    ) -> PortResult<String> {
        let mut i = self.lock();
        i.enter("update_nodegroup_scaling", name, true)?;
        let g = i.w.nodegroups.get_mut(name).ok_or_else(|| missing(name))?;
        g.scaling = scaling;
        Ok(format!("update-{name}"))
    }

    async fn describe_update(
        &self,
        _cluster: &str,
        nodegroup: &str,
        _update_id: &str,
    ) -> PortResult<UpdateStatus> {
        let mut i = self.lock();
        i.enter("describe_update", nodegroup, false)?;
        Ok(UpdateStatus::Successful)
    }

    async fn tag_resource(&self, arn: &str, tags: &Labels) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("tag_resource", arn, true)?;
        let w = &mut i.w;
        if let Some(c) = w.clusters.values_mut().find(|c| c.arn == arn) {
            c.tags.extend(tags.clone());
        } else if let Some(g) = w
            .nodegroups
            .values_mut()
            .find(|g| g.arn.as_deref() == Some(arn))
        {
            g.tags.extend(tags.clone());
        } else {
            return Err(missing(arn));
        }
        Ok(())
    }

    async fn untag_resource(&self, arn: &str, keys: &[String]) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("untag_resource", arn, true)?;
        let w = &mut i.w;
        let tags = if let Some(c) = w.clusters.values_mut().find(|c| c.arn == arn) {
            &mut c.tags
        } else if let Some(g) = w
            .nodegroups
            .values_mut()
            .find(|g| g.arn.as_deref() == Some(arn))
        {
            &mut g.tags
        } else {
            return Err(missing(arn));
        };
        for k in keys {
            tags.remove(k);
        }
        Ok(())
    }

    async fn list_tags(&self, arn: &str) -> PortResult<Labels> {
        let mut i = self.lock();
        i.enter("list_tags", arn, false)?;
        let w = &i.w;
        w.clusters
            .values()
            .find(|c| c.arn == arn)
            .map(|c| c.tags.clone())
            .or_else(|| {
                w.nodegroups
                    .values()
                    .find(|g| g.arn.as_deref() == Some(arn))
                    .map(|g| g.tags.clone())
            })
            .ok_or_else(|| missing(arn))
    }
}

#[async_trait]
impl AsgPort for FakeCloud {
    async fn describe(&self, name: &str) -> PortResult<Option<AsgInfo>> {
        let mut i = self.lock();
        i.enter("asg_describe", name, false)?;
        Ok(i.w.asgs.get(name).cloned())
    }

    async fn update_size(&self, name: &str, scaling: Scaling) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_update_size", name, true)?;
        i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?.scaling = scaling;
        Ok(())
    }

    async fn suspend_processes(&self, name: &str, processes: &[String]) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_suspend_processes", name, true)?;
        let a = i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?;
        for p in processes {
            if !a.suspended_processes.contains(p) {
                a.suspended_processes.push(p.clone());
            }
        }
        a.suspended_processes.sort();
        Ok(())
    }

    async fn resume_processes(&self, name: &str, processes: &[String]) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_resume_processes", name, true)?;
        let a = i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?;
        a.suspended_processes.retain(|p| !processes.contains(p));
        Ok(())
    }

    async fn tag(&self, name: &str, tags: &Labels) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_tag", name, true)?;
        let a = i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?;
        a.tags.extend(tags.clone());
        Ok(())
    }

    async fn untag(&self, name: &str, keys: &[String]) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_untag", name, true)?;
        let a = i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?;
        for k in keys {
            a.tags.remove(k);
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_delete", name, true)?;
        i.w.asgs.remove(name);
        Ok(())
    }

    async fn attach_load_balancers(&self, name: &str, at: &LbAttachments) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_attach_load_balancers", name, true)?;
        let a = i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?;
        fn add<T: PartialEq + Clone>(have: &mut Vec<T>, add: &[T]) {
            for x in add {
                if !have.contains(x) {
                    have.push(x.clone());
                }
            }
        }
        add(&mut a.load_balancer_names, &at.load_balancer_names);
        add(&mut a.target_group_arns, &at.target_group_arns);
        add(&mut a.traffic_sources, &at.traffic_sources);
        Ok(())
    }

    async fn detach_load_balancers(&self, name: &str, at: &LbAttachments) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("asg_detach_load_balancers", name, true)?;
        let a = i.w.asgs.get_mut(name).ok_or_else(|| missing(name))?;
        a.load_balancer_names
            .retain(|x| !at.load_balancer_names.contains(x));
        a.target_group_arns
            .retain(|x| !at.target_group_arns.contains(x));
        a.traffic_sources
            .retain(|x| !at.traffic_sources.contains(x));
        Ok(())
    }
}

fn find_template<'a>(
    templates: &'a BTreeMap<String, Vec<LaunchTemplateVersion>>,
    t: &LaunchTemplateRef,
) -> Option<(&'a String, &'a Vec<LaunchTemplateVersion>)> {
    templates.iter().find(|(id, versions)| {
        t.id.as_deref() == Some(id.as_str())
            || versions
                .first()
                .is_some_and(|v| t.name.as_deref() == Some(v.name.as_str()))
    })
}

fn pick_version(
    versions: &[LaunchTemplateVersion],
    v: Option<&str>,
) -> Option<LaunchTemplateVersion> {
    match v {
        None | Some("$Default") => versions.first().cloned(),
        Some("$Latest") => versions.last().cloned(),
        Some(n) => versions
            .iter()
            .find(|x| n.parse() == Ok(x.version))
            .cloned(),
    }
}

fn overridden(mut v: LaunchTemplateVersion, o: &LaunchTemplateOverrides) -> LaunchTemplateVersion {
    if o.image_id.is_some() {
        v.image_id.clone_from(&o.image_id);
    }
    if o.instance_type.is_some() {
        v.instance_type.clone_from(&o.instance_type);
    }
    if o.user_data.is_some() {
        v.has_user_data = true;
    }
    v
}

#[async_trait]
impl Ec2Port for FakeCloud {
    async fn describe_launch_template_version(
        &self,
        template: &LaunchTemplateRef,
    ) -> PortResult<Option<LaunchTemplateVersion>> {
        let mut i = self.lock();
        i.enter("describe_launch_template_version", "", false)?;
        Ok(find_template(&i.w.templates, template)
            .and_then(|(_, vs)| pick_version(vs, template.version.as_deref())))
    }

    async fn create_launch_template_version(
        &self,
        template: &LaunchTemplateRef,
        overrides: &LaunchTemplateOverrides,
        client_token: &str,
    ) -> PortResult<LaunchTemplateVersion> {
        let mut i = self.lock();
        i.enter("create_launch_template_version", client_token, true)?;
        let (id, versions) = find_template(&i.w.templates, template)
            .map(|(id, vs)| (id.clone(), vs.clone()))
            .ok_or_else(|| missing("launch template"))?;
        // EC2's ClientToken: the same token answers the version it created before.
        if let Some(v) = i
            .tokens
            .get(client_token)
            .and_then(|n| versions.iter().find(|v| v.version.to_string() == *n))
        {
            return Ok(v.clone());
        }
        let source = pick_version(&versions, template.version.as_deref())
            .ok_or_else(|| invalid("CreateLaunchTemplateVersion", "no such source version"))?;
        let mut v = overridden(source, overrides);
        v.version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        i.tokens
            .insert(client_token.to_string(), v.version.to_string());
        i.w.templates.entry(id).or_default().push(v.clone());
        Ok(v)
    }

    async fn subnet_zones(&self, subnet_ids: &[String]) -> PortResult<BTreeMap<String, String>> {
        let mut i = self.lock();
        i.enter("subnet_zones", "", false)?;
        Ok(subnet_ids
            .iter()
            .filter_map(|s| i.w.subnet_zones.get(s).map(|z| (s.clone(), z.clone())))
            .collect())
    }

    async fn create_launch_template(
        &self,
        name: &str,
        source: &LaunchTemplateVersion,
        overrides: &LaunchTemplateOverrides,
        client_token: &str,
    ) -> PortResult<LaunchTemplateVersion> {
        let mut i = self.lock();
        i.enter("create_launch_template", name, true)?;
        let id = format!("lt-{name}");
        if let Some(v) = i.w.templates.get(&id).and_then(|vs| vs.first()) {
            return Ok(v.clone());
        }
        let mut v = overridden(source.clone(), overrides);
        v.id.clone_from(&id);
        v.name = name.to_string();
        v.version = 1;
        i.tokens.insert(client_token.to_string(), id.clone());
        i.w.templates.insert(id, vec![v.clone()]);
        Ok(v)
    }
}

#[async_trait]
impl ElbPort for FakeCloud {
    async fn find_load_balancer_by_dns(&self, dns: &str) -> PortResult<Option<LoadBalancerInfo>> {
        let mut i = self.lock();
        i.enter("find_load_balancer_by_dns", dns, false)?;
        Ok(i.w.load_balancers.get(dns).cloned())
    }

    async fn target_health(&self, target_group_arn: &str) -> PortResult<Vec<TargetHealth>> {
        let mut i = self.lock();
        i.enter("target_health", target_group_arn, false)?;
        Ok(i.w
            .target_health
            .get(target_group_arn)
            .cloned()
            .unwrap_or_default())
    }

    async fn classic_instance_health(&self, lb_name: &str) -> PortResult<Vec<TargetHealth>> {
        let mut i = self.lock();
        i.enter("classic_instance_health", lb_name, false)?;
        Ok(i.w.target_health.get(lb_name).cloned().unwrap_or_default())
    }

    async fn classic_by_name(&self, name: &str) -> PortResult<Option<LoadBalancerInfo>> {
        let mut i = self.lock();
        i.enter("classic_by_name", name, false)?;
        Ok(i.w
            .load_balancers
            .values()
            .find(|lb| lb.kind == ngm_core::model::LbKind::Clb && lb.id == name)
            .cloned())
    }

    async fn by_target_group(
        &self,
        target_group_arn: &str,
    ) -> PortResult<Option<LoadBalancerInfo>> {
        let mut i = self.lock();
        i.enter("by_target_group", target_group_arn, false)?;
        Ok(i.w.load_balancers.values().find_map(|lb| {
            let tg = lb
                .target_groups
                .iter()
                .find(|tg| tg.arn == target_group_arn)?;
            Some(LoadBalancerInfo {
                target_groups: vec![tg.clone()],
                ..lb.clone()
            })
        }))
    }

    async fn set_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, Option<i32>)],
        deregister: bool,
    ) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("set_targets", target_group_arn, true)?;
        let set =
            i.w.target_health
                .entry(target_group_arn.to_string())
                .or_default();
        for (id, port) in targets {
            // What a target group does: a deregistered target drains, a registered one starts
            // its health checks.
            let state = if deregister {
                ngm_core::model::TargetHealthState::Draining
            } else {
                ngm_core::model::TargetHealthState::Initial
            };
            match set.iter_mut().find(|t| &t.target_id == id) {
                Some(t) => t.state = state,
                None if !deregister => set.push(TargetHealth {
                    target_id: id.clone(),
                    port: *port,
                    state,
                }),
                None => {}
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SsmPort for FakeCloud {
    async fn get_parameter(&self, name: &str) -> PortResult<Option<String>> {
        let mut i = self.lock();
        i.enter("get_parameter", name, false)?;
        Ok(i.w.parameters.get(name).cloned())
    }
}

#[async_trait]
impl SfnPort for FakeCloud {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> PortResult<String> {
        let mut i = self.lock();
        i.enter("start_execution", name, true)?;
        let arn = format!(
            "{}:{name}",
            state_machine_arn.replace(":stateMachine:", ":execution:")
        );
        if !i.w.executions.iter().any(|e| e.arn == arn) {
            let started_at = ngm_core::model::Timestamp(0);
            i.w.executions.push(ExecutionInfo {
                arn: arn.clone(),
                name: name.into(),
                status: ExecutionStatus::Running,
                started_at,
                stopped_at: None,
                input: Some(input.into()),
                output: None,
                error: None,
                cause: None,
            });
        }
        Ok(arn)
    }

    async fn describe_execution(&self, execution_arn: &str) -> PortResult<Option<ExecutionInfo>> {
        let mut i = self.lock();
        i.enter("describe_execution", execution_arn, false)?;
        Ok(i.w
            .executions
            .iter()
            .find(|e| e.arn == execution_arn)
            .cloned())
    }

    async fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
    ) -> PortResult<Vec<ExecutionInfo>> {
        let mut i = self.lock();
        i.enter("list_executions", state_machine_arn, false)?;
        let prefix = state_machine_arn.replace(":stateMachine:", ":execution:");
        Ok(i.w
            .executions
            .iter()
            .filter(|e| e.arn.starts_with(&prefix))
            .filter(|e| status.is_none_or(|s| e.status == s))
            .cloned()
            .collect())
    }

    async fn send_task_success(&self, task_token: &str, _output: &str) -> PortResult<()> {
        self.lock().enter("send_task_success", task_token, true)
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        _error: &str,
        _cause: &str,
    ) -> PortResult<()> {
        self.lock().enter("send_task_failure", task_token, true)
    }
}
