//! `herald send` and `herald notifications`: the CLI as a client of any Herald API,
//! local or on AWS, at `HERALD_URL` with the key in `HERALD_KEY`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::BufRead;

/// Where the API is and the key to call it with.
#[derive(Args, Clone)]
pub struct Endpoint {
    /// The API's base URL (herald serve's, or the HTTP API's on AWS).
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key with the scopes the command needs (send, read).
    #[arg(long, env = "HERALD_KEY", hide_env_values = true)]
    pub key: String,
}

/// An API client that turns problem+json answers into errors that say what was wrong.
pub struct Api {
    http: reqwest::Client,
    endpoint: Endpoint,
}

impl Api {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { http: reqwest::Client::new(), endpoint }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.endpoint.url.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&self.endpoint.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {}", describe_problem(&answer, ""));
        }
        Ok(answer)
    }
}

/// A problem as one line: each field at fault with its message, else the detail.
/// `within` is dropped from the front of field paths (`items[3]` for a batch item).
pub fn describe_problem(problem: &Value, within: &str) -> String {
    let fields: Vec<String> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let field = e["field"].as_str().unwrap_or("?");
            let field = field.strip_prefix(within).map(|f| f.trim_start_matches('.'));
            let field = match field {
                Some("") => "(item)",
                Some(f) => f,
                None => e["field"].as_str().unwrap_or("?"),
            };
            format!("{field}: {}", e["message"].as_str().unwrap_or(""))
        })
        .collect();
    if fields.is_empty() {
        problem["detail"].as_str().unwrap_or("no detail").to_owned()
    } else {
        fields.join("; ")
    }
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// A JSON Lines file of notifications (one send body per line, each may carry its
    /// own `idempotency_key`), or `-` for standard input; sent in batches of 100.
    #[arg(long, conflicts_with_all = ["to", "json"])]
    file: Option<String>,
    /// Gives each line without a key the key `<prefix>-<line number>`, so running the
    /// same file again sends only what did not get through.
    #[arg(long, requires = "file")]
    idempotency_prefix: Option<String>,
    /// One notification's whole body, as JSON.
    #[arg(long, conflicts_with = "to")]
    json: Option<String>,
    /// A recipient: an email address, a phone number (+E.164), an https:// webhook
    /// URL, `user:<id>` or `group:<id>`. Repeat for more.
    #[arg(long)]
    to: Vec<String>,
    /// A channel to send on (email, sms, webhook). Repeat for more.
    #[arg(long = "channel")]
    channels: Vec<String>,
    #[arg(long)]
    subject: Option<String>,
    /// The text of the email or SMS.
    #[arg(long)]
    text: Option<String>,
    /// The JSON object a webhook delivers.
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    priority: Option<String>,
    #[arg(long)]
    category: Option<String>,
    /// Makes the send safe to repeat.
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// A `--to` value as a recipient object.
fn recipient(to: &str) -> Value {
    if let Some(user) = to.strip_prefix("user:") {
        json!({"user_id": user})
    } else if let Some(group) = to.strip_prefix("group:") {
        json!({"group": group})
    } else if to.starts_with("https://") || to.starts_with("http://") {
        json!({"webhook": {"url": to}})
    } else if to.starts_with('+') {
        json!({"phone": to})
    } else {
        json!({"email": to})
    }
}

/// One notification from the flags.
fn body_from_flags(args: &SendArgs) -> anyhow::Result<Value> {
    if let Some(text) = &args.json {
        return serde_json::from_str(text).context("--json is not JSON");
    }
    if args.to.is_empty() || args.channels.is_empty() {
        bail!("give --to and --channel (or --json, or --file)");
    }
    let mut content = serde_json::Map::new();
    for channel in &args.channels {
        let part = match channel.as_str() {
            "email" => json!({"subject": args.subject, "text": args.text}),
            "sms" => json!({"text": args.text}),
            "webhook" => serde_json::from_str(args.data.as_deref().unwrap_or("{}"))
                .context("--data is not JSON")?,
            other => bail!("--channel {other}: give its content with --json"),
        };
        content.insert(channel.clone(), part);
    }
    let mut body = json!({
        "to": args.to.iter().map(|t| recipient(t)).collect::<Vec<_>>(),
        "channels": args.channels,
        "content": content,
    });
    for (field, value) in [("priority", &args.priority), ("category", &args.category)] {
        if let Some(value) = value {
            body[field] = json!(value);
        }
    }
    Ok(body)
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let api = Api::new(args.endpoint.clone());
    if let Some(file) = &args.file {
        return send_file(&api, file, args.idempotency_prefix.as_deref()).await;
    }
    let mut body = body_from_flags(&args)?;
    if let Some(key) = &args.idempotency_key {
        body["idempotency_key"] = json!(key);
    }
    // Through the batch endpoint, so a key travels in the body as in a file's line.
    let answer = api
        .call(reqwest::Method::POST, "/v1/notifications/batch", Some(&json!({"items": [body]})))
        .await?;
    let item = &answer["items"][0];
    if !item["problem"].is_null() {
        bail!("{}", describe_problem(&item["problem"], "items[0]"));
    }
    println!("{}", item["id"].as_str().unwrap_or_default());
    Ok(())
}

