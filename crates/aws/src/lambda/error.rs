//! Why a function cannot start, or an invocation fails as a whole. Lambda logs the
//! error; at init it also retries the cold start, and a failed track invocation is
//! retried by its event source.

use herald_core::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("{0} must be set (the SAM template sets it)")]
    MissingSetting(&'static str),
    #[error("{setting}: {message}")]
    BadSetting { setting: &'static str, message: String },
    #[error("SSM parameter {name}: {message}")]
    Parameter { name: String, message: String },
    #[error("an SES event that is not JSON: {0}")]
    BadSesEvent(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}
