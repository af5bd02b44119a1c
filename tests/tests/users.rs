//! Black-box tests of `/v1/users` against a real `herald serve` process.

use herald_tests::Herald;
use herald_tests::herald::ADMIN_KEY;
use serde_json::{Value, json};

async fn put(herald: &Herald, key: &str, id: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(herald.url(&format!("/v1/users/{id}")))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

fn profile() -> Value {
    json!({
        "locale": "zh-Hant-TW", "time_zone": "Asia/Taipei",
        "email": "mei@example.com", "phone": "+886912345678",
        "push_tokens": [{"platform": "fcm", "token": "fcm-token-1"}],
        "web_push": [{"endpoint": "https://push.example.com/sub/1", "p256dh": "BNc", "auth": "tBH"}],
        "chat": {"wecom": "mei", "dingtalk": "0101", "feishu": "ou_1", "qq": "qq_1", "wechat": "oW_1"},
        "webhook_url": "https://hooks.example.com/mei"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_upserted_read_listed_and_deleted() {
    let herald = Herald::start(&[]).await;
    let (status, created) = put(&herald, ADMIN_KEY, "mei", &profile()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["chat"]["feishu"], "ou_1");
    let mut changed = profile();
    changed["email"] = json!("mei.lin@example.com");
    let (status, updated) = put(&herald, ADMIN_KEY, "mei", &changed).await;
    assert_eq!((status, updated["email"].as_str()), (200, Some("mei.lin@example.com")));
    assert_eq!(updated["created_at"], created["created_at"], "created_at is kept");
    let got = herald.get_json(ADMIN_KEY, "/v1/users/mei").await;
    assert_eq!(got["phone"], "+886912345678");

    for id in ["a", "b", "c"] {
        assert_eq!(
            put(&herald, ADMIN_KEY, id, &json!({"email": format!("{id}@example.com")})).await.0,
            201
        );
    }
    let page = herald.get_json(ADMIN_KEY, "/v1/users?limit=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = herald.get_json(ADMIN_KEY, &format!("/v1/users?limit=2&cursor={cursor}")).await;
    let ids: Vec<&str> =
        rest["data"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c", "mei"]);

    let other = herald.key("other-app", &["read", "manage"]).await;
    assert_eq!(herald.get(&other, "/v1/users/mei").await.status().as_u16(), 404, "per app");
    let client = reqwest::Client::new();
    let delete = || client.delete(herald.url("/v1/users/mei")).bearer_auth(ADMIN_KEY).send();
    assert_eq!(delete().await.unwrap().status().as_u16(), 204);
    assert_eq!(delete().await.unwrap().status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_are_validated_on_write() {
    let herald = Herald::start(&[]).await;
    for (field, value, path) in [
        ("email", json!("not-an-address"), "email"),
        ("phone", json!("12345"), "phone"),
        ("time_zone", json!("Mars/Olympus"), "time_zone"),
        ("locale", json!("zh_Hant!"), "locale"),
        ("webhook_url", json!("ftp://example.com"), "webhook_url"),
        (
            "push_tokens",
            json!([{"platform": "blackberry", "token": "x"}]),
            "push_tokens[0].platform",
        ),
    ] {
        let mut body = profile();
        body[field] = value;
        let (status, problem) = put(&herald, ADMIN_KEY, "u", &body).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(path)),
            "{problem}"
        );
    }
    let reader = herald.key("default", &["read"]).await;
    assert_eq!(put(&herald, &reader, "u", &profile()).await.0, 403, "writing users needs manage");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_upsert_answers_per_item() {
    let herald = Herald::start(&[]).await;
    assert_eq!(
        put(&herald, ADMIN_KEY, "user-0", &json!({"email": "old@example.com"})).await.0,
        201
    );
    // Over the 256 KiB limit of other requests: the bulk route takes up to 16 MiB.
    let users: Vec<Value> = (0..3000)
        .map(|i| match i {
            7 => json!({"id": "user-7", "email": "broken"}),
            11 => json!({"email": "no-id@example.com"}),
            _ => json!({"id": format!("user-{i}"), "email": format!("u{i}@example.com"), "locale": "de",
                        "time_zone": "Europe/Berlin", "chat": {"feishu": format!("ou_{i:020}")}}),
        })
        .collect();
    let response = herald.post(ADMIN_KEY, "/v1/users/bulk", &json!({"users": users})).await;
    assert_eq!(response.status().as_u16(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(
        (result["created"].as_u64(), result["updated"].as_u64(), result["invalid"].as_u64()),
        (Some(2997), Some(1), Some(2))
    );
    let results = result["results"].as_array().unwrap();
    assert_eq!(results.len(), 3000);
    assert_eq!(results[0]["status"], "updated");
    assert_eq!(results[7]["errors"][0]["field"], "users[7].email");
    assert_eq!(results[11]["errors"][0]["field"], "users[11].id");
    assert_eq!(
        herald.get_json(ADMIN_KEY, "/v1/users/user-2999").await["email"],
        "u2999@example.com"
    );
    let (status, _) = {
        let r = herald.post(ADMIN_KEY, "/v1/users/bulk", &json!({"users": []})).await;
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_take_many_members_at_once() {
    let herald = Herald::start(&[]).await;
    let client = reqwest::Client::new();
    let put_group = |id: &str, name: &str| {
        client
            .put(herald.url(&format!("/v1/groups/{id}")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": name}))
            .send()
    };
    assert_eq!(put_group("beta", "Beta").await.unwrap().status().as_u16(), 201);
    assert_eq!(put_group("beta", "Beta testers").await.unwrap().status().as_u16(), 200);
    assert_eq!(put_group("staff", "Staff").await.unwrap().status().as_u16(), 201);

    let ids: Vec<String> = (0..2500).map(|i| format!("user-{i:05}")).collect();
    let change = herald.post(ADMIN_KEY, "/v1/groups/beta/members", &json!({"add": ids})).await;
    let change: Value = change.json().await.unwrap();
    assert_eq!((change["added"].as_u64(), change["removed"].as_u64()), (Some(2500), Some(0)));
    let change = herald
        .post(
            ADMIN_KEY,
            "/v1/groups/beta/members",
            &json!({"add": ["user-00000"], "remove": ["user-00001", "ghost"]}),
        )
        .await;
    let change: Value = change.json().await.unwrap();
    assert_eq!((change["added"].as_u64(), change["removed"].as_u64()), (Some(0), Some(1)));
    herald.post(ADMIN_KEY, "/v1/groups/staff/members", &json!({"add": ["user-00000"]})).await;
    assert_eq!(
        herald.get_json(ADMIN_KEY, "/v1/users/user-00000/groups").await,
        json!(["beta", "staff"])
    );

    let first = herald.get_json(ADMIN_KEY, "/v1/groups/beta/members?limit=2000").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2000);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = herald
        .get_json(ADMIN_KEY, &format!("/v1/groups/beta/members?limit=2000&cursor={cursor}"))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 499);
    assert!(rest.get("next_cursor").is_none());
    let listed = herald.get_json(ADMIN_KEY, "/v1/groups").await;
    assert_eq!(listed["data"][0]["name"], "Beta testers");

    let missing = herald.post(ADMIN_KEY, "/v1/groups/nope/members", &json!({"add": ["a"]})).await;
    assert_eq!(missing.status().as_u16(), 404);
    let delete =
        client.delete(herald.url("/v1/groups/beta")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(delete.status().as_u16(), 204);
    assert_eq!(herald.get_json(ADMIN_KEY, "/v1/users/user-00000/groups").await, json!(["staff"]));
}

/// A group of 1,000 users with mixed identities gets one notification: every delivery
/// ends `sent` or `suppressed` with `no_address`, counted exactly.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_send_reaches_each_member_by_their_identities() {
    let herald = Herald::start(&[]).await;
    let users: Vec<Value> = (0..1000)
        .map(|i| {
            let mut user = json!({"id": format!("m{i:04}")});
            if i % 5 != 0 {
                user["email"] = json!(format!("m{i}@example.com"));
            }
            if i % 4 != 0 {
                user["phone"] = json!(format!("+1415555{i:04}"));
            }
            user
        })
        .collect();
    let bulk: Value = herald
        .post(ADMIN_KEY, "/v1/users/bulk", &json!({"users": users}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bulk["created"], 1000, "{bulk}");
    let put_group = reqwest::Client::new()
        .put(herald.url("/v1/groups/everyone"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "Everyone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put_group.status().as_u16(), 201);
    let mut ids: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
    ids.push("ghost".into()); // a member with no user record
    let added: Value = herald
        .post(ADMIN_KEY, "/v1/groups/everyone/members", &json!({"add": ids}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(added["added"], 1001);

    let send = json!({
        "to": [{"group": "everyone"}, {"user_id": "m0001"}],
        "channels": ["email", "sms"],
        "content": {"email": {"subject": "Hello", "text": "Hi"}, "sms": {"text": "Hi"}}
    });
    let id = herald.send(ADMIN_KEY, &send).await;
    let n = herald.wait_final(ADMIN_KEY, &id, std::time::Duration::from_secs(60)).await;
    assert_eq!(n["status"], "sent");
    let deliveries = n["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2 * 1002, "1,001 members and one direct user, two channels each");
    let count = |channel: &str, status: &str| {
        deliveries.iter().filter(|d| d["channel"] == channel && d["status"] == status).count()
    };
    // Among m0000..m0999 a fifth have no email and a quarter no phone; ghost has neither;
    // m0001 (named directly as well) has both.
    assert_eq!((count("email", "sent"), count("email", "suppressed")), (800 + 1, 200 + 1));
    assert_eq!((count("sms", "sent"), count("sms", "suppressed")), (750 + 1, 250 + 1));
    assert!(
        deliveries
            .iter()
            .filter(|d| d["status"] == "suppressed")
            .all(|d| d["reason"] == "no_address")
    );
}
