//! Black-box tests of `/v1/templates` against a real `herald serve` process: create,
//! immutable versions, rollback, preview across channels and locales, and the errors.

use herald_tests::Herald;
use herald_tests::herald::ADMIN_KEY;
use serde_json::{Value, json};

fn order_shipped() -> Value {
    json!({
        "id": "order-shipped",
        "name": "Order shipped",
        "locales": {
            "default": {
                "email": {
                    "subject": "Order {{ order.id }} has shipped",
                    "text": "Hi {{ name }}, total {{ order.total | number(2) }}.",
                    "html": "<p>Hi {{ name }}</p>"
                },
                "sms": { "text": "Order {{ order.id }} shipped {{ order.at | datetime }}" }
            },
            "de": { "sms": { "text": "Bestellung {{ order.id }} versandt am {{ order.at | date }}, {{ order.total | number(2) }} €" } },
            "zh-Hant": { "sms": { "text": "訂單 {{ order.id }} 已出貨" } }
        }
    })
}

fn sample() -> Value {
    json!({"name": "Ann <ann@example.com>", "order": {"id": "A-1", "total": 1234.5, "at": "2026-12-01T23:30:00Z"}})
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_have_immutable_versions_rollback_and_preview() {
    let herald = Herald::start(&[]).await;
    let (status, created) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates", &order_shipped()).await).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["latest_version"].as_u64(), created["version"]["version"].as_u64()),
        (Some(1), Some(1))
    );
    let (status, _) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates", &order_shipped()).await).await;
    assert_eq!(status, 409, "ids are unique");

    // Preview: the email html is escaped, the text is not; numbers and dates follow the locale.
    let preview = |body: Value| {
        let herald = &herald;
        async move {
            status_and_json(
                herald.post(ADMIN_KEY, "/v1/templates/order-shipped/preview", &body).await,
            )
            .await
        }
    };
    let (status, en) =
        preview(json!({"data": sample(), "locale": "en-US", "time_zone": "America/New_York"}))
            .await;
    assert_eq!(status, 200, "{en}");
    assert_eq!(en["locale"], "default");
    assert_eq!(en["rendered"]["email"]["subject"], "Order A-1 has shipped");
    assert_eq!(en["rendered"]["email"]["html"], "<p>Hi Ann &lt;ann@example.com&gt;</p>");
    assert_eq!(en["rendered"]["email"]["text"], "Hi Ann <ann@example.com>, total 1,234.50.");
    assert_eq!(en["rendered"]["sms"]["text"], "Order A-1 shipped Dec 1, 2026 6:30 PM");
    let (_, de) =
        preview(json!({"data": sample(), "locale": "de-AT", "time_zone": "Europe/Vienna"})).await;
    assert_eq!(
        (de["locale"].as_str(), de["rendered"]["sms"]["text"].as_str()),
        (Some("de"), Some("Bestellung A-1 versandt am 02.12.2026, 1.234,50 €"))
    );
    let (_, zh) = preview(json!({"data": sample(), "locale": "zh-Hant-TW"})).await;
    assert_eq!(
        (zh["locale"].as_str(), zh["rendered"]["sms"]["text"].as_str()),
        (Some("zh-Hant"), Some("訂單 A-1 已出貨"))
    );

    // A missing variable is a 422 that names it.
    let (status, problem) = preview(json!({"data": {"name": "Ann"}})).await;
    assert_eq!(status, 422);
    assert!(
        problem["errors"][0]["message"].as_str().unwrap().contains("undefined variable 'order.id'"),
        "{problem}"
    );

    // A new version; version 1 stays as it was.
    let v2 =
        json!({"locales": {"default": {"sms": {"text": "v2 {{ order.id }}"}}}, "note": "shorter"});
    let (status, published) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates/order-shipped/versions", &v2).await)
            .await;
    assert_eq!((status, published["version"].as_u64()), (201, Some(2)), "{published}");
    let (_, latest) = preview(json!({"data": sample()})).await;
    assert_eq!(latest["rendered"]["sms"]["text"], "v2 A-1");
    let (_, pinned) = preview(json!({"data": sample(), "version": 1})).await;
    assert_eq!(
        pinned["rendered"]["sms"]["text"], "Order A-1 shipped 2026-12-01 23:30",
        "no locale: ISO"
    );

    // Rollback publishes version 3 as a copy of version 1.
    let (status, rolled) = status_and_json(
        herald
            .post(ADMIN_KEY, "/v1/templates/order-shipped/rollback", &json!({"version": 1}))
            .await,
    )
    .await;
    assert_eq!(
        (status, rolled["version"].as_u64(), rolled["note"].as_str()),
        (201, Some(3), Some("rollback to version 1"))
    );
    let template = herald.get_json(ADMIN_KEY, "/v1/templates/order-shipped").await;
    assert_eq!(template["latest_version"], 3);
    assert_eq!(
        template["version"]["locales"]["zh-Hant"]["sms"]["text"],
        "訂單 {{ order.id }} 已出貨"
    );
    let v1 = herald.get_json(ADMIN_KEY, "/v1/templates/order-shipped/versions/1").await;
    assert_eq!(v1["locales"], order_shipped()["locales"]);
    let listed = herald.get_json(ADMIN_KEY, "/v1/templates").await;
    assert_eq!(listed["data"][0]["id"], "order-shipped");

    // Another app sees none of it; delete removes it.
    let other = herald.key("other-app", &["read", "manage"]).await;
    assert_eq!(herald.get(&other, "/v1/templates/order-shipped").await.status().as_u16(), 404);
    let client = reqwest::Client::new();
    let delete = |key: String| {
        client.delete(herald.url("/v1/templates/order-shipped")).bearer_auth(key).send()
    };
    assert_eq!(delete(ADMIN_KEY.to_owned()).await.unwrap().status().as_u16(), 204);
    assert_eq!(delete(ADMIN_KEY.to_owned()).await.unwrap().status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_a_broken_template_names_the_line_and_column() {
    let herald = Herald::start(&[]).await;
    let mut broken = order_shipped();
    broken["locales"]["de"]["sms"]["text"] = json!("Hallo\n{{ order.id }");
    let (status, problem) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates", &broken).await).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "locales.de.sms.text");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("syntax error at line 2, column "), "{message}");

    let mut no_default = order_shipped();
    no_default["locales"].as_object_mut().unwrap().remove("default");
    let (status, problem) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates", &no_default).await).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("locales")));

    let mut bad_id = order_shipped();
    bad_id["id"] = json!("Order Shipped!");
    let (status, problem) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates", &bad_id).await).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("id")));

    let reader = herald.key("default", &["read"]).await;
    let (status, _) =
        status_and_json(herald.post(&reader, "/v1/templates", &order_shipped()).await).await;
    assert_eq!(status, 403, "writing templates needs the manage scope");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_renders_its_template() {
    let herald = Herald::start(&[]).await;
    let (status, _) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/templates", &order_shipped()).await).await;
    assert_eq!(status, 201);
    let send = json!({
        "to": [{"email": "ann@example.com", "phone": "+14155550100"}],
        "channels": ["email", "sms"],
        "template": {"id": "order-shipped", "locale": "de-DE", "time_zone": "Europe/Berlin", "data": sample()}
    });
    let id = herald.send(ADMIN_KEY, &send).await;
    let n = herald.wait_final(ADMIN_KEY, &id, std::time::Duration::from_secs(10)).await;
    assert_eq!(n["status"], "sent");
    assert_eq!(
        n["template"],
        json!({
            "id": "order-shipped", "version": 1, "locale": "de",
            "requested_locale": "de-DE", "time_zone": "Europe/Berlin", "data": sample()
        })
    );
    assert_eq!(n["content"]["sms"]["text"], "Bestellung A-1 versandt am 02.12.2026, 1.234,50 €");
    assert_eq!(
        n["content"]["email"]["subject"], "Order A-1 has shipped",
        "de has no email part: default's"
    );
    let logged = herald.get_json(ADMIN_KEY, "/v1/log-messages").await;
    assert!(
        logged
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content"]["subject"] == "Order A-1 has shipped")
    );

    // Errors point into the template request.
    let mut missing = send.clone();
    missing["template"]["data"] = json!({"name": "Ann"});
    let (status, problem) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/notifications", &missing).await).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("template.data")),
        "{problem}"
    );
    let mut unknown = send.clone();
    unknown["template"]["id"] = json!("nope");
    let (status, problem) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/notifications", &unknown).await).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("template.id")));
    let mut both = send.clone();
    both["content"] = json!({"sms": {"text": "hi"}});
    let (status, _) =
        status_and_json(herald.post(ADMIN_KEY, "/v1/notifications", &both).await).await;
    assert_eq!(status, 422, "content or template, not both");
}
