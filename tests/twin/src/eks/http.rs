//! The EKS REST API routes (restJson1, as aws-sdk-eks sends them): request URIs, methods and
//! member names from the SDK's `operation/*` and `protocol_serde/*` sources. Every request is
//! counted by operation, and may be failed by an injected [`super::CallFault`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::error::EksError;
use super::model::epoch;
use super::ops::not_found;
use super::{Eks, validate};

type Reply = Result<Response, EksError>;

/// The EKS API for `eks`, to serve alone or to merge into the twin's server (its paths,
/// `/clusters/...` and `/tags/...`, do not overlap the Kubernetes API's).
pub fn router(eks: Eks) -> Router {
    Router::new()
        .route("/clusters/{cluster}", get(describe_cluster))
        .route(
            "/clusters/{cluster}/node-groups",
            post(create_nodegroup).get(list_nodegroups),
        )
        .route(
            "/clusters/{cluster}/node-groups/{nodegroup}",
            get(describe_nodegroup).delete(delete_nodegroup),
        )
        .route(
            "/clusters/{cluster}/node-groups/{nodegroup}/update-config",
            post(update_nodegroup_config),
        )
        .route(
            "/clusters/{cluster}/node-groups/{nodegroup}/update-version",
            post(update_nodegroup_version),
        )
        .route("/clusters/{cluster}/updates/{id}", get(describe_update))
        .route(
            "/tags/{arn}",
            get(list_tags_for_resource)
                .post(tag_resource)
                .delete(untag_resource),
        )
        .with_state(eks)
}

fn ok(v: Value) -> Reply {
    Ok(axum::Json(v).into_response())
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn body_json(body: &Bytes) -> Result<Value, EksError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        EksError::invalid_parameter(format!("The request body is not valid JSON: {e}"))
    })
}

/// The caller of an AWS SDK request: its app id (`app/<id>`, from `AWS_SDK_UA_APP_ID`) in
/// `x-amz-user-agent` or `User-Agent`, else [`crate::store::UNKNOWN_CALLER`].
pub fn aws_caller(headers: &HeaderMap) -> String {
    ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .flat_map(str::split_whitespace)
        .find(|w| w.starts_with("app/") && w.len() > 4)
        .unwrap_or(crate::store::UNKNOWN_CALLER)
        .to_string()
}

impl Eks {
    /// Counts the call, answers an injected fault, and checks the cluster name.
    fn enter(
        &self,
        operation: &str,
        cluster: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), EksError> {
        let caller = aws_caller(headers);
        self.inner.counters.hit(operation, &caller);
        if let Some(e) = self.inner.faults.take_call_fault(operation, &caller) {
            return Err(e);
        }
        match cluster {
            Some(c) if c != self.inner.cfg.cluster_name => Err(EksError::not_found(format!(
                "No cluster found for name: {c}."
            ))),
            _ => Ok(()),
        }
    }

    fn cluster_json(&self) -> Value {
        let cfg = &self.inner.cfg;
        let tags = self.state().cluster_tags.clone();
        let mut v = json!({
            "name": cfg.cluster_name,
            "arn": cfg.cluster_arn(),
            "createdAt": epoch(self.inner.created_at),
            "version": cfg.kubernetes_version,
            "endpoint": cfg.endpoint,
            "roleArn": format!("arn:aws:iam::{}:role/eks-cluster-role", cfg.account_id),
            "resourcesVpcConfig": {
                "subnetIds": cfg.subnets.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
                "securityGroupIds": [],
                "vpcId": "vpc-00000000000000001",
                "endpointPublicAccess": true,
                "endpointPrivateAccess": false,
            },
            "status": "ACTIVE",
            "platformVersion": "eks.1",
            "tags": tags,
        });
        if let Some(ca) = &cfg.certificate_authority {
            v["certificateAuthority"] = json!({ "data": ca });
        }
        v
    }

    /// The tags of the resource an ARN names, through `f`; `NotFoundException` otherwise.
    fn with_tags<T>(
        &self,
        arn: &str,
        f: impl FnOnce(&mut std::collections::BTreeMap<String, String>) -> T,
    ) -> Result<T, EksError> {
        let mut st = self.state();
        if arn == self.inner.cfg.cluster_arn() {
            return Ok(f(&mut st.cluster_tags));
        }
        match st.groups.values_mut().find(|g| g.arn == arn) {
            Some(g) => Ok(f(&mut g.spec.tags)),
            None => Err(EksError::tag_not_found(format!("Resource {arn} not found"))),
        }
    }
}

async fn describe_cluster(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
) -> Reply {
    eks.enter("DescribeCluster", Some(&cluster), &headers)?;
    ok(json!({ "cluster": eks.cluster_json() }))
}

