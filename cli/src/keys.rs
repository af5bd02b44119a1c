//! `herald keys create`: mint an API key straight into the data directory's database
//! (works while `herald serve` runs: SQLite WAL takes a second writer process).

use crate::config::DataArgs;
use anyhow::Context;
use clap::Subcommand;
use herald_core::auth::{Scope, mint_key, validate_app_id};
use herald_core::ports::KeyStore;
use herald_sqlite::SqliteBackend;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Mint a key and print it (it is shown only this once).
    Create {
        /// The app the key is bound to.
        #[arg(long, default_value = "default")]
        app: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated: send, read, manage, approve, admin.
        #[arg(long, value_delimiter = ',', default_value = "send,read")]
        scopes: Vec<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { app, name, scopes, data } => {
            validate_app_id(&app).map_err(anyhow::Error::msg).context("--app")?;
            let scopes = scopes
                .iter()
                .map(|s| s.trim().parse::<Scope>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)
                .context("--scopes")?;
            std::fs::create_dir_all(&data.data_dir).with_context(|| {
                format!("HERALD_DATA_DIR: cannot create {}", data.data_dir.display())
            })?;
            let store = SqliteBackend::open(&data.database())?;
            let minted = mint_key(&app, &name, scopes);
            store.insert_api_key(&minted.record).await?;
            println!("{}", minted.secret);
            eprintln!(
                "key {} for app '{}' with scopes {}: store it now, it is not shown again",
                minted.record.id,
                app,
                minted.record.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
            );
            Ok(())
        }
    }
}
