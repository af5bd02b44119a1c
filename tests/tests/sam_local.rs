//! `sam local invoke` and `sam local start-api` on the real template.yaml: every
//! function is this build's binary, run by SAM in the Lambda base image that
//! scripts/lambda-base-image.sh builds, against the moto emulator. Each `events/`
//! payload goes to the function the template wires it to, and the result is read back
//! from the emulator.
//!
//! The template is used as written but for three things a local run must change: the
//! architecture (this host's), each function's code folder (laid out as `sam build`
//! lays it out) and `AWS_ENDPOINT_URL` (the emulator). The containers reach the
//! emulator through a forwarder on the Docker bridge's host address, the one hop that is
//! not loopback: SAM's `--docker-network host` does not put the function on the host's
//! network (SAM still maps its runtime port).
//!
//! Runs when `HERALD_SAM_LOCAL` names the folder holding the function binaries (the test
//! command sets it after building the base image); skipped otherwise.

use aws_sdk_ssm::types::ParameterType;
use herald_aws::dynamo::DynamoStore;
use herald_aws::sqs::SqsQueue;
use herald_contract::events::{EMAIL, NOTIFICATION, SMS};
use herald_core::domain::{DeliveryId, DeliveryStatus, NotificationId, NotificationStatus};
use herald_core::ports::Store;
use herald_tests::emulator::{moto_data, sent_emails, sent_sms};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

/// The key the `events/api` payloads carry.
const KEY: &str = "hk_example_admin_key_0123456789abcdef";
/// The account moto names queues under.
const ACCOUNT: &str = "123456789012";
/// Each function of template.yaml and the binary it runs.
const FUNCTIONS: [(&str, &str); 7] = [
    ("ApiFunction", "api"),
    ("DispatchFunction", "dispatch"),
    ("SendEmailFunction", "send"),
    ("SendSmsFunction", "send"),
    ("SendWebhookFunction", "send"),
    ("SendChatFunction", "send"),
    ("TrackFunction", "track"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The host's address on the default Docker bridge, which containers can reach.
async fn docker_bridge_address() -> String {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "docker0"]).output().await;
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let address = text.split_whitespace().skip_while(|w| *w != "inet").nth(1);
    address.and_then(|a| a.split('/').next()).unwrap_or("172.17.0.1").to_owned()
}

/// Forwards every connection made to `listen` (on the bridge) to `target` (loopback),
/// for as long as the test runs.
async fn forward(listen: &str, target: String) -> String {
    let listener = TcpListener::bind((listen, 0)).await.expect("bind on the docker bridge");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    format!("http://{address}")
}

/// template.yaml with this host's architecture, each function's code folder (holding
/// its binary as `bootstrap`) and the emulator's endpoint.
fn local_template(work: &Path, binaries: &Path, endpoint: &str) -> PathBuf {
    let mut template = std::fs::read_to_string(repo().join("template.yaml")).unwrap();
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" };
    for (old, new) in [
        ("    Architectures: [arm64]\n", format!("    Architectures: [{arch}]\n")),
        (
            "        RUST_LOG: info\n",
            format!("        RUST_LOG: info\n        AWS_ENDPOINT_URL: {endpoint}\n"),
        ),
    ] {
        assert_eq!(template.matches(old).count(), 1, "template.yaml no longer has one {old:?}");
        template = template.replace(old, &new);
    }
    for (function, binary) in FUNCTIONS {
        let code = work.join("build").join(function);
        std::fs::create_dir_all(&code).unwrap();
        std::fs::copy(binaries.join(binary), code.join("bootstrap")).unwrap();
        let at = template.find(&format!("\n  {function}:\n")).expect(function);
        let line = format!("      CodeUri: functions/{binary}\n");
        let start = at + template[at..].find(&line).expect("each function names its package");
        template.replace_range(
            start..start + line.len(),
            &format!("      CodeUri: {}\n", code.display()),
        );
    }
    let path = work.join("template.yaml");
    std::fs::write(&path, template).unwrap();
    path
}

struct Sam {
    template: PathBuf,
    env_vars: PathBuf,
}

