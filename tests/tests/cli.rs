//! The `herald` command as a client: `herald send` (flags, and a JSON Lines file through
//! the batch endpoint, resumable by idempotency prefix) and `herald notifications`,
//! against a real `herald serve`.

use herald_tests::Herald;
use herald_tests::herald::{ADMIN_KEY, herald_binary};
use serde_json::{Value, json};
use std::time::Duration;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn cli(herald: &Herald, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(herald_binary())
        .args(args)
        .env("HERALD_URL", &herald.base_url)
        .env("HERALD_KEY", ADMIN_KEY)
        .output()
        .await
        .expect("run herald");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every notification of the app, page by page.
async fn stored(herald: &Herald) -> usize {
    let (mut count, mut cursor) = (0, String::new());
    loop {
        let page =
            herald.get_json(ADMIN_KEY, &format!("/v1/notifications?limit=200{cursor}")).await;
        count += page["data"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return count,
        }
    }
}

/// Line `n` (from 1) of a 250-line file: line 7 is not JSON, line 20 has a bad address,
/// line 120 has no content.
fn line(n: usize) -> String {
    match n {
        7 => "{not json".to_owned(),
        20 => json!({"to": [{"email": "nobody"}], "channels": ["email"],
            "content": {"email": {"subject": "S", "text": "T"}}})
        .to_string(),
        120 => json!({"to": [{"email": "a@example.com"}], "channels": ["email"]}).to_string(),
        _ => json!({"to": [{"email": format!("user{n}@example.com")}], "channels": ["email"],
            "content": {"email": {"subject": "Hello", "text": format!("Line {n}")}}})
        .to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_is_sent_in_batches_and_resumes_without_duplicates() {
    let herald = Herald::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.jsonl");
    let text: Vec<String> = (1..=250).map(line).collect();
    std::fs::write(&file, text.join("\n") + "\n").unwrap();
    let path = file.to_str().unwrap();

    let first = cli(&herald, &["send", "--file", path, "--idempotency-prefix", "run1"]).await;
    assert_eq!(first.code, 2, "three lines were refused: {}", first.stderr);
    assert!(first.stdout.contains("sent 247, already sent 0, refused 3"), "{}", first.stdout);
    assert!(first.stderr.contains("line 7: not JSON"), "{}", first.stderr);
    assert!(first.stderr.contains("line 20: to[0].email"), "{}", first.stderr);
    assert!(first.stderr.contains("line 120: content"), "{}", first.stderr);
    assert_eq!(stored(&herald).await, 247);

    // The same file again, as after an interruption: nothing is sent twice.
    let again = cli(&herald, &["send", "--file", path, "--idempotency-prefix", "run1"]).await;
    assert!(again.stdout.contains("sent 0, already sent 247, refused 3"), "{}", again.stdout);
    assert_eq!(stored(&herald).await, 247);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_notification_from_flags_then_read_listed_and_not_canceled_once_sent() {
    let herald = Herald::start(&[]).await;
    let sent = cli(
        &herald,
        &[
            "send",
            "--to",
            "ann@example.com",
            "--channel",
            "email",
            "--subject",
            "Hi",
            "--text",
            "Hello",
            "--priority",
            "high",
            "--idempotency-key",
            "cli-1",
        ],
    )
    .await;
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let id = sent.stdout.trim().to_owned();
    assert!(id.starts_with("ntf_"), "{id}");
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(30)).await;
    assert_eq!(n["status"], "sent");

    let got = cli(&herald, &["notifications", "get", &id]).await;
    let detail: Value = serde_json::from_str(&got.stdout).expect("get prints JSON");
    assert_eq!(
        (detail["id"].as_str(), detail["priority"].as_str()),
        (Some(id.as_str()), Some("high"))
    );

    let listed = cli(&herald, &["notifications", "list", "--status", "sent"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.lines().any(|l| l.starts_with(&id) && l.contains("\tsent\t")),
        "{}",
        listed.stdout
    );

    // Sent already: the API's 409 comes back as the command's error.
    let canceled = cli(&herald, &["notifications", "cancel", &id]).await;
    assert_eq!(canceled.code, 2);
    assert!(canceled.stderr.contains("409"), "{}", canceled.stderr);

    // A bad address is refused with the field named, and nothing is sent.
    let refused = cli(
        &herald,
        &["send", "--to", "nobody", "--channel", "email", "--subject", "S", "--text", "x"],
    )
    .await;
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("to[0].email"), "{}", refused.stderr);
}
