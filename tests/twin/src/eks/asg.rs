//! The Auto Scaling calls the control plane makes against moto: the groups behind managed
//! node groups, and the read of every group tagged for the cluster.

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_autoscaling::types::{Filter, Tag};

use super::EksConfig;
use super::error::EksError;

/// An Auto Scaling client for the moto server in `cfg` (moto accepts any credentials).
pub(crate) fn client(cfg: &EksConfig) -> Client {
    let conf = aws_sdk_autoscaling::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .credentials_provider(Credentials::new("twin", "twin", None, None, "ngm-twin"))
        .endpoint_url(cfg.moto_url.clone())
        .build();
    Client::from_conf(conf)
}

fn aws_err(what: &str, e: impl std::error::Error) -> EksError {
    let e = aws_sdk_autoscaling::error::DisplayErrorContext(e);
    EksError::server(format!("{what} failed in the Auto Scaling backend: {e}"))
}

/// An instance of a group, as DescribeAutoScalingGroups reports it.
#[derive(Clone, Debug)]
pub(crate) struct AsgInstance {
    pub id: String,
    pub instance_type: String,
    pub in_service: bool,
}

/// A group tagged for the cluster.
#[derive(Clone, Debug)]
pub(crate) struct AsgView {
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub zones: Vec<String>,
    pub instances: Vec<AsgInstance>,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub launch_configuration: Option<String>,
}

impl AsgView {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a new group is made of.
pub(crate) struct NewGroup<'a> {
    pub name: &'a str,
    pub image_id: &'a str,
    pub instance_type: &'a str,
    pub zones: &'a [String],
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub tags: Vec<(String, String)>,
}

/// Creates a launch configuration and the group (moto needs one of a launch configuration or
/// template to launch instances).
pub(crate) async fn create_group(client: &Client, g: NewGroup<'_>) -> Result<(), EksError> {
    let lc = format!("{}-lc", g.name);
    client
        .create_launch_configuration()
        .launch_configuration_name(&lc)
        .image_id(g.image_id)
        .instance_type(g.instance_type)
        .send()
        .await
        .map_err(|e| aws_err("CreateLaunchConfiguration", e))?;
    let tags = g.tags.iter().map(|(k, v)| {
        Tag::builder()
            .resource_id(g.name)
            .resource_type("auto-scaling-group")
            .key(k)
            .value(v)
            .propagate_at_launch(true)
            .build()
    });
    client
        .create_auto_scaling_group()
        .auto_scaling_group_name(g.name)
        .launch_configuration_name(&lc)
        .min_size(g.min)
        .max_size(g.max)
        .desired_capacity(g.desired)
        .set_availability_zones(Some(g.zones.to_vec()))
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .map_err(|e| aws_err("CreateAutoScalingGroup", e))?;
    Ok(())
}

pub(crate) async fn set_size(
    client: &Client,
    name: &str,
    min: i32,
    max: i32,
    desired: i32,
) -> Result<(), EksError> {
    client
        .update_auto_scaling_group()
        .auto_scaling_group_name(name)
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .send()
        .await
        .map_err(|e| aws_err("UpdateAutoScalingGroup", e))?;
    Ok(())
}

/// Terminates one instance and lowers the desired capacity with it, so the group does not
/// replace it.
pub(crate) async fn terminate(client: &Client, instance: &str) -> Result<(), EksError> {
    client
        .terminate_instance_in_auto_scaling_group()
        .instance_id(instance)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .map_err(|e| aws_err("TerminateInstanceInAutoScalingGroup", e))?;
    Ok(())
}

/// Terminates one instance and keeps the desired capacity, so the group launches a
/// replacement from its current launch configuration.
pub(crate) async fn replace(client: &Client, instance: &str) -> Result<(), EksError> {
    client
        .terminate_instance_in_auto_scaling_group()
        .instance_id(instance)
        .should_decrement_desired_capacity(false)
        .send()
        .await
        .map_err(|e| aws_err("TerminateInstanceInAutoScalingGroup", e))?;
    Ok(())
}