impl Sam {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("sam");
        command
            .args(["local"])
            .args(args)
            .arg("--template")
            .arg(&self.template)
            .arg("--env-vars")
            .arg(&self.env_vars)
            .arg("--skip-pull-image")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("SAM_CLI_TELEMETRY", "0")
            // SAM hands the caller's AWS settings to the function: this one would point
            // it at the emulator's loopback address, which a container cannot reach.
            .env_remove("AWS_ENDPOINT_URL")
            .kill_on_drop(true);
        command
    }

    /// `sam local invoke <function> --event events/<event>`: the function's answer.
    async fn invoke(&self, function: &str, event: &str) -> Value {
        let event_path = repo().join("events").join(event);
        let mut command = self.command(&["invoke", function]);
        command.arg("--event").arg(event_path);
        let run = tokio::time::timeout(Duration::from_secs(300), command.output())
            .await
            .expect("sam local invoke finishes")
            .expect("sam runs");
        let stdout = String::from_utf8_lossy(&run.stdout);
        let answer = stdout.lines().rev().find_map(|line| serde_json::from_str::<Value>(line).ok());
        answer.unwrap_or_else(|| {
            panic!(
                "{function} {event}: no answer\n{stdout}\n{}",
                String::from_utf8_lossy(&run.stderr)
            )
        })
    }
}

