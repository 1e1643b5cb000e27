//! EC2 launch templates: read a version, add a version on top of one, or clone a template.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateVersion as Ec2Version,
    RequestLaunchTemplateData,
};
use ngm_core::model::{LaunchTemplateOverrides, LaunchTemplateRef, LaunchTemplateVersion};
use ngm_core::ports::{Ec2Port, PortError, PortResult};

use super::none_if_missing;

#[derive(Debug, Clone)]
pub struct Ec2Adapter {
    client: Client,
}

impl Ec2Adapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn version_of(v: &Ec2Version) -> LaunchTemplateVersion {
    let data = v.launch_template_data();
    LaunchTemplateVersion {
        id: v.launch_template_id().unwrap_or_default().to_owned(),
        name: v.launch_template_name().unwrap_or_default().to_owned(),
        version: v.version_number().unwrap_or(0),
        image_id: data.and_then(|d| d.image_id()).map(str::to_owned),
        instance_type: data
            .and_then(|d| d.instance_type())
            .map(|t| t.as_str().to_owned()),
        has_user_data: data.and_then(|d| d.user_data()).is_some(),
        // The fields a clone carries over; the rest of LaunchTemplateData is not read by ngm.
        data: serde_json::json!({
            "imageId": data.and_then(|d| d.image_id()),
            "instanceType": data.and_then(|d| d.instance_type()).map(|t| t.as_str()),
            "keyName": data.and_then(|d| d.key_name()),
            "userData": data.and_then(|d| d.user_data()),
            "securityGroupIds": data.map(|d| d.security_group_ids()).unwrap_or_default(),
            "iamInstanceProfileArn": data
                .and_then(|d| d.iam_instance_profile())
                .and_then(|p| p.arn()),
            "iamInstanceProfileName": data
                .and_then(|d| d.iam_instance_profile())
                .and_then(|p| p.name()),
            "httpTokens": data
                .and_then(|d| d.metadata_options())
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str()),
            "httpPutResponseHopLimit": data
                .and_then(|d| d.metadata_options())
                .and_then(|m| m.http_put_response_hop_limit()),
        }),
    }
}

fn overrides_data(o: &LaunchTemplateOverrides) -> RequestLaunchTemplateData {
    let mut d = RequestLaunchTemplateData::builder()
        .set_image_id(o.image_id.clone())
        .set_instance_type(o.instance_type.as_deref().map(InstanceType::from))
        .set_user_data(o.user_data.clone())
        .set_key_name(o.key_name.clone());
    if !o.security_group_ids.is_empty() {
        d = d.set_security_group_ids(Some(o.security_group_ids.clone()));
    }
    d.build()
}

/// The source's carried-over fields with the overrides on top, for a new template.
fn clone_data(
    source: &LaunchTemplateVersion,
    o: &LaunchTemplateOverrides,
) -> RequestLaunchTemplateData {
    let s = |k: &str| {
        source
            .data
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let groups: Vec<String> = source
        .data
        .get("securityGroupIds")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let profile = (s("iamInstanceProfileArn").is_some() || s("iamInstanceProfileName").is_some())
        .then(|| {
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .set_arn(s("iamInstanceProfileArn"))
                .set_name(
                    s("iamInstanceProfileName").filter(|_| s("iamInstanceProfileArn").is_none()),
                )
                .build()
        });
    let metadata = s("httpTokens").map(|t| {
        LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .http_tokens(LaunchTemplateHttpTokensState::from(t.as_str()))
            .set_http_put_response_hop_limit(
                source
                    .data
                    .get("httpPutResponseHopLimit")
                    .and_then(|v| v.as_i64())
                    .and_then(|v| i32::try_from(v).ok()),
            )
            .build()
    });
    RequestLaunchTemplateData::builder()
        .set_image_id(o.image_id.clone().or(s("imageId")))
        .set_instance_type(
            o.instance_type
                .clone()
                .or(s("instanceType"))
                .as_deref()
                .map(InstanceType::from),
        )
        .set_user_data(o.user_data.clone().or(s("userData")))
        .set_key_name(o.key_name.clone().or(s("keyName")))
        .set_security_group_ids(Some(if o.security_group_ids.is_empty() {
            groups
        } else {
            o.security_group_ids.clone()
        }))
        .set_iam_instance_profile(profile)
        .set_metadata_options(metadata)
        .build()
}

#[async_trait]
impl Ec2Port for Ec2Adapter {
    async fn subnet_zones(&self, subnets: &[String]) -> PortResult<BTreeMap<String, String>> {
        if subnets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let out = crate::send!(
            "ec2:DescribeSubnets",
            self.client
                .describe_subnets()
                .set_subnet_ids(Some(subnets.to_vec()))
        )?;
        Ok(out
            .subnets()
            .iter()
            .filter_map(|s| Some((s.subnet_id()?.to_owned(), s.availability_zone()?.to_owned())))
            .collect())
    }

    async fn describe_launch_template_version(
        &self,
        template: &LaunchTemplateRef,
    ) -> PortResult<Option<LaunchTemplateVersion>> {
        let out = crate::send!(
            "ec2:DescribeLaunchTemplateVersions",
            self.client
                .describe_launch_template_versions()
                .set_launch_template_id(template.id.clone())
                .set_launch_template_name(template.name.clone().filter(|_| template.id.is_none()))
                .versions(template.version.as_deref().unwrap_or("$Default"))
        );
        Ok(
            none_if_missing(out)?
                .and_then(|o| o.launch_template_versions().first().map(version_of)),
        )
    }

    async fn create_launch_template_version(
        &self,
        template: &LaunchTemplateRef,
        overrides: &LaunchTemplateOverrides,
        client_token: &str,
    ) -> PortResult<LaunchTemplateVersion> {
        // SourceVersion makes EC2 copy every field of the source and apply only the overrides.
        let out = crate::send!(
            "ec2:CreateLaunchTemplateVersion",
            self.client
                .create_launch_template_version()
                .set_launch_template_id(template.id.clone())
                .set_launch_template_name(template.name.clone().filter(|_| template.id.is_none()))
                .set_source_version(template.version.clone())
                .launch_template_data(overrides_data(overrides))
                .client_token(client_token)
                .version_description("created by ngm")
        )?;
        out.launch_template_version()
            .map(version_of)
            .ok_or_else(|| PortError::Unexpected {
                op: "ec2:CreateLaunchTemplateVersion".into(),
                detail: "the answer carried no version".into(),
            })
    }

    async fn create_launch_template(
        &self,
        name: &str,
        source: &LaunchTemplateVersion,
        overrides: &LaunchTemplateOverrides,
        client_token: &str,
    ) -> PortResult<LaunchTemplateVersion> {
        let out = crate::send!(
            "ec2:CreateLaunchTemplate",
            self.client
                .create_launch_template()
                .launch_template_name(name)
                .launch_template_data(clone_data(source, overrides))
                .client_token(client_token)
                .version_description("cloned by ngm")
        )?;
        let lt = out.launch_template().ok_or_else(|| PortError::Unexpected {
            op: "ec2:CreateLaunchTemplate".into(),
            detail: "the answer carried no template".into(),
        })?;
        let created = LaunchTemplateRef {
            id: lt.launch_template_id().map(str::to_owned),
            name: None,
            version: Some("1".into()),
        };
        self.describe_launch_template_version(&created)
            .await?
            .ok_or_else(|| PortError::Unexpected {
                op: "ec2:DescribeLaunchTemplateVersions".into(),
                detail: format!("the new template {name} has no version 1"),
            })
    }
}
