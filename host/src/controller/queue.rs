//! [`WorkQueue`]: the controller's scheduler. Every object is in the queue at most once; it is
//! handed to one worker at a time; new and changed objects go ahead of periodic refreshes.
//!
//! ```text
//!  watch events, force-sync, ──urgent()──▶ [urgent FIFO] ─┐
//!  dependency changes                                     ├─▶ next() ─▶ worker ─▶ done(key)
//!  requeue after a sync/error ─at(t)──▶ [timers by due time]─┘   (urgent first; a timer only
//!                                                                 once its time has come)
//! ```
//!
//! Rules:
//! * A key is either pending (urgent or timed), running, or absent. Scheduling a pending key
//!   keeps the earlier of the two times (urgent counts as "now"), so a flood of events for one
//!   object costs one reconcile.
//! * A key that is scheduled while it runs is remembered and scheduled when the worker calls
//!   [`WorkQueue::done`]: an object never runs on two workers at once, and a change that
//!   arrives mid-reconcile is not lost.
//! * Time is `tokio::time`, so tests drive it with paused time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a key is scheduled; urgent keys run before due periodic ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Something changed (the object, its Secret, its store, a force-sync): run as soon as a
    /// worker is free, ahead of periodic work.
    Urgent,
    /// A timer (refresh interval, retry backoff): run once due, after urgent work.
    Timed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    at: Instant,
    priority: Priority,
    seq: u64,
}

struct State<K> {
    pending: HashMap<K, Slot>,
    urgent: VecDeque<K>,
    timers: BTreeSet<(Instant, u64, K)>,
    running: HashMap<K, Option<(Instant, Priority)>>,
    seq: u64,
    closed: bool,
}

/// The queue (see the module docs). Keys are cheap clones (object references).
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
}

impl<K> std::fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("WorkQueue")
            .field("pending", &s.pending.len())
            .field("running", &s.running.len())
            .finish()
    }
}