async fn delivery_status(store: &DynamoStore, id: &str) -> DeliveryStatus {
    let id = DeliveryId::parse(id).unwrap();
    store.delivery(&id).await.unwrap().expect("the delivery exists").status
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_runs_under_sam_local_on_the_emulator() {
    let Some(binaries) = std::env::var_os("HERALD_SAM_LOCAL").map(PathBuf::from) else {
        eprintln!("skipped: HERALD_SAM_LOCAL is not set (scripts/test.sh sets it)");
        return;
    };
    let Some(moto) = herald_contract::emulator_endpoint() else { return };
    let config = herald_contract::emulator_config().await.unwrap();

    // What the stack would hold: the queues (named as the payloads' ARNs name them),
    // one table for dispatch and one for the rest, a verified sender, the admin key.
    let sqs = aws_sdk_sqs::Client::new(&config);
    SqsQueue::create_all(&sqs, "herald", 5).await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let queue = Arc::new(SqsQueue::with_url_prefix(sqs, &format!("{moto}/{ACCOUNT}/herald")));
    let mut stores = vec![];
    for _ in 0..2 {
        let table = herald_contract::unique_prefix();
        DynamoStore::create_table(&dynamodb, &table).await.unwrap();
        stores.push((table.clone(), DynamoStore::new(dynamodb.clone(), table, queue.clone())));
    }
    let (events_table, events_store) = stores.pop().unwrap();
    let (dispatch_table, dispatch_store) = stores.pop().unwrap();
    herald_contract::events::accept_named(&dispatch_store).await;
    herald_contract::events::dispatch_named(&events_store).await;
    let ses = aws_sdk_sesv2::Client::new(&config);
    let _ = ses.create_email_identity().email_identity("herald@example.com").send().await;
    ses.create_configuration_set().configuration_set_name(&events_table).send().await.unwrap();
    let admin_key = format!("/herald/{events_table}/admin-key");
    let ssm = aws_sdk_ssm::Client::new(&config);
    let put = ssm.put_parameter().name(&admin_key).value(KEY).r#type(ParameterType::SecureString);
    put.send().await.unwrap();

    let bridge = docker_bridge_address().await;
    let endpoint = forward(&bridge, moto.trim_start_matches("http://").to_owned()).await;
    let work = tempfile::tempdir().unwrap();
    let template = local_template(work.path(), &binaries, &endpoint);
    let env_vars = work.path().join("env.json");
    let settings = json!({
        "Parameters": {
            "HERALD_TABLE": events_table,
            "HERALD_QUEUE_URL_PREFIX": format!("{endpoint}/{ACCOUNT}/herald"),
            "HERALD_INTEGRATION_SECRETS_PATH": format!("/herald/{events_table}/integrations"),
        },
        "ApiFunction": {"HERALD_ADMIN_KEY_PARAMETER": admin_key},
        "DispatchFunction": {"HERALD_TABLE": dispatch_table},
        "SendEmailFunction": {
            "HERALD_EMAIL_FROM": "herald@example.com",
            "HERALD_SES_CONFIGURATION_SET": events_table,
            "HERALD_PUBLIC_URL": "http://127.0.0.1:8080",
        },
        "SendSmsFunction": {"HERALD_SMS_SENDER_ID": ""},
    });
    std::fs::write(&env_vars, settings.to_string()).unwrap();
    let sam = Sam { template, env_vars };

    // api, on DynamoDB and SQS, with the admin key it reads from SSM at init.
    let health = sam.invoke("ApiFunction", "api/get-healthz.json").await;
    assert_eq!(health["statusCode"], 200, "{health}");
    let accepted = sam.invoke("ApiFunction", "api/post-notification.json").await;
    assert_eq!(accepted["statusCode"], 202, "{accepted}");
    let body: Value = serde_json::from_str(accepted["body"].as_str().unwrap()).unwrap();
    let id = NotificationId::parse(body["id"].as_str().unwrap()).unwrap();
    assert!(events_store.notification(&id).await.unwrap().is_some(), "stored in the table");
    let refused = sam.invoke("ApiFunction", "api/post-notification-no-key.json").await;
    assert_eq!(refused["statusCode"], 401, "{refused}");

    // dispatch fans the named notification out; what is not a notification id is
    // dead-lettered, not retried.
    let named = NotificationId::parse(NOTIFICATION).unwrap();
    let response = sam.invoke("DispatchFunction", "dispatch/sqs-high.json").await;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let dispatched = dispatch_store.notification(&named).await.unwrap().unwrap();
    assert_eq!(dispatched.status, NotificationStatus::Dispatched);
    assert_eq!(dispatch_store.deliveries(&named).await.unwrap().len(), 3);
    let response = sam.invoke("DispatchFunction", "dispatch/sqs-not-a-notification.json").await;
    assert_eq!(response, json!({"batchItemFailures": []}));

    // send: email through SES, SMS through SNS, each once even when redelivered.
    let before = moto_data(&moto).await;
    for (function, event, delivery) in [
        ("SendEmailFunction", "send/sqs-email.json", EMAIL),
        ("SendSmsFunction", "send/sqs-sms-redelivered.json", SMS),
        ("SendEmailFunction", "send/sqs-email.json", EMAIL),
    ] {
        let response = sam.invoke(function, event).await;
        assert_eq!(response, json!({"batchItemFailures": []}), "{event}");
        assert_eq!(delivery_status(&events_store, delivery).await, DeliveryStatus::Sent);
    }
    let after = moto_data(&moto).await;
    let emails = |d: &Value| sent_emails(d, "ann@example.com");
    let texts = |d: &Value| sent_sms(d, "+14155552671");
    assert_eq!(emails(&after) - emails(&before), 1, "one email, also when redelivered");
    assert_eq!(texts(&after) - texts(&before), 1, "one text");

    // track: SES feedback settles the delivery; the stream is counted.
    let summary = sam.invoke("TrackFunction", "track/ses-delivery.json").await;
    assert_eq!(summary["provider_events"], 1, "{summary}");
    assert_eq!(delivery_status(&events_store, EMAIL).await, DeliveryStatus::Delivered);
    let summary = sam.invoke("TrackFunction", "track/dynamodb-stream.json").await;
    assert_eq!(summary["counted"], 7, "{summary}");

    // sam local start-api: API Gateway's routes from the template, one request each way.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut api = sam.command(&["start-api", "--port", &port.to_string()]);
    api.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut server = api.spawn().expect("sam local start-api starts");
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    // Ready once it says where it listens (the first request then starts a container).
    let wait = async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("Running on") {
                return true;
            }
        }
        false
    };
    let ready = tokio::time::timeout(Duration::from_secs(120), wait).await;
    assert!(matches!(ready, Ok(true)), "sam local start-api did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let sent = client
        .post(format!("{base}/v1/notifications"))
        .bearer_auth(KEY)
        .json(&json!({"to": [{"email": "bob@example.com"}], "channels": ["email"],
            "content": {"email": {"subject": "Hi", "text": "Through start-api"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let sent: Value = sent.json().await.unwrap();
    let read = client
        .get(format!("{base}/v1/notifications/{}", sent["id"].as_str().unwrap()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    server.kill().await.unwrap();
}
