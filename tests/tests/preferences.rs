//! Preferences, categories and one-click unsubscribe, against a real `herald serve`
//! (and a real SMTP server for the unsubscribe headers).

use herald_tests::herald::ADMIN_KEY;
use herald_tests::{Herald, SmtpSink, WEBHOOK_SECRET, WebhookSink};
use serde_json::{Value, json};
use std::time::Duration;

async fn put(herald: &Herald, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(herald.url(path))
        .bearer_auth(ADMIN_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn bulk_users(herald: &Herald, users: Vec<Value>) {
    let count = users.len();
    let bulk: Value = herald
        .post(ADMIN_KEY, "/v1/users/bulk", &json!({"users": users}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bulk["created"], count, "{bulk}");
}

fn errors(problem: &Value) -> Vec<&str> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn preferences_and_categories_are_read_written_and_validated() {
    let herald = Herald::start(&[]).await;
    let prefs = json!({
        "categories": {"news": {"enabled": false, "channels": {"email": true}}},
        "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Berlin"},
        "frequency_caps": [{"category": "news", "limit": 3, "period": "week"}]
    });
    let (status, _) = put(&herald, "/v1/users/ann/preferences", &prefs).await;
    assert_eq!(status, 404, "no such user yet");
    assert_eq!(put(&herald, "/v1/users/ann", &json!({"email": "ann@example.com"})).await.0, 201);
    let fresh = herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await;
    assert_eq!(fresh, json!({"user_id": "ann", "unsubscribed": false, "revision": 0}));

    let (status, saved) = put(&herald, "/v1/users/ann/preferences", &prefs).await;
    assert_eq!((status, saved["revision"].as_u64()), (200, Some(1)), "{saved}");
    let read = herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await;
    assert_eq!(read["quiet_hours"], prefs["quiet_hours"]);
    assert_eq!(read["categories"], prefs["categories"]);
    // A profile write leaves them alone.
    put(&herald, "/v1/users/ann", &json!({"email": "ann@example.org"})).await;
    assert_eq!(herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await["revision"], 1);

    // What GET returns can be sent back as it is; its revision makes the write
    // conditional, and the ETag carries the same revision.
    let response = herald.get(ADMIN_KEY, "/v1/users/ann/preferences").await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    let mut echoed: Value = response.json().await.unwrap();
    echoed["unsubscribed"] = json!(false);
    echoed["quiet_hours"]["end"] = json!("06:30");
    let (status, saved) = put(&herald, "/v1/users/ann/preferences", &echoed).await;
    assert_eq!((status, saved["revision"].as_u64()), (200, Some(2)), "{saved}");
    let (status, _) = put(&herald, "/v1/users/ann/preferences", &echoed).await;
    assert_eq!(status, 412, "the echoed revision 1 is stale now");
    // A weak tag names the same revision; `*` takes any.
    let with_tag = |tag: &'static str| {
        reqwest::Client::new()
            .put(herald.url("/v1/users/ann/preferences"))
            .bearer_auth(ADMIN_KEY)
            .header("If-Match", tag)
            .json(&prefs)
            .send()
    };
    assert_eq!(with_tag("W/\"2\"").await.unwrap().status().as_u16(), 200);
    assert_eq!(with_tag("*").await.unwrap().status().as_u16(), 200);
    assert_eq!(herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await["revision"], 4);
    echoed["user_id"] = json!("bob");
    echoed["revision"] = json!(4);
    let (status, problem) = put(&herald, "/v1/users/ann/preferences", &echoed).await;
    assert_eq!((status, errors(&problem)), (422, vec!["user_id"]));

    let stale = reqwest::Client::new()
        .put(herald.url("/v1/users/ann/preferences"))
        .bearer_auth(ADMIN_KEY)
        .header("If-Match", "\"0\"")
        .json(&json!({"unsubscribed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 412, "a stale revision");

    let bad = json!({
        "categories": {"Not A Name": {"enabled": true}},
        "quiet_hours": {"start": "22:00", "end": "22:00", "time_zone": "Mars/Olympus"},
        "frequency_caps": [{"category": "news", "limit": 0, "period": "day"}]
    });
    let (status, problem) = put(&herald, "/v1/users/ann/preferences", &bad).await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&problem),
        [
            "categories.Not A Name",
            "quiet_hours.end",
            "quiet_hours.time_zone",
            "frequency_caps[0].limit"
        ]
    );
    let (status, problem) = put(
        &herald,
        "/v1/users/ann/preferences",
        &json!({"quiet_hours": {"start": "7pm", "end": "07:00"}}),
    )
    .await;
    assert_eq!((status, errors(&problem)), (422, vec!["quiet_hours.start"]), "{problem}");

    let category = json!({"critical": true, "description": "Codes and alerts"});
    let (status, created) = put(&herald, "/v1/categories/security", &category).await;
    assert_eq!((status, created["critical"].as_bool()), (201, Some(true)), "{created}");
    assert_eq!(created["enabled_by_default"], true);
    let (status, _) = put(
        &herald,
        "/v1/categories/news",
        &json!({"frequency_cap": {"limit": 2, "period": "day"}, "channels": {"sms": false}}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, problem) = put(
        &herald,
        "/v1/categories/news",
        &json!({"frequency_cap": {"limit": 0, "period": "day"}}),
    )
    .await;
    assert_eq!((status, errors(&problem)), (422, vec!["frequency_cap.limit"]));
    let listed = herald.get_json(ADMIN_KEY, "/v1/categories").await;
    let names: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["news", "security"]);
    let delete = reqwest::Client::new()
        .delete(herald.url("/v1/categories/news"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status().as_u16(), 204);
    assert_eq!(herald.get(ADMIN_KEY, "/v1/categories/news").await.status().as_u16(), 404);
}

/// What user `i` of the 1,000 wants: every tenth is unsubscribed from everything, the
/// next tenth turned SMS off for `news`, another tenth is in quiet hours all day, and
/// another has a cap of one `news` message a day per channel.
fn member(i: usize) -> (Value, Value) {
    let mut user =
        json!({"id": format!("p{i:04}"), "locale": if i.is_multiple_of(3) { "de" } else { "en" }});
    if !i.is_multiple_of(5) {
        user["email"] = json!(format!("p{i}@example.com"));
    }
    if !i.is_multiple_of(4) {
        user["phone"] = json!(format!("+1415555{i:04}"));
    }
    let prefs = match i % 10 {
        1 => json!({"unsubscribed": true}),
        2 => json!({"categories": {"news": {"channels": {"sms": false}}}}),
        3 => json!({"quiet_hours": {"start": "00:00", "end": "23:59"}}),
        4 => json!({"frequency_caps": [{"category": "news", "limit": 1, "period": "day"}]}),
        _ => json!({}),
    };
    (user, prefs)
}

/// The reason a delivery to user `i` on `channel` is suppressed, or None if it is sent,
/// for the `round`-th notification (from 1) of the day.
fn expected(i: usize, channel: &str, round: usize) -> Option<&'static str> {
    let has = if channel == "email" { !i.is_multiple_of(5) } else { !i.is_multiple_of(4) };
    match i % 10 {
        _ if !has => Some("no_address"),
        1 => Some("opted_out"),
        2 if channel == "sms" => Some("opted_out"),
        4 if round > 1 => Some("frequency_cap"),
        _ => None,
    }
}

/// The issue's end-to-end case: a group of 1,000 users with mixed preferences and
/// identities receives a templated notification (twice, so the caps bite); every
/// delivery ends `sent` or `suppressed` with the right reason, counted exactly.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_with_mixed_preferences_gets_exactly_what_each_member_wants() {
    // Both rounds must fall in one UTC day for the daily caps to bite in the second.
    let clock = herald_tests::noon_utc_clock();
    let herald = Herald::start(clock.as_deref().unwrap_or(&[])).await;
    let (users, prefs): (Vec<Value>, Vec<Value>) = (0..1000).map(member).unzip();
    bulk_users(&herald, users).await;
    for (i, prefs) in prefs.iter().enumerate().filter(|(_, p)| *p != &json!({})) {
        let (status, body) = put(&herald, &format!("/v1/users/p{i:04}/preferences"), prefs).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(put(&herald, "/v1/groups/all", &json!({"name": "All"})).await.0, 201);
    let ids: Vec<String> = (0..1000).map(|i| format!("p{i:04}")).collect();
    let added = herald.post(ADMIN_KEY, "/v1/groups/all/members", &json!({"add": ids})).await;
    assert_eq!(added.status().as_u16(), 200);
    let template = json!({
        "id": "digest", "name": "Digest",
        "locales": {
            "default": {"email": {"subject": "Your digest, {{ name }}", "text": "Unsubscribe: {{ unsubscribe_url }}"},
                        "sms": {"text": "Digest for {{ name }}"}},
            "de": {"email": {"subject": "Ihre Übersicht, {{ name }}", "text": "Abmelden: {{ unsubscribe_url }}"}}
        }
    });
    assert_eq!(herald.post(ADMIN_KEY, "/v1/templates", &template).await.status().as_u16(), 201);

    if clock.is_none() {
        herald_tests::clear_of_utc_midnight().await;
    }
    for round in 1..=2 {
        // High priority: quiet hours do not hold it back (the tenth with `3` get it).
        let send = json!({
            "to": [{"group": "all"}], "channels": ["email", "sms"], "priority": "high",
            "category": "news", "template": {"id": "digest", "data": {"name": "friend"}}
        });
        let id = herald.send(ADMIN_KEY, &send).await;
        let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(60)).await;
        assert_eq!(n["status"], "sent");
        let deliveries = n["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 2000);
        let mut tally = std::collections::BTreeMap::<(String, String), usize>::new();
        for d in deliveries {
            let user = d["user"]["id"].as_str().unwrap();
            let i: usize = user[1..].parse().unwrap();
            let channel = d["channel"].as_str().unwrap();
            let want = expected(i, channel, round);
            let got = (d["status"].as_str().unwrap(), d["reason"].as_str());
            match want {
                None => assert_eq!(got, ("sent", None), "round {round}: {d}"),
                Some(reason) => assert_eq!(got, ("suppressed", Some(reason)), "round {round}: {d}"),
            }
            let outcome = want.unwrap_or("sent").to_owned();
            *tally.entry((channel.to_owned(), outcome)).or_default() += 1;
        }
        let count = |channel: &str, outcome: &str| {
            tally.get(&(channel.to_owned(), outcome.to_owned())).copied().unwrap_or(0)
        };
        // By hand from `member`: 200 lack an email, 250 a phone. The 100 unsubscribed
        // (i % 10 == 1) all have both; of the 100 without news SMS (i % 10 == 2) 50 have
        // a phone; the 100 capped ones (i % 10 == 4) all have an email, 50 a phone.
        let email =
            (count("email", "sent"), count("email", "opted_out"), count("email", "no_address"));
        let sms = (count("sms", "sent"), count("sms", "opted_out"), count("sms", "no_address"));
        let capped = (count("email", "frequency_cap"), count("sms", "frequency_cap"));
        if round == 1 {
            assert_eq!(email, (700, 100, 200));
            assert_eq!(sms, (600, 150, 250));
            assert_eq!(capped, (0, 0));
        } else {
            assert_eq!(email, (600, 100, 200));
            assert_eq!(sms, (550, 150, 250));
            assert_eq!(capped, (100, 50));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_user_gets_the_template_in_their_own_locale_and_time_zone() {
    let herald = Herald::start(&[]).await;
    bulk_users(
        &herald,
        vec![
            json!({"id": "anna", "email": "anna@example.com", "locale": "de-AT", "time_zone": "Europe/Vienna"}),
            json!({"id": "bob", "email": "bob@example.com", "locale": "en-US", "time_zone": "America/New_York"}),
        ],
    )
    .await;
    let template = json!({
        "id": "reminder", "name": "Reminder",
        "locales": {
            "default": {"email": {"subject": "See you on {{ at | date }} at {{ at | time }}", "text": "t"}},
            "de": {"email": {"subject": "Bis {{ at | date }} um {{ at | time }}", "text": "t"}}
        }
    });
    assert_eq!(herald.post(ADMIN_KEY, "/v1/templates", &template).await.status().as_u16(), 201);
    let send = json!({
        "to": [{"user_id": "anna"}, {"user_id": "bob"}, {"email": "direct@example.com"}],
        "channels": ["email"],
        "template": {"id": "reminder", "locale": "fr", "time_zone": "Asia/Tokyo", "data": {"at": "2026-12-02T03:30:00Z"}}
    });
    let id = herald.send(ADMIN_KEY, &send).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "sent");
    let logged = herald.get_json(ADMIN_KEY, "/v1/log-messages").await;
    // The log masks addresses but keeps their first letter.
    let subject_to = |to: &str| {
        logged
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"].as_str().unwrap_or_default().starts_with(&to[..1]))
            .map(|m| m["content"]["subject"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no message to {to}: {logged:#}"))
    };
    // Vienna is UTC+1 in December, New York UTC-5; the direct address gets the request's
    // locale (fr falls back to default) and zone (Tokyo, UTC+9).
    assert_eq!(subject_to("anna"), "Bis 02.12.2026 um 04:30");
    assert_eq!(subject_to("bob"), "See you on Dec 1, 2026 at 10:30 PM");
    assert_eq!(subject_to("direct"), "See you on 02/12/2026 at 12:30");

    // A user may need any variant: each must render with the data, checked at intake.
    let partial = json!({
        "id": "partial", "name": "Partial",
        "locales": {
            "default": {"email": {"subject": "Hi", "text": "t"}},
            "de": {"email": {"subject": "Hallo {{ nickname }}", "text": "t"}}
        }
    });
    assert_eq!(herald.post(ADMIN_KEY, "/v1/templates", &partial).await.status().as_u16(), 201);
    let to_user = json!({"to": [{"user_id": "bob"}], "channels": ["email"],
        "template": {"id": "partial", "data": {}}});
    let response = herald.post(ADMIN_KEY, "/v1/notifications", &to_user).await;
    assert_eq!(response.status().as_u16(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "template.data");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("'de'") && message.contains("nickname"), "{message}");
    let to_address = json!({"to": [{"email": "x@example.com"}], "channels": ["email"],
        "template": {"id": "partial", "data": {}}});
    herald.send(ADMIN_KEY, &to_address).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_hours_hold_a_medium_message_until_the_window_ends() {
    let herald = Herald::start(&[]).await;
    bulk_users(&herald, vec![json!({"id": "owl", "email": "owl@example.com"})]).await;
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::hours(1)).format("%H:%M").to_string();
    let end_at = now + chrono::Duration::hours(2);
    let end = end_at.format("%H:%M").to_string();
    let prefs = json!({"quiet_hours": {"start": start, "end": end, "time_zone": "UTC"}});
    assert_eq!(put(&herald, "/v1/users/owl/preferences", &prefs).await.0, 200);
    let send = |priority: &str| {
        json!({"to": [{"user_id": "owl"}], "channels": ["email"], "priority": priority,
               "content": {"email": {"subject": "Later", "text": "t"}}})
    };
    let held = herald.send(ADMIN_KEY, &send("medium")).await;
    let urgent = herald.send(ADMIN_KEY, &send("high")).await;
    let n = herald.wait_final(ADMIN_KEY, &urgent, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "sent", "high priority ignores quiet hours");
    assert!(n["deliveries"][0]["deliver_after"].is_null());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let delivery = loop {
        let n = herald.notification(ADMIN_KEY, &held).await;
        if n["status"] == "dispatched" {
            break n["deliveries"][0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{n:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(delivery["status"], "queued");
    let expected = end_at.format("%Y-%m-%dT%H:%M:00Z").to_string();
    assert_eq!(delivery["deliver_after"], expected.as_str());
    let n = herald.notification(ADMIN_KEY, &held).await;
    let queued = n["timeline"].as_array().unwrap().iter().find(|e| e["event"] == "queued").unwrap();
    assert_eq!(queued["detail"], format!("held by quiet hours until {expected}"), "{n:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsubscribe_links_are_signed_one_click_and_idempotent() {
    let smtp = SmtpSink::start().await;
    let port = smtp.port.to_string();
    let herald = Herald::start(&[
        ("HERALD_SMTP_HOST", "127.0.0.1"),
        ("HERALD_SMTP_PORT", port.as_str()),
        ("HERALD_SMTP_TLS", "none"),
        ("HERALD_SMTP_FROM", "Herald <noreply@herald.test>"),
    ])
    .await;
    bulk_users(&herald, vec![json!({"id": "ann", "email": "ann@example.com"})]).await;
    assert_eq!(put(&herald, "/v1/categories/security", &json!({"critical": true})).await.0, 201);
    let send = |category: &str| {
        json!({"to": [{"user_id": "ann"}], "channels": ["email"], "category": category,
               "content": {"email": {"subject": format!("About {category}"), "text": "t"}}})
    };
    let id = herald.send(ADMIN_KEY, &send("newsletter")).await;
    assert_eq!(herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await["status"], "sent");
    let message = smtp.messages().pop().unwrap();
    let header = |name: &str| {
        message
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} header: {message}"))
    };
    assert_eq!(header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    let link = header("List-Unsubscribe");
    let url = link.trim_start_matches('<').trim_end_matches('>').to_owned();
    assert!(url.starts_with(&herald.url("/v1/unsubscribe/")), "{url}");

    let client = reqwest::Client::new();
    // GET (a mail scanner, or a person) only asks.
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\">"));
    assert_eq!(herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await["revision"], 0);

    // The mail client's one-click POST, with no API key; then again.
    let one_click = || {
        client
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
    };
    assert_eq!(one_click().await.unwrap().status().as_u16(), 200);
    let prefs = herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await;
    assert_eq!(prefs["categories"]["newsletter"]["channels"]["email"], false, "{prefs}");
    assert_eq!(prefs["revision"], 1);
    assert_eq!(one_click().await.unwrap().status().as_u16(), 200, "idempotent");
    assert_eq!(herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await["revision"], 1);

    // A link edited to another user (or signed with another key) is refused.
    let (base, token) = url.rsplit_once('/').unwrap();
    let (_, signature) = token.split_once('.').unwrap();
    use base64::Engine;
    let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"a":"default","u":"bob","c":"newsletter"}"#);
    let forged = client.post(format!("{base}/{other}.{signature}")).send().await.unwrap();
    assert_eq!(forged.status().as_u16(), 403);

    let id = herald.send(ADMIN_KEY, &send("newsletter")).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "failed", "its only delivery was suppressed");
    assert_eq!(n["deliveries"][0]["reason"], "opted_out");

    // Critical categories go through any opt-out, and carry no unsubscribe link.
    let prefs = json!({"unsubscribed": true});
    assert_eq!(put(&herald, "/v1/users/ann/preferences", &prefs).await.0, 200);
    let id = herald.send(ADMIN_KEY, &send("security")).await;
    assert_eq!(herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await["status"], "sent");
    let message =
        smtp.messages().into_iter().find(|m| m.contains("Subject: About security")).unwrap();
    assert!(!message.contains("List-Unsubscribe"), "{message}");

    // The link was sent to this incarnation of `ann`: once she is deleted, and even
    // after a new `ann` is made, it answers 410 and changes nothing.
    let deleted = client.delete(herald.url("/v1/users/ann")).bearer_auth(ADMIN_KEY).send().await;
    assert_eq!(deleted.unwrap().status().as_u16(), 204);
    assert_eq!(client.get(&url).send().await.unwrap().status().as_u16(), 410);
    bulk_users(&herald, vec![json!({"id": "ann", "email": "ann@example.com"})]).await;
    let response = one_click().await.unwrap();
    assert_eq!(response.status().as_u16(), 410);
    assert_eq!(response.headers()["content-type"].to_str().unwrap(), "application/problem+json");
    let prefs = herald.get_json(ADMIN_KEY, "/v1/users/ann/preferences").await;
    assert_eq!(
        (prefs["revision"].as_u64(), prefs["categories"].get("newsletter")),
        (Some(0), None)
    );
}

/// Fallback routing to users: each member gets the first channel they have an identity
/// for and have not opted out of; when that one fails, the next is planned the same way.
#[tokio::test(flavor = "multi_thread")]
async fn fallback_routing_reaches_each_user_on_the_first_channel_they_allow() {
    let herald = Herald::start(&[]).await;
    let sink = WebhookSink::start(WEBHOOK_SECRET).await;
    bulk_users(
        &herald,
        vec![
            json!({"id": "f1", "email": "f1@example.com", "phone": "+14155550101"}),
            json!({"id": "f2", "phone": "+14155550102"}),
            json!({"id": "f3", "email": "f3@example.com", "phone": "+14155550103"}),
            json!({"id": "f4", "email": "f4@example.com", "webhook_url": sink.url("status=400")}),
        ],
    )
    .await;
    let no_email = json!({"categories": {"alerts": {"channels": {"email": false}}}});
    assert_eq!(put(&herald, "/v1/users/f3/preferences", &no_email).await.0, 200);
    assert_eq!(put(&herald, "/v1/groups/team", &json!({"name": "Team"})).await.0, 201);
    let members = json!({"add": ["f1", "f2", "f3", "f4"]});
    assert_eq!(herald.post(ADMIN_KEY, "/v1/groups/team/members", &members).await.status(), 200);
    let send = json!({
        "to": [{"group": "team"}, {"webhook": {"url": sink.url("status=400")}, "email": "direct@example.com"}],
        "channels": ["webhook", "email", "sms"], "routing": "fallback",
        "category": "alerts",
        "content": {"webhook": {"alert": 1}, "email": {"subject": "s", "text": "t"}, "sms": {"text": "t"}}
    });
    let id = herald.send(ADMIN_KEY, &send).await;
    let n = herald.wait_final(ADMIN_KEY, &id, Duration::from_secs(15)).await;
    assert_eq!(n["status"], "sent", "{n:#}");
    let mut outcome: Vec<(String, String, String, String)> = n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            (text(&d["user"]["id"]), text(&d["channel"]), text(&d["status"]), text(&d["reason"]))
        })
        .collect();
    outcome.sort();
    let row = |u: &str, c: &str, s: &str, r: &str| (u.into(), c.into(), s.into(), r.into());
    assert_eq!(
        outcome,
        [
            row("-", "email", "sent", "-"),
            row("-", "webhook", "failed", "webhook answered 400 Bad Request"),
            row("f1", "email", "sent", "-"),
            row("f1", "webhook", "suppressed", "no_address"),
            row("f2", "email", "suppressed", "no_address"),
            row("f2", "sms", "sent", "-"),
            row("f2", "webhook", "suppressed", "no_address"),
            row("f3", "email", "suppressed", "opted_out"),
            row("f3", "sms", "sent", "-"),
            row("f3", "webhook", "suppressed", "no_address"),
            row("f4", "email", "sent", "-"),
            row("f4", "webhook", "failed", "webhook answered 400 Bad Request"),
        ]
    );
    // The direct recipient's fallback went to its own address, not a member's.
    let direct = n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["user"].is_null() && d["channel"] == "email");
    assert_eq!(direct.unwrap()["address"], json!({"email": "direct@example.com"}));
}
