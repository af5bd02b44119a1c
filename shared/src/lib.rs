//! herald-core: Herald's domain, ports, pipeline stages, templates, and the channels
//! with their providers. No backend and no web framework: herald-sqlite and herald-aws
//! implement the ports, herald-http serves the API, and the hosts (the `herald` CLI,
//! the Lambda functions) wire them together.

pub mod auth;
#[cfg(feature = "aws-sdk")]
pub mod aws_sdk;
pub mod channels;
pub mod domain;
pub mod integrations;
pub mod net;
pub mod objects;
pub mod pipeline;
pub mod ports;
pub mod templates;
pub mod time;
pub mod unsubscribe;
pub mod workers;
