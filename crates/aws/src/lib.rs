//! The AWS backends, behind the same ports as the local ones.

pub mod dynamo;
pub mod lambda;
pub mod sqs;
#[cfg(feature = "senders")]
pub mod ssm;

/// An SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` for an emulator). Build it once per process or Lambda container.
pub use herald_core::aws_sdk::sdk_config;

/// An AWS SDK error as a store error: throttling, timeouts, network failures and
/// server errors are `Unavailable` (retried later), the rest `Backend`. SDK errors
/// print only their outermost layer; the context names the real cause.
pub(crate) fn store_error<E, R>(
    service: &str,
    error: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> herald_core::ports::StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    let unavailable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("LimitExceeded")
                || matches!(code, "ServiceUnavailable" | "InternalServerError" | "InternalFailure")
        }
        _ => false,
    };
    let text = format!("{service}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&error));
    if unavailable {
        herald_core::ports::StoreError::Unavailable(text)
    } else {
        herald_core::ports::StoreError::Backend(text)
    }
}
