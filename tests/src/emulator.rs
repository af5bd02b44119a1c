//! What moto says it sent: its state, read back over its own API on loopback.

use serde_json::Value;

/// Everything moto holds (`/moto-api/data.json`).
pub async fn moto_data(endpoint: &str) -> Value {
    reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap()
}

/// Emails SES sent to `to`.
pub fn sent_emails(data: &Value, to: &str) -> usize {
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages.iter().filter(|m| m["destinations"]["ToAddresses"][0] == to).count()
}

/// Texts SNS sent to `to`.
pub fn sent_sms(data: &Value, to: &str) -> usize {
    let messages = data["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    messages.iter().filter(|m| m["phone_number"] == to).count()
}
