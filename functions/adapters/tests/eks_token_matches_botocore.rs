//! The EKS token checked against an independent SigV4 implementation: botocore, building the
//! same presigned URL that `aws eks get-token` builds, with the same fixed credentials and time.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ngm_adapters::auth::mint_token;

fn botocore_url(cluster: &str, region: &str, epoch: u64, creds: &[&str]) -> String {
    let python = ngm_testkit::moto::python();
    let out = Command::new(&python)
        .arg(ngm_testkit::moto::repo_root().join("tests/aws/botocore_eks_token.py"))
        .args([cluster, region, &epoch.to_string()])
        .args(creds)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} (scripts/bootstrap installs it): {e}",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Splits a URL into its base and a map of query parameters (order is not part of SigV4).
fn parts(url: &str) -> (String, BTreeMap<String, String>) {
    let (base, query) = url.split_once('?').expect("query");
    let params = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (base.to_owned(), params)
}

fn ours(cluster: &str, region: &str, epoch: u64, creds: &Credentials) -> String {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    let token = mint_token(creds, region, cluster, now).expect("token");
    let b64 = token.expose().strip_prefix("k8s-aws-v1.").expect("prefix");
    String::from_utf8(URL_SAFE_NO_PAD.decode(b64).expect("unpadded base64url")).unwrap()
}

#[test]
fn token_url_equals_botocores_presigned_get_caller_identity() {
    let (akid, secret) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let creds = Credentials::new(akid, secret, None, None, "test");
    for (cluster, region, epoch) in [
        ("prod", "eu-west-1", 1_700_000_000),
        ("my-cluster_2", "us-east-1", 1_800_000_123),
    ] {
        let theirs = parts(&botocore_url(cluster, region, epoch, &[akid, secret]));
        let mine = parts(&ours(cluster, region, epoch, &creds));
        assert_eq!(mine, theirs, "cluster {cluster} in {region}");
        assert!(mine.1.contains_key("X-Amz-Signature"));
    }
}

#[test]
fn token_with_a_session_token_equals_botocores() {
    let (akid, secret, session) = (
        "ASIAEXAMPLE",
        "c2VjcmV0/key+x",
        "FwoGZXIvYXdzEJr//session==",
    );
    let creds = Credentials::new(akid, secret, Some(session.to_owned()), None, "test");
    let theirs = parts(&botocore_url(
        "blue",
        "ap-southeast-2",
        1_750_000_000,
        &[akid, secret, session],
    ));
    let mine = parts(&ours("blue", "ap-southeast-2", 1_750_000_000, &creds));
    assert_eq!(mine, theirs);
}
