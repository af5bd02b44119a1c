//! Waking idle workers of a queue: one at a time, not all at once.
//!
//! Every accept commits its jobs and then wakes the queue's idle workers. Under load a
//! commit holds a few dozen accepts, so waking every idle worker for each of them
//! sent all sixteen to lease at once, and at 10,000 notifications a second four leases
//! in five came back empty: each a trip through the writer thread that every accept
//! waits for. Now a wake-up wakes one worker, and further wake-ups are dropped until
//! that worker starts its lease (its lease runs after their commits, so it sees their
//! jobs too). A worker whose lease came back full wakes the next one, so a large batch
//! still spreads over as many workers as it needs.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct Wakeup {
    notify: Notify,
    /// A worker has been woken (or a permit left for the next one to wait) and has not
    /// started its lease yet.
    pending: AtomicBool,
}

impl Wakeup {
    /// Work arrived: wakes one idle worker, unless one is already on its way. With no
    /// worker waiting, the next one to wait returns at once.
    pub(crate) fn wake(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// A worker is about to lease: work committed from now on needs a wake-up of its own.
    pub(crate) fn leasing(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    pub(crate) async fn woken(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::Wakeup;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Starts `n` tasks waiting on `wakeup`; the counter tells how many returned.
    async fn waiters(wakeup: &Arc<Wakeup>, n: usize) -> Arc<AtomicUsize> {
        let woken = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (wakeup, woken) = (wakeup.clone(), woken.clone());
            tokio::spawn(async move {
                wakeup.woken().await;
                woken.fetch_add(1, Ordering::SeqCst);
            });
        }
        settle().await;
        woken
    }

    /// Lets every spawned task run until it waits (the runtime has one thread).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn wake_ups_before_a_lease_wake_one_worker() {
        let wakeup = Arc::new(Wakeup::default());
        let woken = waiters(&wakeup, 4).await;
        for _ in 0..20 {
            wakeup.wake();
        }
        settle().await;
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_wake_up_after_a_lease_started_wakes_another_worker() {
        let wakeup = Arc::new(Wakeup::default());
        let woken = waiters(&wakeup, 4).await;
        wakeup.wake();
        settle().await;
        wakeup.leasing();
        wakeup.wake();
        settle().await;
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    /// Whether waiting on `wakeup` returns without having to wait.
    async fn returns_at_once(wakeup: &Wakeup) -> bool {
        tokio::select! {
            biased;
            () = wakeup.woken() => true,
            () = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn a_wake_up_with_no_worker_waiting_is_kept_for_the_next() {
        let wakeup = Wakeup::default();
        wakeup.wake();
        assert!(returns_at_once(&wakeup).await, "the next wait returns at once");
        assert!(!returns_at_once(&wakeup).await, "and only that one");
    }
}
