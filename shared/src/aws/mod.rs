//! The AWS backends, behind the same ports as the local ones.

pub mod dynamo;
pub mod lambda;
pub mod sqs;
pub mod ssm;

/// An SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for an emulator). Build it once per process or Lambda container.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
