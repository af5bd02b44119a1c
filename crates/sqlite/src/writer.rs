//! One writer thread with group commit.
//!
//! SQLite allows one writer at a time, and a commit is the expensive part of a write.
//! So every write is sent to one thread, which runs all writes waiting at that moment
//! inside one transaction (each in its own savepoint, so one failing write does not undo
//! the others) and answers each caller only after the commit: a caller told "done" can
//! rely on the data being in the database file.

use crate::Db;
use herald_core::ports::StoreError;
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most writes folded into one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 128;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Op = Box<dyn FnOnce(&Connection) -> Reply + Send>;

#[derive(Clone)]
pub struct Writer {
    ops: mpsc::Sender<Op>,
}

impl Writer {
    pub fn start(connection: Connection) -> Self {
        let (ops, inbox) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run(connection, inbox))
            .expect("spawn the SQLite writer thread");
        Self { ops }
    }

    /// Runs `write` in the writer thread and returns its result once committed.
    pub async fn run<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, outcome) = oneshot::channel::<Result<T, StoreError>>();
        let op: Op = Box::new(move |conn| {
            let result = in_savepoint(conn, write);
            Box::new(move |commit: Result<(), String>| {
                let result = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                };
                let _ = done.send(result);
            })
        });
        self.ops
            .send(op)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT op").db()?.execute([]).db()?;
    match write(conn) {
        Ok(value) => {
            conn.prepare_cached("RELEASE op").db()?.execute([]).db()?;
            Ok(value)
        }
        Err(e) => {
            conn.prepare_cached("ROLLBACK TO op").db()?.execute([]).db()?;
            conn.prepare_cached("RELEASE op").db()?.execute([]).db()?;
            Err(e)
        }
    }
}

fn run(conn: Connection, inbox: mpsc::Receiver<Op>) {
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = inbox.recv() {
        // Another process (say `herald keys create`) may hold the write lock for longer
        // than the busy timeout: wait for it rather than fail the writes.
        while let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::warn!(error = %e, "SQLite is busy; retrying");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        replies.push(first(&conn));
        while replies.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(op) => replies.push(op(&conn)),
                Err(_) => break,
            }
        }
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies.drain(..) {
            reply(commit.clone());
        }
    }
}
