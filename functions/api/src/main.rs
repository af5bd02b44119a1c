//! The `api` function: API Gateway (HTTP API) events served by the same axum router as
//! `herald serve`, over DynamoDB and SQS when `HERALD_TABLE` is set (as the SAM
//! template does), else over SQLite in `HERALD_DATA_DIR` (default `/tmp/herald`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    herald_aws::lambda::init_tracing();
    // Built once per container, reused by every invocation.
    // An empty HERALD_TABLE counts as none (`sam local invoke --env-vars` can blank a
    // variable but not remove it).
    let app = if std::env::var("HERALD_TABLE").is_ok_and(|table| !table.is_empty()) {
        let backends = herald_aws::lambda::Backends::from_env().await?;
        backends.ensure_admin_key().await?;
        herald_fn_api::aws_app(&backends)
    } else {
        let data_dir = std::env::var("HERALD_DATA_DIR").unwrap_or_else(|_| "/tmp/herald".into());
        herald_fn_api::local_app(std::path::Path::new(&data_dir))?
    };
    lambda_http::run(app).await
}
