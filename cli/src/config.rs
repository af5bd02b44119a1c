//! `herald serve` configuration: flags or `HERALD_*` environment variables, checked at
//! start-up so a mistake stops the server with a message naming the setting.

use clap::Args;
use herald_core::channels::{SmtpConfig, SmtpTls, WebhookSecret};
use herald_core::net::NetworkPolicy;
use herald_core::pipeline::retry::{RetryPolicy, parse_schedule};
use herald_core::workers::WorkerConfig;
use herald_http::Limits;
use herald_http::server::ServerLimits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HERALD_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where recipients reach this server (unsubscribe links point here); by default
    /// http:// and the listening address.
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// An admin API key to install at start-up (for automation); at least 24 characters.
    #[arg(long, env = "HERALD_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Webhook signing secret (`whsec_` + base64). Generated and kept in the database
    /// when not given.
    #[arg(long, env = "HERALD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// The key integration secrets are encrypted with (base64 of 32 bytes). By default
    /// a key is generated into `master.key` in the data directory (mode 0600).
    #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// How long to wait for a webhook endpoint, in milliseconds.
    #[arg(long, env = "HERALD_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// SMTP server; email goes to the log provider when unset.
    #[arg(long, env = "HERALD_SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "HERALD_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,
    /// none, starttls or tls.
    #[arg(long, env = "HERALD_SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: String,
    #[arg(long, env = "HERALD_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "HERALD_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Sender of every email, e.g. "Herald <noreply@example.com>".
    #[arg(long, env = "HERALD_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// `List-Unsubscribe` header value; `{delivery_id}` is filled in.
    #[arg(long, env = "HERALD_SMTP_LIST_UNSUBSCRIBE")]
    pub smtp_list_unsubscribe: Option<String>,
    /// Attempts per delivery before it is dead-lettered.
    #[arg(long, env = "HERALD_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "HERALD_RETRY_BASE_MS", default_value_t = 30_000)]
    pub retry_base_ms: u64,
    #[arg(long, env = "HERALD_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub retry_max_ms: u64,
    /// Webhook retry delays after each failed attempt (the last repeats).
    #[arg(long, env = "HERALD_WEBHOOK_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h")]
    pub webhook_retry_schedule: String,
    /// Waits before each poll of a receipt, for vendors that report only when asked
    /// (DingTalk work notifications), the first counted from the send.
    #[arg(long, env = "HERALD_RECEIPT_POLL_SCHEDULE", default_value = "1m,5m,30m,2h,6h,12h")]
    pub receipt_poll_schedule: String,
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    #[arg(long, env = "HERALD_MAX_RECIPIENTS", default_value_t = 1000)]
    pub max_recipients: usize,
    #[arg(long, env = "HERALD_DISPATCH_WORKERS", default_value_t = 16)]
    pub dispatch_workers: usize,
    /// Worker tasks per channel; each sends up to 8 deliveries at once.
    #[arg(long, env = "HERALD_SEND_WORKERS", default_value_t = 16)]
    pub send_workers: usize,
    /// Niceness (Linux, 0 to 19) of the threads that dispatch and send. 0, the
    /// default, shares the CPU evenly with the API, so deliveries keep pace with
    /// intake; above it, a saturated machine accepts more requests and lets a backlog
    /// build (docs/performance.md).
    #[arg(long, env = "HERALD_WORKER_NICE", default_value_t = 0)]
    pub worker_nice: i32,
    /// Log format: pretty or json.
    #[arg(long, env = "HERALD_LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
    /// `http` sends webhooks; `log` hands them to the log provider instead (see
    /// /v1/log-messages), for trying Herald out and for fuzzing it offline.
    #[arg(long, env = "HERALD_WEBHOOK_PROVIDER", default_value = "http")]
    pub webhook_provider: String,
    /// Private ranges webhooks may reach after all (comma-separated CIDRs, such as
    /// 127.0.0.0/8 for local development); public addresses are always allowed.
    #[arg(long, env = "HERALD_WEBHOOK_ALLOW_NETWORKS", default_value = "")]
    pub webhook_allow_networks: String,
    /// Seconds a client has to send a request's headers (and a kept-alive connection
    /// may sit idle).
    #[arg(long, env = "HERALD_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request, body included, may take before it gets a 408.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Open connections at most; more wait in the listen backlog.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// The most bytes one template part may build while it renders.
    #[arg(long, env = "HERALD_RENDER_MAX_BYTES", default_value_t = herald_core::templates::DEFAULT_MAX_PART_BYTES)]
    pub render_max_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Directory holding the SQLite database.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./herald-data")]
    pub data_dir: PathBuf,
}

