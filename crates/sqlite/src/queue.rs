//! `Queue` on SQLite: a jobs table with strict priority, leases and dead letters, plus
//! in-process wake-ups so idle workers do not poll in a tight loop.

use super::SqliteBackend;
use crate::Db;
use async_trait::async_trait;
use herald_core::domain::Priority;
use herald_core::ports::{
    DeadLetter, HeldJobs, Job, LeasedJob, QueueConsumer, QueueName, QueueProducer, QueueStats,
    StoreResult,
};
use rand::RngCore;
use rusqlite::{Connection, params};
use std::time::Duration;

fn new_token() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes jobs inside the caller's transaction; a job whose dedup key is already
/// waiting in its queue is skipped.
pub(super) fn insert_jobs(conn: &Connection, jobs: &[Job], now: i64) -> StoreResult<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO jobs (queue, priority, dedup_key, payload, visible_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    ).db()?;
    for job in jobs {
        insert
            .execute(params![
                job.queue.as_str(),
                job.priority.rank(),
                job.dedup_key,
                job.payload,
                now + job.delay.as_millis() as i64,
                now
            ])
            .db()?;
    }
    Ok(())
}

pub(super) fn queues_of(jobs: &[Job]) -> Vec<QueueName> {
    let mut queues: Vec<QueueName> = jobs.iter().map(|j| j.queue).collect();
    queues.dedup();
    queues
}

impl SqliteBackend {
    /// Wakes an idle worker of each of `queues` (see `wakeup`); call after the commit
    /// that added their jobs.
    pub(super) fn wake(&self, queues: &[QueueName]) {
        for queue in queues {
            self.wakeup(*queue).wake();
        }
    }
}

#[async_trait]
impl QueueProducer for SqliteBackend {
    async fn enqueue(&self, jobs: Vec<Job>) -> StoreResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let queues = queues_of(&jobs);
        let now = self.now_ms();
        self.writer().run(move |conn| insert_jobs(conn, &jobs, now)).await?;
        self.wake(&queues);
        Ok(())
    }
}

impl SqliteBackend {
    /// Gives a leased job back, visible after `delay`, with `uncount` taken off its
    /// attempts (1 when this lease was not an attempt).
    async fn release(
        &self,
        job: &LeasedJob,
        delay: Duration,
        error: &str,
        uncount: u32,
    ) -> StoreResult<()> {
        let (id, token, error) = (job.id, job.lease_token.clone(), error.to_owned());
        let queue = job.queue;
        let now = self.now_ms();
        self.writer()
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE jobs SET visible_at = ?1, lease_token = NULL, last_error = ?2,
                            attempts = max(attempts - ?5, 0)
                     WHERE id = ?3 AND lease_token = ?4",
                )
                .db()?
                .execute(params![now + delay.as_millis() as i64, error, id, token, uncount])
                .db()?;
                Ok(())
            })
            .await?;
        self.wakeup(queue).wake();
        Ok(())
    }
}

#[async_trait]
impl HeldJobs for SqliteBackend {
    async fn ack(&self, jobs: &[LeasedJob]) -> StoreResult<()> {
        let keys: Vec<(i64, String)> = jobs.iter().map(|j| (j.id, j.lease_token.clone())).collect();
        self.writer()
            .run(move |conn| {
                let mut delete = conn
                    .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND lease_token = ?2")
                    .db()?;
                for (id, token) in &keys {
                    delete.execute(params![id, token]).db()?;
                }
                Ok(())
            })
            .await
    }

    async fn retry(&self, job: &LeasedJob, delay: Duration, error: &str) -> StoreResult<()> {
        self.release(job, delay, error, 0).await
    }

    async fn defer(&self, job: &LeasedJob, delay: Duration, why: &str) -> StoreResult<()> {
        self.release(job, delay, why, 1).await
    }

