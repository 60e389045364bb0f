//! The slave's in-memory replication state, with one owner: a task that holds the
//! [`Scheduler`] (what runs where, attempts, retry waits), the finished tasks not yet reported
//! to the master, and the master token. Everyone else holds a [`Runtime`] handle and asks it;
//! each question is a short job the owner runs on its state, in order.
//!
//! The owner reads the execution queue (the metadata) only inside a job, with no other lock
//! held: nothing here can wait on the metadata writer, and the writer never waits on this.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use super::queue::{SlaveTask, TaskState};
use super::scheduler::{AfterFailure, Counting, Running, Scheduler};
use crate::inline::InlineCache;
use crate::meta::MetaHandle;
use xrepl_proto::task::InlineData;
use xrepl_proto::ticket::{FetchTicket, TICKET_LIFETIME_MS};

/// Jobs waiting for the owner.
const RUNTIME_QUEUE: usize = 1024;
/// Tasks are not handed out with a fetch ticket that expires sooner than this.
const TICKET_MARGIN_MS: u64 = 60_000;
/// The puller asks for a new ticket once the one it holds is this old, if it is not pulling.
pub const TICKET_REFRESH_AGE_MS: u64 = TICKET_LIFETIME_MS / 2;

/// Most small tasks' data that came with the pulled tasks the slave controller keeps in
/// memory for the hand-outs.
pub const INLINE_KEEP_BYTES: usize = 64 << 20;

/// Most task data one hand-out carries; the rest of the batch's is fetched.
const HANDOUT_INLINE_MAX: usize = 16 << 20;

/// What the owner holds.
struct State {
    sched: Scheduler,
    /// Finished task ids not yet reported to the master.
    to_report: BTreeSet<u64>,
    /// The latest fetch ticket from the master (handed to the replay workers).
    ticket: Option<FetchTicket>,
    /// The data that came with pulled tasks, until they finish.
    inline: InlineCache,
}

impl Default for State {
    fn default() -> State {
        State {
            sched: Scheduler::default(),
            to_report: BTreeSet::new(),
            ticket: None,
            inline: InlineCache::new(INLINE_KEEP_BYTES),
        }
    }
}

type Job = Box<dyn FnOnce(&mut State) + Send>;

/// The clonable handle on the slave's runtime state.
#[derive(Clone)]
pub struct Runtime {
    jobs: mpsc::Sender<Job>,
    meta: MetaHandle,
    /// Woken when a task may have become runnable (waiting workers look again).
    wake: Arc<Notify>,
}

impl Runtime {
    /// Starts the owner task (on the current runtime).
    pub fn start(meta: MetaHandle) -> Runtime {
        let (jobs, mut rx) = mpsc::channel::<Job>(RUNTIME_QUEUE);
        tokio::spawn(async move {
            let mut state = State::default();
            while let Some(job) = rx.recv().await {
                job(&mut state);
            }
        });
        Runtime {
            jobs,
            meta,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs `f` on the state and answers its result; `None` only if the owner is gone.
    async fn ask<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.jobs.send(job).await.ok()?;
        rx.await.ok()
    }

    /// Runs `f` on the state without waiting for it.
    async fn tell(&self, f: impl FnOnce(&mut State) + Send + 'static) {
        let _ = self.jobs.send(Box::new(f)).await;
    }

    /// The notification waiting workers wait on.
    pub fn wake(&self) -> &Notify {
        &self.wake
    }

    /// Wakes every waiting worker.
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }

    /// The next tasks for a worker of `node` (at most `max`, a batch in replay order), marked
    /// running, with the fetch ticket to fetch their data and the data that came with them;
    /// `None` when nothing may start (or the slave holds no fresh ticket from the master).
    pub async fn pick(
        &self,
        node: &str,
        live: Vec<String>,
        now: Instant,
        now_ns: i64,
        max: usize,
    ) -> Option<(Vec<SlaveTask>, FetchTicket, Vec<InlineData>)> {
        let node = node.to_string();
        let meta = self.meta.clone();
        self.ask(move |s| {
            // A ticket about to expire would fail the fetches: wait for the next one.
            let now_ms = (now_ns / 1_000_000).max(0) as u64;
            let ticket = s
                .ticket
                .clone()
                .filter(|t| t.expires_ms > now_ms + TICKET_MARGIN_MS)?;
            let tasks = meta.read(|m| s.sched.pick_batch(&m.slave, &node, &live, now, now_ns, max));
            let data = s
                .inline
                .copies(tasks.iter().map(|t| t.info.task_id), HANDOUT_INLINE_MAX);
            (!tasks.is_empty()).then_some((tasks, ticket, data))
        })
        .await
        .flatten()
    }

    /// Attempts handed out but not tried: they wait for a worker again, uncounted.
    pub async fn released(&self, ids: Vec<u64>) {
        self.tell(move |s| {
            for id in ids {
                s.sched.released(id);
            }
        })
        .await;
        self.notify();
    }

    /// A replay's commit was recorded: the master may hear of it. Its attempt stays running
    /// until the worker reports that the participants made the data visible.
    pub async fn committed(&self, task_id: u64) {
        self.tell(move |s| {
            s.to_report.insert(task_id);
        })
        .await;
    }

