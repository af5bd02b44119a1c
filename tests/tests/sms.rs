//! SMS vendors end to end on a real `herald serve`, each against a loopback fake
//! written from the vendor's documentation, which recomputes the request signature
//! (Aliyun ACS3-HMAC-SHA256, Tencent TC3-HMAC-SHA256, Twilio Basic auth): a templated
//! message to a user's phone, vendor errors on the delivery, and Twilio's signed
//! status callback turned into `delivered` or `bounced`.

use herald_tests::Herald;
use herald_tests::herald::ADMIN_KEY;
use herald_tests::vendor_fake::{Fake, Scripted};
use herald_tests::{aliyun_sms, tencent_sms, twilio};
use serde_json::{Value, json};
use std::time::Duration;

const LOOPBACK: (&str, &str) = ("HERALD_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8");
const WAIT: Duration = Duration::from_secs(30);

async fn setup(integration: Value) -> Herald {
    setup_with_id(integration).await.0
}

/// Herald with the integration, a user with a phone and an OTP template; the
/// integration's id.
async fn setup_with_id(integration: Value) -> (Herald, String) {
    let herald = Herald::start(&[LOOPBACK]).await;
    let response = herald.post(ADMIN_KEY, "/v1/integrations", &integration).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let integration_id = created["id"].as_str().expect("an id").to_owned();
    let response = herald
        .client
        .put(herald.url("/v1/users/ann"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"phone": "+8613800138000"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let template = json!({"id": "otp", "name": "One-time code", "locales": {"default": {"sms": {
        "text": "Your code is {{ code }}", "template_code": "SMS_154950909",
        "template_params": {"code": "{{ code }}", "1": "{{ code }}"}}}}});
    let response = herald.post(ADMIN_KEY, "/v1/templates", &template).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    (herald, integration_id)
}

fn otp(code: &str) -> Value {
    json!({"to": [{"user_id": "ann"}], "channels": ["sms"], "priority": "high",
           "template": {"id": "otp", "data": {"code": code}}})
}

/// Sends `body` and waits for it: the notification id and its one delivery.
async fn send_and_settle(herald: &Herald, body: &Value) -> (String, Value) {
    let id = herald.send(ADMIN_KEY, body).await;
    let n = herald.wait_final(ADMIN_KEY, &id, WAIT).await;
    (id, n["deliveries"][0].clone())
}

async fn final_delivery(herald: &Herald, body: &Value) -> Value {
    send_and_settle(herald, body).await.1
}

async fn delivery_now(herald: &Herald, id: &str) -> Value {
    herald.notification(ADMIN_KEY, id).await["deliveries"][0].clone()
}

fn no_rejections(fake: &Fake) {
    assert!(fake.rejected().is_empty(), "{:?}", fake.rejected());
}

const CALLBACK_TOKEN: &str = "report-url-token-5d41402abc4b2a76b9719d911017c592";

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_sends_signed_templates() {
    let fake = aliyun_sms::start().await;
    let (herald, integration) = setup_with_id(json!({"channel": "sms", "provider": "aliyun_sms",
        "name": "aliyun",
        "config": {"base_url": fake.base_url, "sign_name": aliyun_sms::SIGN_NAME},
        "secrets": {"access_key_id": aliyun_sms::ACCESS_KEY_ID,
                    "access_key_secret": aliyun_sms::ACCESS_KEY_SECRET,
                    "callback_token": CALLBACK_TOKEN}}))
    .await;
    let (first, delivery) = send_and_settle(&herald, &otp("4821")).await;
    assert_eq!(delivery["status"], "sent", "{delivery:#}");
    let (second, bounced) = send_and_settle(&herald, &otp("9999")).await;
    // The push reports both messages at once: one arrived, one the carrier refused.
    let biz_id = |d: &Value| d["provider_message_id"].as_str().expect("BizId").to_owned();
    let reports = [
        aliyun_sms::report(&biz_id(&delivery), "8613800138000", true, "DELIVERED", "用户接收成功"),
        aliyun_sms::report(&biz_id(&bounced), "8613800138000", false, "MK:0001", "blocked"),
    ];
    let url = herald.url(&format!("/v1/callbacks/aliyun_sms/default/{integration}"));
    let (status, _) = aliyun_sms::push_reports(&format!("{url}?token=guess"), &reports).await;
    assert_eq!(status, 403, "a push without the token changes nothing");
    assert_eq!(delivery_now(&herald, &first).await["status"], "sent");
    let (status, answer) =
        aliyun_sms::push_reports(&format!("{url}?token={CALLBACK_TOKEN}"), &reports).await;
    assert_eq!((status, &answer["code"]), (200, &json!(0)), "{answer}");
    assert_eq!(delivery_now(&herald, &first).await["status"], "delivered");
    let bounced = delivery_now(&herald, &second).await;
    assert_eq!(bounced["status"], "bounced", "{bounced:#}");
    assert!(bounced["reason"].as_str().unwrap_or_default().contains("aliyun error MK:0001"));
    no_rejections(&fake);
    let sent = &fake.received()[0].body;
    assert_eq!(sent["PhoneNumbers"], "8613800138000");
    assert_eq!(sent["TemplateCode"], "SMS_154950909");
    let params: Value = serde_json::from_str(sent["TemplateParam"].as_str().unwrap()).unwrap();
    assert_eq!(params["code"], "4821");
    fake.script([Scripted::Named("isv.SMS_TEMPLATE_ILLEGAL")]);
    let failed = final_delivery(&herald, &otp("1111")).await;
    assert_eq!(failed["status"], "failed");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("aliyun error isv.SMS_TEMPLATE_ILLEGAL"), "{reason}");
    fake.script([Scripted::Status(503)]);
    let retried = final_delivery(&herald, &otp("2222")).await;
    assert_eq!((retried["status"].as_str(), retried["attempts"].as_u64()), (Some("sent"), Some(2)));
    no_rejections(&fake);
}

#[tokio::test(flavor = "multi_thread")]
async fn tencent_sends_signed_templates() {
    let fake = tencent_sms::start().await;
    let (herald, integration) = setup_with_id(json!({"channel": "sms",
        "provider": "tencent_sms", "name": "tencent",
        "config": {"base_url": fake.base_url, "sdk_app_id": tencent_sms::SDK_APP_ID,
                   "sign_name": tencent_sms::SIGN_NAME, "region": "ap-guangzhou"},
        "secrets": {"secret_id": tencent_sms::SECRET_ID, "secret_key": tencent_sms::SECRET_KEY,
                    "callback_token": CALLBACK_TOKEN}}))
    .await;
    let (first, delivery) = send_and_settle(&herald, &otp("4821")).await;
    assert_eq!(delivery["status"], "sent", "{delivery:#}");
    let sid = delivery["provider_message_id"].as_str().expect("SerialNo").to_owned();
    let url = herald.url(&format!("/v1/callbacks/tencent_sms/default/{integration}"));
    let failed = [tencent_sms::report(&sid, "13800138000", false, "MN:0001", "空号")];
    let (status, _) = aliyun_sms::push_reports(&format!("{url}?token=nope"), &failed).await;
    assert_eq!(status, 403);
    let (status, answer) =
        aliyun_sms::push_reports(&format!("{url}?token={CALLBACK_TOKEN}"), &failed).await;
    assert_eq!((status, &answer["result"]), (200, &json!(0)), "{answer}");
    let bounced = delivery_now(&herald, &first).await;
    assert_eq!(bounced["status"], "bounced", "{bounced:#}");
    assert!(bounced["reason"].as_str().unwrap_or_default().contains("tencent error MN:0001"));
    // Not a report array: refused, naming the body.
    let response = herald
        .client
        .post(format!("{url}?token={CALLBACK_TOKEN}"))
        .json(&json!({"sid": sid}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    no_rejections(&fake);
    let sent = &fake.received()[0].body;
    assert_eq!(sent["PhoneNumberSet"], json!(["+8613800138000"]));
    assert_eq!(sent["TemplateId"], "SMS_154950909");
    // Positional parameters first ("1"), then any named ones.
    assert_eq!(sent["TemplateParamSet"][0], "4821");
    fake.script([Scripted::Named("InvalidParameterValue.IncorrectPhoneNumber")]);
    let failed = final_delivery(&herald, &otp("1111")).await;
    assert_eq!(failed["status"], "failed");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("tencent error InvalidParameterValue.IncorrectPhoneNumber"),
        "{reason}"
    );
    no_rejections(&fake);
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_sends_and_its_signed_status_callbacks_settle_the_delivery() {
    let fake = twilio::start().await;
    let herald = setup(json!({"channel": "sms", "provider": "twilio", "name": "twilio",
        "config": {"base_url": fake.base_url, "from": twilio::FROM},
        "secrets": {"account_sid": twilio::ACCOUNT_SID, "auth_token": twilio::AUTH_TOKEN}}))
    .await;
    let (first, delivery) = send_and_settle(&herald, &otp("4821")).await;
    assert_eq!(delivery["status"], "sent", "{delivery:#}");
    no_rejections(&fake);
    let sent = fake.received()[0].body.clone();
    assert_eq!(sent["To"], "+8613800138000");
    assert_eq!(sent["Body"], "Your code is 4821");
    let callback = sent["StatusCallback"].as_str().expect("a status callback").to_owned();
    let sid = delivery["provider_message_id"].as_str().expect("the message sid").to_owned();
    // A callback that is not Twilio's (wrong token) changes nothing.
    let forged = [("MessageSid", sid.as_str()), ("MessageStatus", "undelivered")];
    let status = twilio::send_status_callback(&callback, "not-the-token", &forged).await;
    assert_eq!(status, 403);
    let delivered = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", twilio::ACCOUNT_SID),
    ];
    let status = twilio::send_status_callback(&callback, twilio::AUTH_TOKEN, &delivered).await;
    assert_eq!(status, 204);
    assert_eq!(delivery_now(&herald, &first).await["status"], "delivered");
    // An undelivered message bounces with Twilio's error code.
    let (second_id, second) = send_and_settle(&herald, &otp("5555")).await;
    let callback = fake.received()[1].body["StatusCallback"].as_str().unwrap().to_owned();
    let sid = second["provider_message_id"].as_str().unwrap().to_owned();
    let undelivered =
        [("MessageSid", sid.as_str()), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
    assert_eq!(
        twilio::send_status_callback(&callback, twilio::AUTH_TOKEN, &undelivered).await,
        204
    );
    let bounced = delivery_now(&herald, &second_id).await;
    assert_eq!(bounced["status"], "bounced", "{bounced:#}");
    assert!(bounced["reason"].as_str().unwrap_or_default().contains("twilio error 30003"));
}
