//! ngm's adapters: the ports of `ngm-core` implemented over the real aws-sdk-* clients and the
//! kube client, with every SDK or API error classified once, here.

pub mod auth;
pub mod aws;
pub mod kube;
pub mod retry;

/// The AWS SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL*`,
/// `AWS_SDK_UA_APP_ID`), with the SDK's own retries off: every adapter call retries under
/// [`retry::call`] instead, one policy for Kubernetes and AWS.
pub async fn load_sdk_config() -> aws_types::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry::sdk_retry_config())
        .load()
        .await
}

/// Installs the rustls crypto provider (aws-lc-rs) for the process. kube and the AWS SDK in
/// one binary otherwise panic at the first kube call ("Could not automatically determine the
/// process-level CryptoProvider"), so every `main` calls this first. Calling it twice is fine.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
