//! The AWS SDK configuration every Herald component on AWS loads: region, credentials
//! and `AWS_ENDPOINT_URL` from the usual environment, over an HTTPS client on rustls
//! with ring. The SDK's default client brings aws-lc-rs, a second crypto library next to
//! the ring that reqwest already links: leaving it out makes each Lambda smaller and
//! every build shorter (docs/performance.md).

use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

pub async fn sdk_config() -> aws_config::SdkConfig {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https).load().await
}
