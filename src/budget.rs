//! Admission by bytes: a budget of bytes shared by the holders of grants, a cap on how many
//! hold one at once (plus one place kept for light ones), and a bounded queue of waiters. Two
//! budgets use it: the CPU pool's jobs, by their estimated memory cost
//! (`cpu`, `max_concurrent_processing`, `processing_budget`), and the originals
//! held in memory from their download to the end of the last job using them (`origin`,
//! `source_budget`). It owns only the accounting (including the gauge that shows the bytes
//! in use, when given one) and the order of admission; it never estimates a cost nor runs
//! anything.
//!
//! Fairness: waiters are admitted in arrival order, except that a waiting one may be overtaken
//! by a later one that fits in what is free right now, at most [`MAX_OVERTAKEN`] times. After
//! that nothing later starts before it, and since every grant is given back and none costs
//! more than the whole budget, it starts once enough has been given back. So no one waits
//! forever, and a cheap job does not wait for a burst of expensive ones queued before it to
//! finish (it overtakes them while they wait for room), only for its place.

use pingora_prometheus::prometheus::IntGauge;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// How many later jobs may start before a waiting one. Large enough that a stream of cheap
/// thumbnails is not held behind one expensive job waiting for room, small enough that the
/// expensive job waits for at most that many cheap ones.
pub const MAX_OVERTAKEN: u32 = 16;

/// Why a job was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Costs more than the whole budget: it could never run.
    OverBudget,
    /// The queue is full.
    QueueFull,
}

/// The budget: bytes and running jobs, and the jobs waiting for them.
pub struct Budget {
    total: u64,
    max_running: usize,
    light_bytes: u64,
    max_waiting: usize,
    /// Kept equal to the bytes granted now, when set.
    in_use: Option<IntGauge>,
    state: Mutex<State>,
}

struct State {
    free: u64,
    running: usize,
    queue: VecDeque<Waiter>,
}

struct Waiter {
    cost: u64,
    overtaken: u32,
    tx: oneshot::Sender<Grant>,
}

/// A job's share of the budget, given back when dropped.
pub struct Grant {
    budget: Option<Arc<Budget>>,
    cost: u64,
}

impl Grant {
    /// Bytes this grant holds.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Give back all but `to` bytes now (a reservation made for the most something could
    /// take, once its real size is known). Never grows the grant.
    pub fn shrink(&mut self, to: u64) {
        let to = to.max(1);
        if to >= self.cost {
            return;
        }
        if let Some(budget) = &self.budget {
            let mut state = budget.lock();
            state.free += self.cost - to;
            budget.gauge(-((self.cost - to) as i64));
            budget.admit(&mut state);
        }
        self.cost = to;
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            let mut state = budget.lock();
            state.free += self.cost;
            state.running -= 1;
            budget.gauge(-(self.cost as i64));
            budget.admit(&mut state);
        }
    }
}

impl Budget {
    /// `total` bytes; `max_running` jobs at once, plus one more if its cost is at most
    /// `light_bytes`; `max_waiting` jobs queued.
    pub fn new(total: u64, max_running: usize, light_bytes: u64, max_waiting: usize) -> Budget {
        Budget {
            total: total.max(1),
            max_running: max_running.max(1),
            light_bytes,
            max_waiting,
            in_use: None,
            state: Mutex::new(State {
                free: total.max(1),
                running: 0,
                queue: VecDeque::new(),
            }),
        }
    }

    /// Keep `gauge` equal to the bytes granted (a metric of the budget in use).
    pub fn with_gauge(mut self, gauge: IntGauge) -> Budget {
        self.in_use = Some(gauge);
        self
    }

    fn gauge(&self, change: i64) {
        if let Some(g) = &self.in_use {
            g.add(change);
        }
    }

    /// The whole budget in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes held by running jobs now.
    #[cfg(test)]
    pub fn in_use(&self) -> u64 {
        self.total - self.lock().free
    }

    /// Jobs waiting now.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }

