//! The local backend: one SQLite file in WAL mode holds the store and the queues.

mod queue;

use queue::{insert_jobs, queues_of};
mod groups;
mod integrations;
mod preferences;
mod store;
mod templates;
mod users;

pub use herald_core::ports::IDEMPOTENCY_WINDOW;
mod wakeup;
mod wal_flush;
mod writer;

use herald_core::ports::{QueueName, StoreError};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wakeup::Wakeup;
use writer::Writer;

/// Store and Queue over one SQLite database. Cheap to clone.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    wakeups: HashMap<&'static str, Wakeup>,
    /// When queued jobs become visible and leases expire.
    clock: Arc<dyn herald_core::time::Clock>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(herald_core::time::SystemClock))
    }

    /// Opens with `clock` deciding when queued jobs are due (tests move it by hand).
    pub fn open_with_clock(
        path: &Path,
        clock: Arc<dyn herald_core::time::Clock>,
    ) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        conn.execute_batch(include_str!("schema.sql")).db()?;
        add_missing_columns(&conn)?;
        backfill_notification_channels(&conn)?;
        let wakeups = QueueName::all().map(|q| (q.as_str(), Wakeup::default())).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Writer::start(conn, open_connection(path)?)?,
                readers: Mutex::new(Vec::new()),
                wakeups,
                clock,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Copies the whole WAL into the database and empties it, waiting for readers
    /// and the writer to finish what they are doing: for a clean stop, after which the
    /// next start has nothing to replay. (The file itself goes only when the last
    /// connection closes, which a process that exits does not wait for.)
    pub async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        let checkpoint = move || {
            let conn = open_connection(&path)?;
            // The checkpoint thread may be running its own, after the last commit: a
            // second checkpoint is refused at once (the busy timeout does not apply to
            // that lock), so try again for up to two seconds.
            for _ in 0..100 {
                // (busy, WAL frames, frames copied); busy = 1 when it could not finish.
                let busy: i64 =
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0)).db()?;
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(StoreError::Unavailable("the WAL is in use".into()))
        };
        tokio::task::spawn_blocking(checkpoint)
            .await
            .map_err(|e| StoreError::Backend(format!("WAL checkpoint: {e}")))?
    }

    /// Now on the backend's clock, in Unix milliseconds (the queue's time unit).
    fn now_ms(&self) -> i64 {
        self.inner.clock.now().timestamp_millis()
    }

    fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// Runs a read on a pooled connection, on the calling thread. Herald's reads are
    /// indexed lookups of well under a millisecond; handing each to the blocking pool
    /// cost more in thread wake-ups than the read itself (seen in profiles).
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pooled = self.inner.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.inner.path)?,
        };
        let result = read(&conn);
        self.inner.readers.lock().expect("reader pool").push(conn);
        result
    }

    fn wakeup(&self, queue: QueueName) -> &Wakeup {
        &self.inner.wakeups[queue.as_str()]
    }
}

/// Columns added after a table was first released: `CREATE TABLE IF NOT EXISTS` leaves
/// an older file's tables as they were, so add what they lack.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("deliveries", "user", "TEXT"),
    ("deliveries", "deliver_after", "TEXT"),
    ("users", "preferences", "TEXT"),
    ("users", "preferences_revision", "INTEGER NOT NULL DEFAULT 0"),
    ("deliveries", "integration", "TEXT"),
];

/// A file from before `notification_channels` existed gets its rows once.
fn backfill_notification_channels(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "INSERT OR IGNORE INTO notification_channels (app_id, channel, notification_id)
         SELECT n.app_id, c.value, n.id FROM notifications n, json_each(n.channels) c
         WHERE NOT EXISTS (SELECT 1 FROM notification_channels)",
    )
    .db()?;
    Ok(())
}

fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, declaration) in ADDED_COLUMNS {
        let present: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |row| row.get(0),
            )
            .db()?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))
                .db()?;
        }
    }
    Ok(())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).db()?;
    configure(&conn)?;
    Ok(conn)
}

/// Settings every connection gets, file or in memory.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    // WAL lets readers run beside the writer. synchronous=NORMAL makes a commit durable
    // against a process crash (kill -9) without an fsync per commit; an OS crash or power
    // loss can lose the last commits since the previous checkpoint.
    // temp_store=MEMORY keeps the statement sub-journal in memory: the writer runs each
    // write in a savepoint, and with a file sub-journal every first touch of a page was
    // a pwrite, a fifth of all CPU under load (docs/performance.md, "Where the time goes").
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -32000;
         PRAGMA temp_store = MEMORY;",
    )
    .db()?;
    // The query planner stability guarantee: plans never depend on bound values. Without
    // it SQLite re-planned the lease statement on every call (a parse and a plan, an
    // eighth of the writer thread's time), for a plan that never changes.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteBackend {
    /// Makes every leased job visible again at once. Only for a host that owns the
    /// database alone (`herald serve` holds a lock on its data directory): at its start,
    /// any lease must belong to a previous run that died, and its work should not wait
    /// for the visibility timeout.
    pub async fn release_all_leases(&self) -> Result<u64, StoreError> {
        self.writer()
            .run(|conn| {
                let n = conn.execute(
                    "UPDATE jobs SET visible_at = 0, lease_token = NULL WHERE lease_token IS NOT NULL",
                    [],
                ).db()?;
                Ok(n as u64)
            })
            .await
    }
}

/// SQLite's errors in the store's terms: busy or locked is worth retrying.
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

/// `.db()?` turns a rusqlite result into the store's (a port carries no rusqlite type,
/// and the orphan rule keeps `From` out of this crate).
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(store_error)
    }
}

#[cfg(test)]
mod error_tests {
    use herald_core::ports::StoreError;

    #[test]
    fn busy_databases_are_worth_a_retry_and_corrupt_records_are_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(super::store_error(busy), StoreError::Unavailable(_)));
        let corrupt = StoreError::from(serde_json::from_str::<u8>("x").unwrap_err());
        assert!(matches!(corrupt, StoreError::Corrupt(_)) && !corrupt.is_transient());
    }
}
