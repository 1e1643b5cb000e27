//! ngm's adapters: the ports of `ngm-core` implemented over the real aws-sdk-* clients and the
//! kube client, with every SDK or API error classified once, here.

pub mod auth;
pub mod aws;
pub mod kube;
