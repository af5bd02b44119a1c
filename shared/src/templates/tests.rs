use super::*;
use crate::channels::SmsContent;
use serde_json::json;

fn order_template() -> TemplateParts {
    serde_json::from_value(json!({
        "email": {
            "subject": "Order {{ order.id }} has shipped",
            "text": "Hi {{ user.name }}, {{ order.items | length }} items, total {{ order.total | number(2) }}.",
            "html": "<p>Hi {{ user.name }}</p><p>Shipped {{ order.shipped_at | date }}</p>"
        },
        "sms": { "text": "Order {{ order.id }} shipped {{ order.shipped_at | datetime }}" },
        "push": { "title": "Shipped", "body": "Order {{ order.id }}", "data": { "url": "https://shop.example/o/{{ order.id }}" } },
        "chat": { "markdown": "**Order {{ order.id }}** shipped to {{ user.name }}" },
        "webhook": { "order": "{{ order.id }}", "lines": ["{{ order.items[0] }}"], "count": 2 }
    }))
    .unwrap()
}

fn data() -> Value {
    json!({
        "user": { "name": "Ann <ann@example.com>" },
        "order": { "id": "A-1001", "items": ["socks", "hat"], "total": 1234.5,
                   "shipped_at": "2026-12-01T23:30:00Z" }
    })
}

fn recipient(locale: &str, zone: &str) -> Recipient {
    Recipient { locale: Some(locale.into()), time_zone: zone.parse().unwrap() }
}

#[test]
fn every_channel_renders() {
    let out = Renderer::new()
        .render(&order_template(), &data(), &recipient("en-US", "America/New_York"))
        .unwrap();
    let email = out.email.unwrap();
    assert_eq!(email.subject, "Order A-1001 has shipped");
    assert_eq!(email.text.unwrap(), "Hi Ann <ann@example.com>, 2 items, total 1,234.50.");
    assert_eq!(out.sms.unwrap().text, "Order A-1001 shipped Dec 1, 2026 6:30 PM");
    let push = out.push.unwrap();
    assert_eq!(push.data["url"], "https://shop.example/o/A-1001");
    assert_eq!(out.chat.unwrap().markdown, "**Order A-1001** shipped to Ann <ann@example.com>");
    assert_eq!(out.webhook.unwrap().0, json!({"order": "A-1001", "lines": ["socks"], "count": 2}));
}

#[test]
fn only_email_html_is_escaped() {
    let out = Renderer::new().render(&order_template(), &data(), &Recipient::default()).unwrap();
    let email = out.email.unwrap();
    assert_eq!(
        email.html.unwrap(),
        "<p>Hi Ann &lt;ann@example.com&gt;</p><p>Shipped 2026-12-01</p>"
    );
    assert!(email.text.unwrap().contains("<ann@example.com>"), "plain text is not escaped");
}

#[test]
fn dates_and_numbers_follow_the_recipient() {
    let out = Renderer::new()
        .render(&order_template(), &data(), &recipient("de-DE", "Europe/Berlin"))
        .unwrap();
    assert!(out.email.as_ref().unwrap().text.as_ref().unwrap().ends_with("total 1.234,50."));
    assert_eq!(out.sms.unwrap().text, "Order A-1001 shipped 02.12.2026 00:30");
}

#[test]
fn an_undefined_variable_is_an_error_that_names_it() {
    let mut missing = data();
    missing["order"].as_object_mut().unwrap().remove("id");
    let error =
        Renderer::new().render(&order_template(), &missing, &Recipient::default()).unwrap_err();
    assert_eq!(
        error,
        TemplateError::Undefined { part: "email.subject".into(), variable: "order.id".into() }
    );
    assert_eq!(error.to_string(), "email.subject: undefined variable 'order.id'");
}

#[test]
fn a_syntax_error_names_the_part_line_and_column() {
    let broken: TemplateParts = serde_json::from_value(json!({
        "email": { "subject": "ok", "html": "<p>line one</p>\n<p>{{ user.name }</p>" }
    }))
    .unwrap();
    match Renderer::check(&broken).unwrap_err() {
        TemplateError::Syntax { part, line, column, .. } => {
            assert_eq!((part.as_str(), line), ("email.html", 2));
            assert!(column > 1, "column {column}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(Renderer::check(&order_template()).is_ok());
}

#[test]
fn a_runaway_loop_runs_out_of_fuel() {
    let greedy: TemplateParts = serde_json::from_value(json!({
        "sms": { "text": "{% for i in range(100000000) %}x{% endfor %}" }
    }))
    .unwrap();
    let error = Renderer::new().render(&greedy, &json!({}), &Recipient::default());
    assert!(matches!(error, Err(TemplateError::Render { .. })), "{error:?}");
}

#[test]
fn new_text_under_an_old_name_renders_the_new_text() {
    // A deleted and recreated template starts at version 1 again: the cache must key
    // on the text, not on id@version.
    let renderer = Renderer::new();
    let first = renderer.render(&order_template(), &data(), &Recipient::default()).unwrap();
    let mut changed = order_template();
    changed.sms = Some(SmsContent { text: "changed".into(), ..Default::default() });
    let second = renderer.render(&changed, &data(), &Recipient::default()).unwrap();
    assert!(first.sms.unwrap().text.starts_with("Order A-1001 shipped"));
    assert_eq!(second.sms.unwrap().text, "changed");
}
