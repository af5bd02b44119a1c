//! Delivery reports the Chinese SMS vendors push to a URL the operator configures in
//! their console: both send a JSON array, one element per message, and sign nothing
//! (Herald's callback URL carries a token instead; see `crates/http/src/callbacks.rs`).
//! - Aliyun's SmsReport (HTTP batch push): `biz_id` (SendSms's `BizId`), `success`,
//!   `err_code` (`DELIVERED` when it arrived), `err_msg`; answered `{"code": 0}`.
//! - Tencent's status callback: `sid` (SendSms's `SerialNo`), `report_status`
//!   (`SUCCESS` or `FAIL`), `errmsg` (the carrier's code), `description`; answered
//!   `{"result": 0}`.

use crate::channels::Feedback;
use crate::domain::DeliveryStatus;
use serde_json::Value;

/// Each report's message id and what it means for the delivery.
pub type Reports = Vec<(String, Feedback)>;

fn array(body: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err("a report push is a JSON array".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn status(arrived: bool, reason: String) -> Feedback {
    if arrived {
        Feedback::Status { status: DeliveryStatus::Delivered, reason: None }
    } else {
        Feedback::Status { status: DeliveryStatus::Bounced, reason: Some(reason) }
    }
}

fn text<'a>(item: &'a Value, name: &str) -> &'a str {
    item[name].as_str().unwrap_or_default()
}

pub fn aliyun(body: &[u8]) -> Result<Reports, String> {
    array(body)?
        .iter()
        .map(|item| {
            let id = item["biz_id"].as_str().ok_or("a report without biz_id")?;
            let arrived = item["success"].as_bool().ok_or("a report without success")?;
            let reason =
                format!("aliyun error {}: {}", text(item, "err_code"), text(item, "err_msg"));
            Ok((id.to_owned(), status(arrived, reason)))
        })
        .collect()
}

pub fn tencent(body: &[u8]) -> Result<Reports, String> {
    array(body)?
        .iter()
        .map(|item| {
            let id = item["sid"].as_str().ok_or("a report without sid")?;
            let arrived = match text(item, "report_status") {
                "SUCCESS" => true,
                "FAIL" => false,
                _ => return Err("report_status is SUCCESS or FAIL".to_owned()),
            };
            let reason =
                format!("tencent error {}: {}", text(item, "errmsg"), text(item, "description"));
            Ok((id.to_owned(), status(arrived, reason)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliyun_reports_name_the_biz_id() {
        let body = br#"[{"phone_number":"13800000000","send_time":"2026-12-04 10:00:00",
            "report_time":"2026-12-04 10:00:03","success":true,"err_code":"DELIVERED",
            "err_msg":"ok","sms_size":"1","biz_id":"900619746936498440^0","out_id":"x"},
            {"phone_number":"13800000001","success":false,"err_code":"MK:0001",
            "err_msg":"blocked","biz_id":"b2"}]"#;
        let reports = aliyun(body).unwrap();
        assert_eq!(reports[0].0, "900619746936498440^0");
        assert_eq!(
            reports[0].1,
            Feedback::Status { status: DeliveryStatus::Delivered, reason: None }
        );
        let reason = Some("aliyun error MK:0001: blocked".to_owned());
        assert_eq!(reports[1].1, Feedback::Status { status: DeliveryStatus::Bounced, reason });
        assert!(aliyun(br#"{"biz_id":"b"}"#).is_err());
        assert!(aliyun(br#"[{"success":true}]"#).is_err());
    }

    #[test]
    fn tencent_reports_name_the_serial_number() {
        let body = br#"[{"user_receive_time":"2026-12-04 10:00:03","nationcode":"86",
            "mobile":"13800000000","report_status":"FAIL","errmsg":"MN:0001",
            "description":"empty number","sid":"2019:6"}]"#;
        let reports = tencent(body).unwrap();
        assert_eq!(reports[0].0, "2019:6");
        let reason = Some("tencent error MN:0001: empty number".to_owned());
        assert_eq!(reports[0].1, Feedback::Status { status: DeliveryStatus::Bounced, reason });
        assert!(tencent(br#"[{"sid":"s","report_status":"MAYBE"}]"#).is_err());
    }
}