    /// Wait for room for a job of `cost` bytes. Dropping the future while it waits gives up
    /// its place (and anything granted meanwhile).
    pub async fn acquire(self: &Arc<Self>, cost: u64) -> Result<Grant, Refusal> {
        let cost = cost.max(1);
        if cost > self.total {
            return Err(Refusal::OverBudget);
        }
        let rx = {
            let mut state = self.lock();
            // Drop the places of jobs whose clients went away before counting the queue.
            state.queue.retain(|w| !w.tx.is_closed());
            if self.fits(&state, cost) && state.queue.iter().all(|w| w.overtaken < MAX_OVERTAKEN) {
                for w in state.queue.iter_mut() {
                    w.overtaken += 1;
                }
                return Ok(self.take(&mut state, cost));
            }
            if state.queue.len() >= self.max_waiting {
                return Err(Refusal::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            state.queue.push_back(Waiter {
                cost,
                overtaken: 0,
                tx,
            });
            rx
        };
        // The sender is dropped only with the budget, which outlives every caller holding it.
        rx.await.map_err(|_| Refusal::QueueFull)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fits(&self, state: &State, cost: u64) -> bool {
        let places = if cost <= self.light_bytes {
            self.max_running + 1
        } else {
            self.max_running
        };
        cost <= state.free && state.running < places
    }

    fn take(self: &Arc<Self>, state: &mut State, cost: u64) -> Grant {
        state.free -= cost;
        state.running += 1;
        self.gauge(cost as i64);
        Grant {
            budget: Some(self.clone()),
            cost,
        }
    }

    /// Start waiting jobs that fit, in order; a job that does not fit may be passed over by
    /// later ones until it has been overtaken `MAX_OVERTAKEN` times.
    fn admit(self: &Arc<Self>, state: &mut State) {
        let mut i = 0;
        while i < state.queue.len() {
            if state.queue[i].tx.is_closed() {
                state.queue.remove(i);
                continue;
            }
            let cost = state.queue[i].cost;
            if !self.fits(state, cost) {
                if state.queue[i].overtaken >= MAX_OVERTAKEN {
                    return; // a barrier: nothing later goes first
                }
                i += 1;
                continue;
            }
            let Some(waiter) = state.queue.remove(i) else {
                return;
            };
            for earlier in state.queue.iter_mut().take(i) {
                earlier.overtaken += 1;
            }
            let grant = self.take(state, cost);
            if let Err(mut grant) = waiter.tx.send(grant) {
                // Its client went away between the check and the send: give it back here,
                // under the lock we hold (dropping the grant would take the lock again).
                grant.budget = None;
                state.free += cost;
                state.running -= 1;
                self.gauge(-(cost as i64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget(total: u64, running: usize, light: u64, waiting: usize) -> Arc<Budget> {
        Arc::new(Budget::new(total, running, light, waiting))
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn over_budget_is_refused_and_a_full_queue_too() {
        let b = budget(100, 2, 0, 1);
        assert_eq!(b.acquire(101).await.err(), Some(Refusal::OverBudget));
        let held = b.acquire(100).await.unwrap();
        let b2 = b.clone();
        let queued = tokio::spawn(async move { b2.acquire(50).await.map(|g| g.cost()) });
        settle().await;
        assert_eq!(b.waiting(), 1);
        assert_eq!(b.acquire(50).await.err(), Some(Refusal::QueueFull));
        drop(held);
        assert_eq!(queued.await.unwrap(), Ok(50));
        assert_eq!(b.in_use(), 0);
    }

    #[tokio::test]
    async fn bytes_bound_what_runs_at_once() {
        let b = budget(100, 8, 0, 8);
        let first = b.acquire(60).await.unwrap();
        let b2 = b.clone();
        let second = tokio::spawn(async move { b2.acquire(60).await.map(|g| g.cost()) });
        settle().await;
        assert!(
            !second.is_finished(),
            "two 60-byte jobs in a 100-byte budget"
        );
        assert_eq!(b.in_use(), 60);
        drop(first);
        assert_eq!(second.await.unwrap(), Ok(60));
    }

    #[tokio::test]
    async fn shrinking_a_grant_gives_bytes_back_to_waiters() {
        let b = budget(100, 8, 0, 8);
        let mut reserved = b.acquire(100).await.unwrap();
        let b2 = b.clone();
        let next = tokio::spawn(async move { b2.acquire(60).await.map(|g| g.cost()) });
        settle().await;
        assert!(!next.is_finished(), "admitted with no room");
        reserved.shrink(40);
        assert_eq!(reserved.cost(), 40);
        assert_eq!(next.await.unwrap(), Ok(60));
        reserved.shrink(90);
        assert_eq!(reserved.cost(), 40, "shrink grew the grant");
        assert_eq!(b.in_use(), 40);
        drop(reserved);
        assert_eq!(b.in_use(), 0);
    }

    #[tokio::test]
    async fn its_gauge_shows_the_bytes_granted() {
        let gauge = IntGauge::new("in_use", "bytes granted").unwrap();
        let b = Arc::new(Budget::new(100, 8, 0, 8).with_gauge(gauge.clone()));
        let mut first = b.acquire(70).await.unwrap();
        let b2 = b.clone();
        let second = tokio::spawn(async move { b2.acquire(50).await });
        settle().await;
        assert_eq!(gauge.get(), 70);
        // Shrinking admits the waiter: both show.
        first.shrink(30);
        let second = second.await.unwrap().unwrap();
        assert_eq!(gauge.get(), 80);
        assert_eq!(gauge.get() as u64, b.in_use());
        drop(first);
        drop(second);
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test]
    async fn cheap_jobs_overtake_a_waiting_expensive_one_a_bounded_number_of_times() {
        let b = budget(100, 32, 0, 64);
        let running = b.acquire(60).await.unwrap();
        // An expensive job waits for room; cheap ones that fit go first...
        let b2 = b.clone();
        let expensive = tokio::spawn(async move { b2.acquire(80).await.map(|g| g.cost()) });
        settle().await;
        let mut cheap = Vec::new();
        for _ in 0..MAX_OVERTAKEN {
            cheap.push(tokio::time::timeout(Duration::from_secs(1), b.acquire(1)).await);
        }
        assert!(cheap.iter().all(|g| matches!(g, Ok(Ok(_)))));
        // ...until it has been overtaken MAX_OVERTAKEN times: then the next cheap one waits.
        let b3 = b.clone();
        let late = tokio::spawn(async move { b3.acquire(1).await.map(|g| g.cost()) });
        settle().await;
        assert!(
            !late.is_finished(),
            "overtook a job that was overtaken enough"
        );
        drop(cheap);
        drop(running);
        assert_eq!(expensive.await.unwrap(), Ok(80));
        assert_eq!(late.await.unwrap(), Ok(1));
    }

    #[tokio::test]
    async fn one_more_place_is_kept_for_light_jobs() {
        let b = budget(1000, 1, 10, 8);
        let heavy = b.acquire(500).await.unwrap();
        let b2 = b.clone();
        let heavy2 = tokio::spawn(async move { b2.acquire(100).await.map(|g| g.cost()) });
        settle().await;
        assert!(
            !heavy2.is_finished(),
            "a second heavy job took the light place"
        );
        let light = tokio::time::timeout(Duration::from_secs(1), b.acquire(10)).await;
        assert!(
            matches!(light, Ok(Ok(_))),
            "the light job waited for the heavy one"
        );
        drop(light);
        drop(heavy);
        assert_eq!(heavy2.await.unwrap(), Ok(100));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_frees_its_place_and_its_grant() {
        let b = budget(100, 2, 0, 1);
        let held = b.acquire(100).await.unwrap();
        let gone = tokio::time::timeout(Duration::from_millis(20), b.acquire(100)).await;
        assert!(gone.is_err());
        // Its place is free again, and releasing does not hand the budget to nobody.
        let b2 = b.clone();
        let next = tokio::spawn(async move { b2.acquire(100).await.map(|g| g.cost()) });
        settle().await;
        drop(held);
        assert_eq!(next.await.unwrap(), Ok(100));
        assert_eq!(b.in_use(), 0);
    }
}
