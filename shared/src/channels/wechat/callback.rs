//! What WeChat pushes to an account's server URL, read without an XML library (the
//! messages are flat): the signature every push carries, and the
//! `TEMPLATESENDJOBFINISH` event that reports a template message's fate.

use crate::channels::Feedback;
use crate::domain::DeliveryStatus;
use sha1::{Digest, Sha1};

/// WeChat's signature of a push: hex SHA-1 of the token, timestamp and nonce, sorted
/// and joined.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    Sha1::digest(parts.concat().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of `<tag>` in a flat XML message, CDATA or not.
fn field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    let text = xml[start..end].trim();
    Some(text.strip_prefix("<![CDATA[").and_then(|t| t.strip_suffix("]]>")).unwrap_or(text))
}

/// A `TEMPLATESENDJOBFINISH` event: the message id and what it means for the delivery
/// (`success`: delivered; `failed:user block`: the user blocked the account;
/// `failed: system failed`: WeChat could not deliver). None for any other push.
pub fn job_finish(xml: &str) -> Option<(String, Feedback)> {
    if field(xml, "Event")? != "TEMPLATESENDJOBFINISH" {
        return None;
    }
    let msg_id = field(xml, "MsgID").or_else(|| field(xml, "MsgId"))?.to_owned();
    let status = field(xml, "Status")?;
    let feedback = if status == "success" {
        Feedback::Status { status: DeliveryStatus::Delivered, reason: None }
    } else {
        let why = status.trim_start_matches("failed:").trim();
        Feedback::Status { status: DeliveryStatus::Bounced, reason: Some(format!("wechat: {why}")) }
    };
    Some((msg_id, feedback))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently: python3 -c 'import hashlib; print(hashlib.sha1("".join(
    /// sorted(["AAAAA","1409304348","xxxxxx"])).encode()).hexdigest())'
    #[test]
    fn signatures_sort_their_parts() {
        assert_eq!(
            signature("AAAAA", "1409304348", "xxxxxx"),
            "87e50d28dcac81e5f82950c4c6f701200ac60e2c"
        );
    }

    #[test]
    fn job_finish_events_become_feedback() {
        let xml = "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>\
            <FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>\
            <CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>\
            <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>\
            <Status><![CDATA[failed:user block]]></Status></xml>";
        let (id, feedback) = job_finish(xml).unwrap();
        assert_eq!(id, "200163836");
        assert_eq!(
            feedback,
            Feedback::Status {
                status: DeliveryStatus::Bounced,
                reason: Some("wechat: user block".into())
            }
        );
        assert!(job_finish("<xml><Event>subscribe</Event></xml>").is_none());
    }
}
