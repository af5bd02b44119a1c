//! One writer thread with group commit.
//!
//! SQLite allows one writer at a time, and a commit is the expensive part of a write.
//! So every write is sent to one thread, which runs all writes waiting at that moment
//! inside one transaction and answers each caller only after the commit: a caller told
//! "done" can rely on the data being in the database file.
//!
//! One failing write must not undo the others. Each write could run in its own
//! savepoint, but a savepoint copies every page it first touches (a fifth of the
//! writer's time in profiles), and writes almost never fail. So a batch runs without
//! them; only if a write fails is the transaction rolled back and the batch run again,
//! each write in its own savepoint. Writes are `Fn` so that they can run twice.

use crate::Db;
use herald_core::ports::StoreError;
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most writes folded into one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 128;

/// WAL pages past which the writer checkpoints itself, as a backstop: a checkpoint
/// thread normally keeps up (see `checkpoint`), and SQLite's default of 1,000 pages
/// made every few commits stop the writer for a checkpoint.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;
/// The writer's page cache, in KiB (4 MB). Small on purpose: when a B-tree page split
/// renumbers pages, SQLite parks one under the lock-byte page's number (about page
/// 262,000), and the commit after it then walks the whole page cache to drop pages past
/// the end of the file. With the 32 MB of the other connections that walk was 3.7% of
/// Herald's CPU under load (docs/performance.md); the writer's hot pages (the right
/// edges of the tables and indexes, the queue) fit in far less.
const WRITER_CACHE_KIB: i64 = 4_000;

/// The checkpoint thread's pause after each checkpoint, so that a page written many
/// times over is copied once per pause, not once per commit.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// A write waiting in the writer thread, with its caller's answer.
trait Op: Send {
    /// Runs the write (again, if it ran before); true if it succeeded.
    fn apply(&mut self, conn: &Connection, in_savepoint: bool) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct Pending<T, F> {
    write: F,
    result: Option<Result<T, StoreError>>,
    done: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Op for Pending<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(&mut self, conn: &Connection, in_savepoint: bool) -> bool {
        let result = if in_savepoint { isolated(conn, &self.write) } else { (self.write)(conn) };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Backend("the write did not run".into())),
            (Err(e), _) => Err(StoreError::Backend(format!("commit failed: {e}"))),
        };
        let _ = self.done.send(result);
    }
}

#[derive(Clone)]
pub struct Writer {
    ops: mpsc::Sender<Box<dyn Op>>,
}

impl Writer {
    /// Starts the writer thread on `connection` and a checkpoint thread on
    /// `checkpointer`, a second connection to the same file.
    pub fn start(connection: Connection, checkpointer: Connection) -> Result<Self, StoreError> {
        connection.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES).db()?;
        connection.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).db()?;
        let (ops, inbox) = mpsc::channel::<Box<dyn Op>>();
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let (flush, flushes) = mpsc::sync_channel::<()>(1);
        if let Some(database) = connection.path().filter(|path| !path.is_empty()) {
            crate::wal_flush::start(database.into(), flushes);
        }
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run(connection, inbox, [committed, flush]))
            .expect("spawn the SQLite writer thread");
        std::thread::Builder::new()
            .name("herald-sqlite-checkpoint".into())
            .spawn(move || checkpoint(checkpointer, commits))
            .expect("spawn the SQLite checkpoint thread");
        Ok(Self { ops })
    }

    /// Runs `write` in the writer thread and returns its result once committed. `write`
    /// may run twice (see the module's comment); only its database effects count.
    pub async fn run<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, outcome) = oneshot::channel::<Result<T, StoreError>>();
        let op = Box::new(Pending { write, result: None, done });
        self.ops
            .send(op)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn isolated<T>(
    conn: &Connection,
    write: impl Fn(&Connection) -> Result<T, StoreError>,
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

fn begin(conn: &Connection) {
    // Another process (say `herald keys create`) may hold the write lock for longer
    // than the busy timeout: wait for it rather than fail the writes.
    while let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::warn!(error = %e, "SQLite is busy; retrying");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Copies committed pages from the WAL into the database file off the writer thread.
/// A passive checkpoint never blocks the writer; it ends when the writer does.
fn checkpoint(conn: Connection, commits: mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own will run");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// `committed` are told of each commit: the checkpoint thread and the WAL flusher.
fn run(conn: Connection, inbox: mpsc::Receiver<Box<dyn Op>>, committed: [mpsc::SyncSender<()>; 2]) {
    let mut batch: Vec<Box<dyn Op>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = inbox.recv() {
        begin(&conn);
        let mut all_ok = true;
        let mut next = Some(first);
        while let Some(mut op) = next.take() {
            // After a failure, the rest only queue up for the second run.
            all_ok = all_ok && op.apply(&conn, false);
            batch.push(op);
            if batch.len() < MAX_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        if !all_ok {
            let _ = conn.execute_batch("ROLLBACK");
            begin(&conn);
            for op in &mut batch {
                op.apply(&conn, true);
            }
        }
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for op in batch.drain(..) {
            op.finish(commit.clone());
        }
        // Full means they are already due to run.
        for listener in &committed {
            let _ = listener.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Writer;
    use crate::Db;
    use herald_core::ports::StoreError;
    use rusqlite::Connection;
    use std::future::Future;
    use std::sync::{Arc, Mutex, mpsc};
    use std::task::Poll;

    fn insert(x: i64) -> impl Fn(&Connection) -> Result<(), StoreError> {
        move |conn| conn.execute("INSERT INTO t (x) VALUES (?1)", [x]).map(|_| ()).db()
    }

    /// Polls `future` once, so that a write it starts reaches the writer's queue.
    async fn start<F: Future + Unpin>(future: &mut F) {
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut *future).poll(cx);
            Poll::Ready(())
        })
        .await
    }

    #[tokio::test]
    async fn a_failing_write_undoes_nothing_of_the_others_in_its_transaction() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)").unwrap();
        let writer = Writer::start(conn, Connection::open_in_memory().unwrap()).unwrap();
        // The first write holds the writer until the other three wait behind it, so all
        // four share one transaction.
        let (open, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut first = Box::pin(writer.run(move |conn| {
            let _ = gate.lock().unwrap().recv(); // returns at once on a second run
            insert(0)(conn)
        }));
        let mut second = Box::pin(writer.run(insert(1)));
        // Its first statement succeeds; the second fails, so the first must be undone.
        let mut duplicate = Box::pin(writer.run(|conn| {
            insert(2)(conn)?;
            insert(1)(conn)
        }));
        let mut fourth = Box::pin(writer.run(insert(3)));
        start(&mut first).await;
        start(&mut second).await;
        start(&mut duplicate).await;
        start(&mut fourth).await;
        open.send(()).unwrap();
        drop(open); // so that a second run of the first write does not wait
        assert!(first.await.is_ok());
        assert!(second.await.is_ok());
        assert!(duplicate.await.is_err(), "the UNIQUE constraint fails it");
        assert!(fourth.await.is_ok());
        let rows: Vec<i64> = writer
            .run(|conn| {
                let mut select = conn.prepare("SELECT x FROM t ORDER BY x").db()?;
                select.query_map([], |r| r.get(0)).db()?.collect::<Result<_, _>>().db()
            })
            .await
            .unwrap();
        assert_eq!(rows, vec![0, 1, 3]);
    }
}
