//! herald-core: Herald's domain, pipeline stages, ports and their backends, channel
//! providers, and the HTTP API. Hosts (the `herald` CLI, the Lambda functions) are thin
//! layers over this crate.

pub mod auth;
pub mod channels;
pub mod contract;
pub mod domain;
pub mod http;
pub mod integrations;
pub mod net;
pub mod objects;
pub mod pipeline;
pub mod ports;
pub mod templates;
pub mod time;
pub mod unsubscribe;
pub mod workers;
