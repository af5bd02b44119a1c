//! Render throughput for a typical email template (subject, text and an HTML body with
//! a loop over order lines, escaping, number and date filters), on one thread.
//!     cargo run --release -p herald-core --example render_bench [seconds]

use herald_core::templates::{Recipient, Renderer, TemplateParts};
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let parts: TemplateParts = serde_json::from_value(json!({"email": {
        "subject": "Your order {{ order.id }} has shipped",
        "text": "Hi {{ user.name }},\n{% for line in order.lines %}- {{ line.qty }} x {{ line.name }}: {{ line.price | number(2) }}\n{% endfor %}Total {{ order.total | number(2) }}, shipped {{ order.shipped_at | datetime }}.",
        "html": "<h1>Hi {{ user.name }}</h1><table>{% for line in order.lines %}<tr><td>{{ line.qty }}</td><td>{{ line.name }}</td><td>{{ line.price | number(2) }}</td></tr>{% endfor %}</table><p>Total <b>{{ order.total | number(2) }}</b>, shipped {{ order.shipped_at | date }}.</p><p><a href=\"https://shop.example/orders/{{ order.id }}\">Track it</a></p>"
    }}))
    .unwrap();
    let data = json!({
        "user": {"name": "Ann <ann@example.com>"},
        "order": {"id": "A-1001", "total": 1234.5, "shipped_at": "2026-12-01T23:30:00Z",
            "lines": [{"qty": 2, "name": "Wool socks", "price": 19.9}, {"qty": 1, "name": "Hat & scarf", "price": 45.0},
                      {"qty": 3, "name": "Gloves", "price": 12.5}]}
    });
    let recipient =
        Recipient { locale: Some("de-DE".into()), time_zone: "Europe/Berlin".parse().unwrap() };
    let renderer = Renderer::new();
    renderer.render(&parts, &data, &recipient).expect("renders"); // compile once
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut renders = 0u64;
    while Instant::now() < deadline {
        for _ in 0..100 {
            std::hint::black_box(renderer.render(&parts, &data, &recipient).unwrap());
        }
        renders += 100;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{renders} renders of a 3-part email in {elapsed:.2} s on one thread: {:.0} renders/s, {:.1} µs each",
        renders as f64 / elapsed,
        elapsed * 1e6 / renders as f64
    );
}
