//! `herald`: run Herald locally, administer it, and send through any Herald API.

mod client;
mod config;
mod keys;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "herald", version, about = "Herald, the unified notification service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, dispatch and send workers in one process, with data in one SQLite file.
    Serve(Box<config::ServeArgs>),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Send a notification, or a JSON Lines file of them, to the API at HERALD_URL.
    Send(Box<client::SendArgs>),
    /// Read and cancel notifications through the API at HERALD_URL.
    #[command(subcommand)]
    Notifications(client::NotificationsCommand),
}

/// jemalloc, not the system's malloc: `herald serve` allocates and frees on many
/// threads at once (the API's, the workers', the SQLite writer's), and with glibc's
/// malloc it used 4-8% more CPU per delivery (docs/performance.md). jemalloc does
/// not build with MSVC.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Send(args) => client::send(*args).await,
            Command::Notifications(command) => client::notifications(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            ExitCode::from(2)
        }
    }
}