impl<K> WorkQueue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// An empty, open queue.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                pending: HashMap::new(),
                urgent: VecDeque::new(),
                timers: BTreeSet::new(),
                running: HashMap::new(),
                seq: 0,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    /// Schedules `key` to run as soon as a worker is free, ahead of timed work.
    pub fn urgent(&self, key: K) {
        self.schedule(key, Instant::now(), Priority::Urgent);
    }

    /// Schedules `key` to run at `at` (or earlier, if it already is).
    pub fn at(&self, key: K, at: Instant) {
        self.schedule(key, at, Priority::Timed);
    }

    /// Schedules `key` with `priority` at `at` (urgent keys are due at once whatever `at`
    /// says). Keeps an earlier schedule; defers keys that are running.
    pub fn schedule(&self, key: K, at: Instant, priority: Priority) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        let at = if priority == Priority::Urgent {
            Instant::now().min(at)
        } else {
            at
        };
        if let Some(deferred) = s.running.get_mut(&key) {
            *deferred = Some(match *deferred {
                Some((t, p)) => (t.min(at), p.min(priority)),
                None => (at, priority),
            });
            return;
        }
        Self::insert(&mut s, key, at, priority);
        drop(s);
        self.notify.notify_waiters();
    }

    fn insert(s: &mut State<K>, key: K, at: Instant, priority: Priority) {
        if let Some(old) = s.pending.get(&key).copied() {
            let keep_old =
                old.priority == Priority::Urgent || (priority == Priority::Timed && old.at <= at);
            if keep_old {
                return;
            }
            // The new schedule is earlier or more urgent: move the key.
            s.timers.remove(&(old.at, old.seq, key.clone()));
        }
        s.seq += 1;
        let slot = Slot {
            at,
            priority,
            seq: s.seq,
        };
        match priority {
            Priority::Urgent => s.urgent.push_back(key.clone()),
            Priority::Timed => {
                s.timers.insert((at, slot.seq, key.clone()));
            }
        }
        s.pending.insert(key, slot);
    }

    /// Removes a pending key (its object is gone). A running key stays running, but what was
    /// scheduled for after it is dropped.
    pub fn forget(&self, key: &K) {
        let mut s = self.lock();
        if let Some(slot) = s.pending.remove(key) {
            match slot.priority {
                Priority::Urgent => s.urgent.retain(|k| k != key),
                Priority::Timed => {
                    s.timers.remove(&(slot.at, slot.seq, key.clone()));
                }
            }
        }
        if let Some(deferred) = s.running.get_mut(key) {
            *deferred = None;
        }
    }

    /// Waits for the next key to work on and marks it running; `None` once the queue is
    /// closed. Urgent keys first (in arrival order), then due timers (earliest first).
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let mut s = self.lock();
                if s.closed {
                    return None;
                }
                let now = Instant::now();
                if let Some(key) = s.urgent.pop_front() {
                    s.pending.remove(&key);
                    s.running.insert(key.clone(), None);
                    return Some(key);
                }
                match s.timers.first().cloned() {
                    Some((at, seq, key)) if at <= now => {
                        s.timers.remove(&(at, seq, key.clone()));
                        s.pending.remove(&key);
                        s.running.insert(key.clone(), None);
                        return Some(key);
                    }
                    Some((at, _, _)) => Some(at),
                    None => None,
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` finished; what was scheduled for it while it ran is scheduled now.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        if let Some(Some((at, priority))) = s.running.remove(key)
            && !s.closed
        {
            Self::insert(&mut s, key.clone(), at, priority);
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Stops handing out keys: [`next`](Self::next) returns `None` from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Keys ready to run now (urgent, or timed and due): the queue depth metric.
    pub fn ready(&self) -> usize {
        let s = self.lock();
        let now = Instant::now();
        s.urgent.len() + s.timers.iter().take_while(|(at, _, _)| *at <= now).count()
    }

    /// Keys pending (ready or waiting for their time).
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Keys handed to workers and not yet done.
    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    /// When `key` is scheduled next, if it is pending.
    pub fn scheduled(&self, key: &K) -> Option<(Instant, Priority)> {
        self.lock().pending.get(key).map(|s| (s.at, s.priority))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    async fn next_now(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::ZERO, q.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn urgent_keys_run_before_due_timers() {
        let q = WorkQueue::new();
        let now = Instant::now();
        q.at("periodic-1", now);
        q.at("periodic-2", now);
        q.urgent("new");
        assert_eq!(q.ready(), 3);
        assert_eq!(next_now(&q).await, Some("new"));
        assert_eq!(next_now(&q).await, Some("periodic-1"));
        assert_eq!(next_now(&q).await, Some("periodic-2"));
        assert_eq!(next_now(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn timers_wait_for_their_time() {
        let q = Arc::new(WorkQueue::new());
        let start = Instant::now();
        q.at("later", start + Duration::from_secs(30));
        q.at("sooner", start + Duration::from_secs(10));
        assert_eq!(q.ready(), 0);
        assert_eq!(q.next().await, Some("sooner"));
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
        assert_eq!(q.next().await, Some("later"));
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn the_earlier_schedule_wins_and_a_key_is_queued_once() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.at("a", start + Duration::from_secs(60));
        q.at("a", start + Duration::from_secs(5));
        q.at("a", start + Duration::from_secs(90));
        assert_eq!(q.pending(), 1);
        assert_eq!(
            q.scheduled(&"a"),
            Some((start + Duration::from_secs(5), Priority::Timed))
        );
        q.urgent("a");
        q.at("a", start + Duration::from_secs(1));
        assert_eq!(q.scheduled(&"a").map(|s| s.1), Some(Priority::Urgent));
        assert_eq!(next_now(&q).await, Some("a"));
        assert_eq!(next_now(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_never_handed_out_twice_and_keeps_what_arrived_meanwhile() {
        let q = WorkQueue::new();
        q.urgent("a");
        assert_eq!(next_now(&q).await, Some("a"));
        // An event for "a" while a worker holds it: deferred, not handed to a second worker.
        q.urgent("a");
        q.at("a", Instant::now() + Duration::from_secs(100));
        assert_eq!(next_now(&q).await, None);
        assert_eq!(q.running(), 1);
        q.done(&"a");
        assert_eq!(q.scheduled(&"a").map(|s| s.1), Some(Priority::Urgent));
        assert_eq!(next_now(&q).await, Some("a"));
        q.done(&"a");
        assert_eq!(q.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn forgotten_keys_do_not_run() {
        let q = WorkQueue::new();
        q.urgent("gone");
        q.at("gone-too", Instant::now());
        q.forget(&"gone");
        q.forget(&"gone-too");
        assert_eq!(q.pending(), 0);
        assert_eq!(next_now(&q).await, None);
        // Forgetting a running key drops its deferred schedule.
        q.urgent("x");
        assert_eq!(next_now(&q).await, Some("x"));
        q.urgent("x");
        q.forget(&"x");
        q.done(&"x");
        assert_eq!(q.pending(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_wakes_for_new_work_and_for_close() {
        let q = Arc::new(WorkQueue::new());
        let worker = tokio::spawn({
            let q = q.clone();
            async move { (q.next().await, q.next().await) }
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        q.urgent("late");
        while q.running() == 0 {
            tokio::task::yield_now().await;
        }
        q.close();
        assert_eq!(worker.await.unwrap(), (Some("late"), None));
        q.urgent("after-close");
        assert_eq!(q.pending(), 0);
    }
}