impl DataArgs {
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("herald.db")
    }
}

/// A setting that failed its check.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

fn bad(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { setting, message: message.into() }
}

/// The checked configuration.
pub struct Settings {
    pub addr: SocketAddr,
    /// None: http:// and the address actually bound (the port may be chosen by the OS).
    pub public_url: Option<String>,
    pub admin_key: Option<String>,
    pub webhook_secret: Option<WebhookSecret>,
    pub master_key: Option<String>,
    pub webhook_timeout: Duration,
    pub smtp: Option<SmtpConfig>,
    pub limits: Limits,
    pub workers: WorkerConfig,
    pub json_logs: bool,
    /// The worker threads' niceness (see `ServeArgs::worker_nice`).
    pub worker_nice: i32,
    pub networks: NetworkPolicy,
    pub render_max_bytes: usize,
    pub server: ServerLimits,
    /// Whether webhooks go over HTTP (else to the log provider).
    pub webhooks_over_http: bool,
}

impl ServeArgs {
    pub fn check(&self) -> Result<Settings, ConfigError> {
        let addr: SocketAddr = self.addr.parse().map_err(|_| {
            bad("HERALD_ADDR", format!("'{}' is not an address like 127.0.0.1:8080", self.addr))
        })?;
        let public_url = match &self.public_url {
            Some(url) => {
                let parsed = url::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                parsed.ok_or_else(|| {
                    bad("HERALD_PUBLIC_URL", "an http(s) URL like https://herald.example.com")
                })?;
                Some(url.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        if let Some(key) = &self.admin_key
            && (key.len() < 24 || key.chars().any(char::is_whitespace))
        {
            return Err(bad("HERALD_ADMIN_KEY", "at least 24 characters, no spaces"));
        }
        let webhook_secret = self
            .webhook_secret
            .as_deref()
            .map(WebhookSecret::parse)
            .transpose()
            .map_err(|m| bad("HERALD_WEBHOOK_SECRET", m))?;
        if !(1..=120_000).contains(&self.webhook_timeout_ms) {
            return Err(bad("HERALD_WEBHOOK_TIMEOUT_MS", "1 to 120000"));
        }
        let smtp = self.smtp()?;
        if !(1..=50).contains(&self.max_attempts) {
            return Err(bad("HERALD_MAX_ATTEMPTS", "1 to 50"));
        }
        if self.retry_base_ms == 0 || self.retry_max_ms < self.retry_base_ms {
            return Err(bad("HERALD_RETRY_BASE_MS", "above 0 and at most HERALD_RETRY_MAX_MS"));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(bad("HERALD_MAX_BODY_BYTES", "1 KiB to 16 MiB"));
        }
        if !(1..=100_000).contains(&self.max_recipients) {
            return Err(bad("HERALD_MAX_RECIPIENTS", "1 to 100000"));
        }
        if !(1..=64).contains(&self.dispatch_workers) {
            return Err(bad("HERALD_DISPATCH_WORKERS", "1 to 64"));
        }
        if !(1..=256).contains(&self.send_workers) {
            return Err(bad("HERALD_SEND_WORKERS", "1 to 256"));
        }
        if !(0..=19).contains(&self.worker_nice) {
            return Err(bad("HERALD_WORKER_NICE", "0 to 19"));
        }
        let json_logs = match self.log_format.as_str() {
            "pretty" => false,
            "json" => true,
            _ => return Err(bad("HERALD_LOG_FORMAT", "pretty or json")),
        };
        let webhook_timeout = Duration::from_millis(self.webhook_timeout_ms);
        let webhook_schedule = parse_schedule(&self.webhook_retry_schedule)
            .map_err(|m| bad("HERALD_WEBHOOK_RETRY_SCHEDULE", m))?;
        let receipt_poll_schedule = parse_schedule(&self.receipt_poll_schedule)
            .map_err(|m| bad("HERALD_RECEIPT_POLL_SCHEDULE", m))?;
        let networks = NetworkPolicy::parse(&self.webhook_allow_networks)
            .map_err(|m| bad("HERALD_WEBHOOK_ALLOW_NETWORKS", m))?;
        if !(1024..=64 * 1024 * 1024).contains(&self.render_max_bytes) {
            return Err(bad("HERALD_RENDER_MAX_BYTES", "1 KiB to 64 MiB"));
        }
        if !(1..=300).contains(&self.header_timeout_secs) {
            return Err(bad("HERALD_HEADER_TIMEOUT_SECS", "1 to 300"));
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            return Err(bad("HERALD_REQUEST_TIMEOUT_SECS", "1 to 600"));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(bad("HERALD_MAX_CONNECTIONS", "1 to 1000000"));
        }
        let server = ServerLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: self.max_connections,
            ..ServerLimits::default()
        };
        let webhooks_over_http = match self.webhook_provider.as_str() {
            "http" => true,
            "log" => false,
            _ => return Err(bad("HERALD_WEBHOOK_PROVIDER", "http or log")),
        };
        Ok(Settings {
            webhooks_over_http,
            server,
            networks,
            render_max_bytes: self.render_max_bytes,
            addr,
            public_url,
            admin_key: self.admin_key.clone(),
            webhook_secret,
            master_key: self.master_key.clone(),
            webhook_timeout,
            smtp,
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_recipients: self.max_recipients,
                ..Limits::default()
            },
            workers: WorkerConfig {
                dispatch_workers: self.dispatch_workers,
                send_workers: self.send_workers,
                // A lease must outlast the slowest send it covers.
                visibility: webhook_timeout.max(Duration::from_secs(30)) * 2,
                retry: RetryPolicy {
                    max_attempts: self.max_attempts,
                    base_delay: Duration::from_millis(self.retry_base_ms),
                    max_delay: Duration::from_millis(self.retry_max_ms),
                    webhook_schedule,
                    receipt_poll_schedule,
                },
                ..WorkerConfig::default()
            },
            json_logs,
            worker_nice: self.worker_nice,
        })
    }

    fn smtp(&self) -> Result<Option<SmtpConfig>, ConfigError> {
        let Some(host) = self.smtp_host.clone().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let tls = self.smtp_tls.parse().map_err(|m: String| bad("HERALD_SMTP_TLS", m))?;
        let from = self
            .smtp_from
            .as_deref()
            .ok_or_else(|| bad("HERALD_SMTP_FROM", "required when HERALD_SMTP_HOST is set"))?
            .parse()
            .map_err(|e| bad("HERALD_SMTP_FROM", format!("not a valid sender address: {e}")))?;
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return Err(bad(
                "HERALD_SMTP_USERNAME",
                "give both a username and a password, or neither",
            ));
        }
        if tls == SmtpTls::None && self.smtp_username.is_some() {
            return Err(bad("HERALD_SMTP_TLS", "refusing to send SMTP credentials without TLS"));
        }
        Ok(Some(SmtpConfig {
            host,
            port: self.smtp_port,
            tls,
            username: self.smtp_username.clone(),
            password: self.smtp_password.clone(),
            from,
            list_unsubscribe: self.smtp_list_unsubscribe.clone(),
            timeout: Duration::from_secs(30),
        }))
    }
}
