//! The test webhook sink as a standalone server, for benchmarks:
//! `webhook-sink PORT SECRET`. `GET /stats` reports what it received.

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 =
        args.next().and_then(|p| p.parse().ok()).expect("usage: webhook-sink PORT SECRET");
    let secret = args.next().unwrap_or_else(|| herald_tests::WEBHOOK_SECRET.to_owned());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let sink = herald_tests::WebhookSink::serve(listener, &secret).await;
    println!("webhook-sink: listening on {}", sink.base_url);
    tokio::signal::ctrl_c().await.ok();
}
