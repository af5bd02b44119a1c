//! The `api` Lambda function: API Gateway (HTTP API) events served by the same axum
//! router as `herald serve`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time() // CloudWatch stamps each line
        .init();
    let data_dir = std::env::var("HERALD_DATA_DIR").unwrap_or_else(|_| "/tmp/herald".into());
    // Built once per container, reused by every invocation.
    let app = herald_fn_api::app(std::path::Path::new(&data_dir))?;
    lambda_http::run(app).await
}