/// A file's lines, sent 100 at a time; a line's problem is reported with its number.
async fn send_file(api: &Api, file: &str, prefix: Option<&str>) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?,
        ))
    };
    let mut items: Vec<(usize, Value)> = Vec::new();
    let mut refused = 0usize;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("cannot read line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(mut item) => {
                if let (Some(prefix), Some(fields)) = (prefix, item.as_object_mut()) {
                    fields
                        .entry("idempotency_key")
                        .or_insert_with(|| json!(format!("{prefix}-{number}")));
                }
                items.push((number, item));
            }
            Err(e) => {
                eprintln!("line {number}: not JSON: {e}");
                refused += 1;
            }
        }
    }
    let progress = indicatif::ProgressBar::new(items.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sent ({eta} left)")
            .expect("a valid template"),
    );
    let (mut created, mut replayed) = (0usize, 0usize);
    for chunk in items.chunks(100) {
        let batch = json!({"items": chunk.iter().map(|(_, item)| item).collect::<Vec<_>>()});
        let answer =
            api.call(reqwest::Method::POST, "/v1/notifications/batch", Some(&batch)).await?;
        for ((number, _), result) in
            chunk.iter().zip(answer["items"].as_array().into_iter().flatten())
        {
            if !result["problem"].is_null() {
                // `items[3].to[0].email` names the field within the batch; say the line.
                let within = format!("items[{}]", result["index"]);
                let problem = describe_problem(&result["problem"], &within);
                progress.suspend(|| eprintln!("line {number}: {problem}"));
                refused += 1;
            } else if result["replayed"] == true {
                replayed += 1;
            } else {
                created += 1;
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    println!("sent {created}, already sent {replayed}, refused {refused}");
    if refused > 0 {
        bail!("{refused} line(s) refused");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum NotificationsCommand {
    /// The newest notifications, one per line (id, status, priority, created).
    List {
        #[command(flatten)]
        endpoint: Endpoint,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One notification with its deliveries and timeline, as JSON.
    Get {
        #[command(flatten)]
        endpoint: Endpoint,
        id: String,
    },
    /// Cancel a notification that has not been sent yet.
    Cancel {
        #[command(flatten)]
        endpoint: Endpoint,
        id: String,
    },
}

pub async fn notifications(command: NotificationsCommand) -> anyhow::Result<()> {
    match command {
        NotificationsCommand::List { endpoint, status, limit, cursor } => {
            let mut path = format!("/v1/notifications?limit={limit}");
            for (name, value) in [("status", status), ("cursor", cursor)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{name}={}", segment(&value)));
                }
            }
            let page = Api::new(endpoint).call(reqwest::Method::GET, &path, None).await?;
            for n in page["data"].as_array().into_iter().flatten() {
                let field = |name: &str| n[name].as_str().unwrap_or("-").to_owned();
                println!(
                    "{}\t{}\t{}\t{}",
                    field("id"),
                    field("status"),
                    field("priority"),
                    field("created_at")
                );
            }
            if let Some(next) = page["next_cursor"].as_str() {
                eprintln!("more: --cursor {next}");
            }
        }
        NotificationsCommand::Get { endpoint, id } => {
            let path = format!("/v1/notifications/{}", segment(&id));
            let detail = Api::new(endpoint).call(reqwest::Method::GET, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&detail)?);
        }
        NotificationsCommand::Cancel { endpoint, id } => {
            let path = format!("/v1/notifications/{}/cancel", segment(&id));
            let answer = Api::new(endpoint).call(reqwest::Method::POST, &path, None).await?;
            println!("{}", answer["status"].as_str().unwrap_or("canceled"));
        }
    }
    Ok(())
}

/// A value percent-encoded for a URL path segment or query value.
fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
