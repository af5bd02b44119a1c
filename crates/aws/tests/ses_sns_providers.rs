//! The SES and SNS providers through the real AWS SDK against the moto server on
//! loopback: what they send is read back from moto's `/moto-api/data.json`, and SES's
//! refusal of an unverified sender is a permanent failure, not a retry.

use herald_contract as contract;
use herald_core::channels::{
    OutboundMessage, Provider, ProviderError, SesProvider, SnsSmsProvider,
};
use herald_core::domain::{
    Address, Content, DeliveryId, EmailAddress, EmailContent, NotificationId, PhoneNumber,
    Priority, SmsContent,
};
use serde_json::Value;

fn message(address: Address, priority: Priority) -> OutboundMessage {
    OutboundMessage {
        delivery_id: DeliveryId::new(),
        notification_id: NotificationId::new(),
        app_id: "shop".into(),
        priority,
        category: Some("orders".into()),
        address,
        content: Content {
            email: Some(EmailContent {
                subject: format!("Order shipped {}", ulid::Ulid::new()),
                text: Some("On its way.".into()),
                html: Some("<p>On its way.</p>".into()),
            }),
            sms: Some(SmsContent {
                text: format!("Code {}", ulid::Ulid::new()),
                ..Default::default()
            }),
            ..Default::default()
        },
        // SES takes the RFC 8058 pair as message headers.
        unsubscribe_url: Some("https://herald.example.com/v1/unsubscribe/t.s".into()),
        metadata: None,
    }
}

async fn moto_data() -> Value {
    let endpoint = contract::emulator_endpoint().expect("checked by emulator_config");
    reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ses_sends_from_a_verified_identity_and_refuses_others_for_good() {
    let Some(config) = contract::emulator_config().await else { return };
    let ses = aws_sdk_sesv2::Client::new(&config);
    let sender = format!("{}@example.com", contract::unique_prefix());
    ses.create_email_identity().email_identity(&sender).send().await.unwrap();
    let to = Address::Email(EmailAddress::parse("ann@example.com").unwrap());

    let provider = SesProvider::new(ses.clone(), &sender, None);
    let sent = message(to.clone(), Priority::High);
    let receipt = provider.send(&sent).await.unwrap();
    assert!(receipt.provider_message_id.is_some());
    let subject = sent.content.email.as_ref().unwrap().subject.clone();
    let data = moto_data().await;
    let recorded = data["ses"]["Message"].as_array().unwrap();
    let found = recorded.iter().find(|m| m["subject"] == subject.as_str()).expect("SES has it");
    assert_eq!(found["source"], sender.as_str());
    assert_eq!(found["destinations"]["ToAddresses"][0], "ann@example.com");

    let unverified = SesProvider::new(ses, "nobody@unverified.example", None);
    match unverified.send(&message(to, Priority::High)).await {
        Err(ProviderError::Permanent(reason)) => assert!(reason.contains("SES"), "{reason}"),
        other => panic!("an unverified sender is a permanent failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_publishes_sms_to_the_number() {
    let Some(config) = contract::emulator_config().await else { return };
    let provider = SnsSmsProvider::new(aws_sdk_sns::Client::new(&config), None);
    let to = Address::Phone(PhoneNumber::parse("+14155550142").unwrap());
    let sent = message(to, Priority::Low);
    assert!(provider.send(&sent).await.unwrap().provider_message_id.is_some());
    let text = sent.content.sms.as_ref().unwrap().text.clone();
    let data = moto_data().await;
    let recorded = data["sns"]["SMS"].as_array().unwrap();
    let found = recorded.iter().find(|m| m["message"] == text.as_str()).expect("SNS has it");
    assert_eq!(found["phone_number"], "+14155550142");

    let wrong =
        message(Address::Email(EmailAddress::parse("ann@example.com").unwrap()), Priority::Low);
    assert!(matches!(provider.send(&wrong).await, Err(ProviderError::Permanent(_))));
}