async fn create_nodegroup(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
    body: Bytes,
) -> Reply {
    eks.enter("CreateNodegroup", Some(&cluster), &headers)?;
    let group = eks.create_nodegroup(&body_json(&body)?)?;
    ok(json!({ "nodegroup": group.to_json() }))
}

async fn list_nodegroups(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path(cluster): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    eks.enter("ListNodegroups", Some(&cluster), &headers)?;
    let mut max = 100usize;
    let mut after: Option<String> = None;
    for (k, v) in query_pairs(&q) {
        match k.as_str() {
            "maxResults" => {
                max = v
                    .parse::<usize>()
                    .ok()
                    .filter(|m| (1..=100).contains(m))
                    .ok_or_else(|| {
                        EksError::invalid_parameter("maxResults must be between 1 and 100")
                    })?;
            }
            "nextToken" => {
                let raw = URL_SAFE_NO_PAD
                    .decode(v.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| EksError::invalid_parameter("The nextToken is not valid"))?;
                after = Some(raw);
            }
            _ => {}
        }
    }
    let names: Vec<String> = eks
        .state()
        .groups
        .keys()
        .filter(|n| after.as_ref().is_none_or(|a| n.as_str() > a.as_str()))
        .cloned()
        .collect();
    let page: Vec<String> = names.iter().take(max).cloned().collect();
    let mut v = json!({ "nodegroups": page });
    if names.len() > max
        && let Some(last) = page.last()
    {
        v["nextToken"] = json!(URL_SAFE_NO_PAD.encode(last.as_bytes()));
    }
    ok(v)
}

async fn describe_nodegroup(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path((cluster, nodegroup)): Path<(String, String)>,
) -> Reply {
    eks.enter("DescribeNodegroup", Some(&cluster), &headers)?;
    let g = eks
        .nodegroup(&nodegroup)
        .ok_or_else(|| not_found(&nodegroup, &cluster))?;
    ok(json!({ "nodegroup": g.to_json() }))
}

async fn delete_nodegroup(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path((cluster, nodegroup)): Path<(String, String)>,
) -> Reply {
    eks.enter("DeleteNodegroup", Some(&cluster), &headers)?;
    let g = eks.delete_nodegroup(&nodegroup)?;
    ok(json!({ "nodegroup": g.to_json() }))
}

async fn update_nodegroup_config(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path((cluster, nodegroup)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    eks.enter("UpdateNodegroupConfig", Some(&cluster), &headers)?;
    let update = eks.update_nodegroup_config(&nodegroup, &body_json(&body)?)?;
    ok(json!({ "update": update.to_json() }))
}

async fn update_nodegroup_version(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path((cluster, nodegroup)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    eks.enter("UpdateNodegroupVersion", Some(&cluster), &headers)?;
    let update = eks.update_nodegroup_version(&nodegroup, &body_json(&body)?)?;
    ok(json!({ "update": update.to_json() }))
}

async fn describe_update(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path((cluster, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Reply {
    eks.enter("DescribeUpdate", Some(&cluster), &headers)?;
    let nodegroup = query_pairs(&q)
        .into_iter()
        .find(|(k, _)| k == "nodegroupName")
        .map(|(_, v)| v);
    let st = eks.state();
    let update = st
        .updates
        .get(&id)
        .filter(|u| nodegroup.as_ref().is_none_or(|n| *n == u.nodegroup))
        .ok_or_else(|| EksError::not_found(format!("No update found for ID: {id}")))?;
    ok(json!({ "update": update.to_json() }))
}

async fn list_tags_for_resource(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path(arn): Path<String>,
) -> Reply {
    eks.enter("ListTagsForResource", None, &headers)?;
    let tags = eks.with_tags(&arn, |t| t.clone())?;
    ok(json!({ "tags": tags }))
}

async fn tag_resource(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path(arn): Path<String>,
    body: Bytes,
) -> Reply {
    eks.enter("TagResource", None, &headers)?;
    let body = body_json(&body)?;
    let new: std::collections::BTreeMap<String, String> = validate::opt(&body, "tags")
        .map_err(|e| EksError::bad_request(e.message))?
        .unwrap_or_default();
    if new.keys().any(|k| k.starts_with("aws:")) {
        return Err(EksError::bad_request(
            "Tag keys starting with aws: are reserved",
        ));
    }
    eks.with_tags(&arn, |t| {
        t.extend(new);
        // EKS allows at most 50 tags on a resource.
        if t.len() > 50 {
            return Err(EksError::bad_request("A resource can have at most 50 tags"));
        }
        Ok(())
    })??;
    ok(json!({}))
}

async fn untag_resource(
    State(eks): State<Eks>,
    headers: HeaderMap,
    Path(arn): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    eks.enter("UntagResource", None, &headers)?;
    let keys: Vec<String> = query_pairs(&q)
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    eks.with_tags(&arn, |t| {
        for k in &keys {
            t.remove(k);
        }
    })?;
    ok(json!({}))
}