/// Makes the group launch `image_id` from now on: a new launch configuration (moto's
/// stand-in for a new launch template version), set on the group. Returns its name.
pub(crate) async fn launch_image(
    client: &Client,
    group: &str,
    image_id: &str,
    instance_type: &str,
) -> Result<String, EksError> {
    let lc = format!("{group}-lc-{image_id}");
    let previous = groups_named(client, &[group.to_string()])
        .await?
        .into_iter()
        .next()
        .and_then(|g| g.launch_configuration)
        .filter(|p| *p != lc);
    let created = client
        .create_launch_configuration()
        .launch_configuration_name(&lc)
        .image_id(image_id)
        .instance_type(instance_type)
        .send()
        .await;
    // A retried update finds the configuration made by the first attempt.
    if let Err(e) = created
        && !e.to_string().contains("AlreadyExists")
        && !format!("{e:?}").contains("AlreadyExists")
    {
        return Err(aws_err("CreateLaunchConfiguration", e));
    }
    client
        .update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .launch_configuration_name(&lc)
        .send()
        .await
        .map_err(|e| aws_err("UpdateAutoScalingGroup", e))?;
    // The configuration the group no longer uses (a launch template keeps its old versions;
    // a launch configuration left behind would outlive the group).
    if let Some(p) = previous {
        let _ = client
            .delete_launch_configuration()
            .launch_configuration_name(p)
            .send()
            .await;
    }
    Ok(lc)
}

/// Deletes the group with its instances, then its launch configurations.
pub(crate) async fn delete_group(client: &Client, name: &str) -> Result<(), EksError> {
    let current = groups_named(client, &[name.to_string()])
        .await
        .ok()
        .and_then(|g| g.into_iter().next())
        .and_then(|g| g.launch_configuration);
    client
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await
        .map_err(|e| aws_err("DeleteAutoScalingGroup", e))?;
    // A missing launch configuration only means an earlier attempt already removed it.
    for lc in std::iter::once(format!("{name}-lc")).chain(current) {
        let _ = client
            .delete_launch_configuration()
            .launch_configuration_name(lc)
            .send()
            .await;
    }
    Ok(())
}

/// Every group tagged `kubernetes.io/cluster/<cluster>`, all pages.
pub(crate) async fn cluster_groups(
    client: &Client,
    cluster: &str,
) -> Result<Vec<AsgView>, EksError> {
    describe(
        client,
        Some(format!("kubernetes.io/cluster/{cluster}")),
        &[],
    )
    .await
}

/// Every group carrying the tag key `key`, all pages.
pub(crate) async fn groups_with_tag(client: &Client, key: &str) -> Result<Vec<AsgView>, EksError> {
    describe(client, Some(key.to_string()), &[]).await
}

/// The named groups (those that still exist).
pub(crate) async fn groups_named(
    client: &Client,
    names: &[String],
) -> Result<Vec<AsgView>, EksError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    describe(client, None, names).await
}

/// SetDesiredCapacity without honouring cooldowns, as the Cluster Autoscaler calls it
/// (`auto_scaling_groups.go`, `HonorCooldown: false`).
pub(crate) async fn set_desired(client: &Client, name: &str, desired: i32) -> Result<(), EksError> {
    client
        .set_desired_capacity()
        .auto_scaling_group_name(name)
        .desired_capacity(desired)
        .honor_cooldown(false)
        .send()
        .await
        .map_err(|e| aws_err("SetDesiredCapacity", e))?;
    Ok(())
}

/// The instance type a launch configuration launches.
pub(crate) async fn launch_instance_type(
    client: &Client,
    launch_configuration: &str,
) -> Result<Option<String>, EksError> {
    let resp = client
        .describe_launch_configurations()
        .launch_configuration_names(launch_configuration)
        .send()
        .await
        .map_err(|e| aws_err("DescribeLaunchConfigurations", e))?;
    Ok(resp
        .launch_configurations()
        .first()
        .and_then(|l| l.instance_type())
        .map(str::to_string))
}

async fn describe(
    client: &Client,
    tag_key: Option<String>,
    names: &[String],
) -> Result<Vec<AsgView>, EksError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .describe_auto_scaling_groups()
            .set_next_token(token.take());
        if let Some(key) = &tag_key {
            req = req.filters(Filter::builder().name("tag-key").values(key).build());
        }
        if !names.is_empty() {
            req = req.set_auto_scaling_group_names(Some(names.to_vec()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| aws_err("DescribeAutoScalingGroups", e))?;
        for g in resp.auto_scaling_groups() {
            let instances = g
                .instances()
                .iter()
                .map(|i| AsgInstance {
                    id: i.instance_id().unwrap_or_default().to_string(),
                    instance_type: i.instance_type().unwrap_or_default().to_string(),
                    in_service: i.lifecycle_state().map(|s| s.as_str()) == Some("InService"),
                })
                .collect();
            out.push(AsgView {
                name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
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
                zones: g.availability_zones().to_vec(),
                instances,
                min: g.min_size().unwrap_or_default(),
                max: g.max_size().unwrap_or_default(),
                desired: g.desired_capacity().unwrap_or_default(),
                launch_configuration: g.launch_configuration_name().map(str::to_string),
            });
        }
        match resp.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}