    async fn dead_letter(&self, job: &LeasedJob, error: &str) -> StoreResult<()> {
        let (id, token, error) = (job.id, job.lease_token.clone(), error.to_owned());
        let now = self.now_ms();
        self.writer()
            .run(move |conn| {
                let moved = conn
                    .prepare_cached(
                        "INSERT INTO dead_letters (queue, priority, payload, attempts, error, created_at, failed_at)
                         SELECT queue, priority, payload, attempts, ?1, created_at, ?2 FROM jobs
                         WHERE id = ?3 AND lease_token = ?4",
                    ).db()?
                    .execute(params![error, now, id, token]).db()?;
                if moved == 1 {
                    conn.prepare_cached("DELETE FROM jobs WHERE id = ?1").db()?.execute([id]).db()?;
                }
                Ok(())
            })
            .await
    }
}

/// Leases up to ?5 due jobs of queue ?3 until ?1 under token ?2 (?4 is now). Strict
/// priority: the inner query walks the index lane by lane.
const LEASE: &str = "UPDATE jobs SET visible_at = ?1, attempts = attempts + 1, lease_token = ?2
     WHERE id IN (SELECT id FROM jobs WHERE queue = ?3 AND visible_at <= ?4
                  ORDER BY priority, visible_at, id LIMIT ?5)
     RETURNING id, priority, payload, attempts";

#[async_trait]
impl QueueConsumer for SqliteBackend {
    async fn lease(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> StoreResult<Vec<LeasedJob>> {
        let now = self.now_ms();
        self.wakeup(queue).leasing();
        let jobs = self
            .writer()
            .run(move |conn| {
                let token = new_token();
                let mut statement = conn.prepare_cached(LEASE).db()?;
                let rows = statement
                    .query_map(
                        params![
                            now + visibility.as_millis() as i64,
                            token,
                            queue.as_str(),
                            now,
                            max as i64
                        ],
                        |r| {
                            Ok(LeasedJob {
                                id: r.get(0)?,
                                queue,
                                priority: Priority::from_rank(r.get(1)?),
                                payload: r.get(2)?,
                                attempts: r.get::<_, i64>(3)? as u32,
                                lease_token: token.clone(),
                            })
                        },
                    )
                    .db()?;
                let mut jobs = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
                // RETURNING gives no order guarantee; hand out the most urgent first.
                jobs.sort_by_key(|j| (j.priority, j.id));
                Ok(jobs)
            })
            .await?;
        if max > 0 && jobs.len() == max {
            // There may be more: the next idle worker takes them.
            self.wakeup(queue).wake();
        }
        Ok(jobs)
    }

    async fn wait_for_work(&self, queue: QueueName, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wakeup(queue).woken()).await;
    }
}

#[async_trait]
impl QueueStats for SqliteBackend {
    async fn depth(&self, queue: QueueName) -> StoreResult<u64> {
        self.read(move |conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM jobs WHERE queue = ?1")
                .db()?
                .query_row([queue.as_str()], |r| r.get(0))
                .db()?;
            Ok(n as u64)
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT queue, payload, attempts, error, failed_at FROM dead_letters
                 ORDER BY id DESC LIMIT ?1",
                )
                .db()?;
            let rows = statement
                .query_map([limit as i64], |r| {
                    Ok(DeadLetter {
                        queue: r.get(0)?,
                        payload: r.get(1)?,
                        attempts: r.get::<_, i64>(2)? as u32,
                        error: r.get(3)?,
                        failed_at: chrono::DateTime::from_timestamp_millis(r.get(4)?)
                            .unwrap_or_default(),
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus, params};

    /// A statement SQLite must re-prepare for new bound values costs a parse and a plan
    /// on every call; the lease runs thousands of times a second (docs/performance.md).
    #[test]
    fn the_lease_statement_is_prepared_once_whatever_its_parameters() {
        let conn = Connection::open_in_memory().unwrap();
        crate::configure(&conn).unwrap();
        conn.execute_batch(include_str!("schema.sql")).unwrap();
        for now in [1_000_i64, 2_000, 3_000] {
            let mut lease = conn.prepare_cached(super::LEASE).unwrap();
            let rows = lease
                .query_map(params![now + 60_000, format!("t{now}"), "dispatch", now, 8], |_| Ok(()))
                .unwrap();
            assert_eq!(rows.count(), 0);
        }
        let lease = conn.prepare_cached(super::LEASE).unwrap();
        assert_eq!(lease.get_status(StatementStatus::RePrepare), 0);
    }
}