    /// An attempt ended with the task finished (committed and visible, applied already, or
    /// skipped): its queue is free, the master hears of it.
    pub async fn finished(&self, ids: Vec<u64>) {
        self.tell(move |s| {
            for id in ids {
                s.sched.finished(id);
                s.to_report.insert(id);
                s.inline.forget(id);
            }
        })
        .await;
        self.notify();
    }

    /// Of `ids`, those whose attempts `node` runs, handed out by this controller.
    pub async fn runs(&self, ids: Vec<u64>, node: &str, started_ns: i64) -> Vec<u64> {
        let node = node.to_string();
        self.ask(move |s| {
            ids.into_iter()
                .filter(|id| {
                    s.sched
                        .running
                        .get(id)
                        .is_some_and(|r| r.node == node && r.started_ns == started_ns)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// An attempt failed: what follows, and the failed attempts so far.
    pub async fn failed(
        &self,
        task_id: u64,
        reason: String,
        interval: Duration,
        limit: u32,
        counting: Counting,
    ) -> (AfterFailure, u32) {
        let now = Instant::now();
        self.ask(move |s| {
            let after = s
                .sched
                .failed(task_id, &reason, now, interval, limit, counting);
            (after, s.sched.attempts(task_id))
        })
        .await
        .unwrap_or((AfterFailure::Retry(now + interval), 0))
    }

    /// The attempts running on nodes that are not `live`, and those on `restarted`: each
    /// with its node and whether it leads its batch (the others were not necessarily tried).
    pub async fn lost(
        &self,
        live: Vec<String>,
        restarted: Option<String>,
    ) -> Vec<(u64, String, bool)> {
        self.ask(move |s| {
            let mut lost = s.sched.lost(&live);
            if let Some(n) = restarted {
                lost.extend(
                    s.sched
                        .running
                        .iter()
                        .filter(|(_, r)| r.node == n)
                        .map(|(id, r)| (*id, r.node.clone())),
                );
            }
            lost.into_iter()
                .map(|(id, node)| {
                    let lead = s.sched.running.get(&id).is_none_or(|r| r.lead == id);
                    (id, node, lead)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// The attempts handed to `node` more than `grace` ago that it does not name in `tasks`, in
    /// a hand-out of `started`.
    pub async fn not_running(
        &self,
        node: &str,
        tasks: Vec<u64>,
        started: Vec<i64>,
        now_ns: i64,
        grace: Duration,
    ) -> Vec<u64> {
        let node = node.to_string();
        let grace = grace.as_nanos() as i64;
        self.ask(move |s| {
            s.sched
                .running
                .iter()
                .filter(|(id, r)| {
                    let named = tasks.contains(id) && started.contains(&r.started_ns);
                    r.node == node && !named && now_ns.saturating_sub(r.started_ns) > grace
                })
                .map(|(id, _)| *id)
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// `startClusterReplication()`: every attempt count and retry wait is forgotten.
    pub async fn restart(&self) {
        self.tell(|s| s.sched.restart()).await;
    }

    /// The running attempts, by task id.
    pub async fn running(&self) -> HashMap<u64, Running> {
        self.ask(|s| s.sched.running.clone())
            .await
            .unwrap_or_default()
    }

    /// Keeps the fetch ticket of the latest pull (or ticket request), and returns once the
    /// owner holds it: the puller stores the pulled tasks only then, so that no hand-out of
    /// them (whose pick reads the metadata when it runs) goes with an older ticket that does
    /// not cover them.
    pub async fn set_ticket(&self, ticket: FetchTicket) {
        let _ = self.ask(move |s| s.ticket = Some(ticket)).await;
        self.notify();
    }

    /// The latest fetch ticket, if any.
    pub async fn ticket(&self) -> Option<FetchTicket> {
        self.ask(|s| s.ticket.clone()).await.flatten()
    }

    /// Bytes of small tasks' data the next pull may bring. When there is little, the data
    /// of tasks no longer waiting (finished or skipped while this copy was kept) is let go first.
    pub async fn inline_room(&self) -> usize {
        let meta = self.meta.clone();
        self.ask(move |s| {
            if s.inline.room() < INLINE_KEEP_BYTES / 4 && !s.inline.is_empty() {
                meta.read(|m| {
                    s.inline.retain(|id| {
                        m.slave
                            .tasks
                            .get(&id)
                            .is_some_and(|t| t.state != TaskState::Finished)
                    })
                });
            }
            s.inline.room()
        })
        .await
        .unwrap_or(0)
    }

    /// Keeps the data that came with pulled tasks (stored already) for their hand-outs.
    pub async fn keep_data(&self, data: Vec<InlineData>) {
        if data.is_empty() {
            return;
        }
        self.tell(move |s| {
            for d in data {
                s.inline.keep_if_room(d.task_id, d.bytes);
            }
        })
        .await;
    }

    /// Adds finished tasks to report (after a restart: every finished task the queue lists).
    pub async fn report(&self, ids: Vec<u64>) {
        self.tell(move |s| s.to_report.extend(ids)).await;
    }

    /// Up to `max` finished tasks to report with the next pull.
    pub async fn to_report(&self, max: usize) -> Vec<u64> {
        self.ask(move |s| s.to_report.iter().take(max).copied().collect())
            .await
            .unwrap_or_default()
    }

    /// The master has heard of `ids`.
    pub async fn reported(&self, ids: Vec<u64>) {
        self.tell(move |s| {
            for id in &ids {
                s.to_report.remove(id);
            }
        })
        .await;
    }
}
