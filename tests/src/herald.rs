//! Starts and stops `herald serve` as a child process with its own data directory.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_KEY: &str = "hk_test_admin_key_0123456789abcdef";

pub struct Herald {
    pub base_url: String,
    pub client: reqwest::Client,
    child: Child,
    data_dir: TempDir,
    env: Vec<(String, String)>,
}

/// The `herald` binary built next to this test binary (`target/<profile>/herald`), or
/// `HERALD_BIN`.
pub fn herald_binary() -> PathBuf {
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("herald");
    assert!(bin.exists(), "{} is missing: run `cargo build -p herald-cli` first", bin.display());
    bin
}

impl Herald {
    /// Starts a server with the test admin key, the test webhook secret, fast retries
    /// and any extra `HERALD_*` settings.
    pub async fn start(extra: &[(&str, &str)]) -> Herald {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = vec![
            ("HERALD_ADMIN_KEY".into(), ADMIN_KEY.into()),
            ("HERALD_WEBHOOK_SECRET".into(), crate::WEBHOOK_SECRET.into()),
            ("HERALD_RETRY_BASE_MS".into(), "50".into()),
            ("HERALD_RETRY_MAX_MS".into(), "200".into()),
            ("HERALD_WEBHOOK_RETRY_SCHEDULE".into(), "50ms,100ms,200ms".into()),
            ("HERALD_RECEIPT_POLL_SCHEDULE".into(), "50ms,50ms,50ms,50ms".into()),
            ("HERALD_WEBHOOK_TIMEOUT_MS".into(), "2000".into()),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let (child, base_url) = spawn(data_dir.path(), &env).await;
        Herald { base_url, client: reqwest::Client::new(), child, data_dir, env }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Kills the server without warning (SIGKILL), as a crash would.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill herald");
        self.child.wait().await.expect("reap herald");
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns whether it exited
    /// cleanly.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY-free: plain `kill` from the shell keeps us off libc bindings.
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("herald stops within 40 s")
            .expect("reap herald");
        status.success()
    }

    /// Starts the server again on the same data directory.
    pub async fn restart(&mut self) {
        let (child, base_url) = spawn(self.data_dir.path(), &self.env).await;
        self.child = child;
        self.base_url = base_url;
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(key).json(body).send().await.expect("POST")
    }

    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(key).send().await.expect("GET")
    }

    pub async fn get_json(&self, key: &str, path: &str) -> Value {
        let response = self.get(key, path).await;
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.expect("JSON")
    }

    /// Sends and returns the new notification id, asserting a 202.
    pub async fn send(&self, key: &str, body: &Value) -> String {
        let response = self.post(key, "/v1/notifications", body).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 202, "send failed: {text}");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        value["id"].as_str().expect("id").to_owned()
    }

    pub async fn notification(&self, key: &str, id: &str) -> Value {
        self.get_json(key, &format!("/v1/notifications/{id}")).await
    }

    /// Waits until the notification reaches a final status and returns it.
    pub async fn wait_final(&self, key: &str, id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = self.notification(key, id).await;
            let status = n["status"].as_str().unwrap_or_default().to_owned();
            if !["accepted", "dispatched"].contains(&status.as_str()) {
                return n;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id} still {status}: {n:#}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Mints a key for `app` with `scopes` through the API.
    pub async fn key(&self, app: &str, scopes: &[&str]) -> String {
        let body = serde_json::json!({"app_id": app, "name": "test", "scopes": scopes});
        let response = self.post(ADMIN_KEY, "/v1/keys", &body).await;
        assert_eq!(response.status(), 201);
        let value: Value = response.json().await.expect("JSON");
        value["key"].as_str().expect("key").to_owned()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn spawn(data_dir: &Path, env: &[(String, String)]) -> (Child, String) {
    let mut command = Command::new(herald_binary());
    command
        .arg("serve")
        .env("HERALD_ADDR", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", data_dir)
        // The tests' sinks listen on loopback, which webhooks may not reach by default.
        .env("HERALD_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
        .env("HERALD_LOG", std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start herald serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base_url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read herald output") {
            if let Some(url) = line.strip_prefix("herald: listening on ") {
                return url.to_owned();
            }
        }
        panic!("herald exited before listening");
    })
    .await
    .expect("herald listens within 30 s");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base_url)
}
