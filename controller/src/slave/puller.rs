//! The puller: registers with the master, pulls after the last stored task (reporting finished
//! ones), stores what comes in one durable step with the new position (and keeps the small
//! tasks' data that came along in memory, for the hand-outs), and reconnects with backoff
//! while the master is away.
//!
//! [`Puller`] decides, without IO or clock: from the queue's state and whether the link to the
//! master is open, it says to wait, to connect or to pull after which task, and it keeps the
//! backoff. [`Slave::run_puller`] does what it says.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use xrepl_proto::client::ClientError;
use xrepl_proto::master_client::MasterClient;
use xrepl_proto::ticket::TICKET_LIFETIME_MS;

use super::queue::SlaveStatus;
use super::runtime::TICKET_REFRESH_AGE_MS;
use super::{now_ns, Slave};
use crate::meta::{MetaCommand, MetaOutcome};

/// How often a slave that does not pull asks the master where it is.
const POSITION_EVERY: Duration = Duration::from_secs(1);

/// The puller stops asking for more while this many tasks are unfinished (the queue is bounded;
/// the master keeps the rest).
pub const MAX_UNFINISHED: usize = 100_000;
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most finished ids reported with one pull.
pub const REPORT_MAX: usize = 10_000;

/// What the puller needs to know of the execution queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueView {
    pub status: SlaveStatus,
    pub unfinished: usize,
    /// The highest task id received (the next pull asks after it).
    pub last_pulled: u64,
}

/// Whether the connection to the master controller is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Open,
    Closed,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do for this long (not ENABLED, the queue is full, or the master is away).
    Wait(Duration),
    /// Connect to the master controller, log in and register.
    Connect,
    /// Pull the tasks after this one.
    Pull { after: u64 },
}

/// After a failed connection: how long to wait, and whether to say so loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub wait: Duration,
    /// The attempt's number (1 for the first failure since the last success).
    pub attempt: u64,
    /// Log it as a warning: the first failure, then every 20th.
    pub warn: bool,
}

/// The puller's decisions and backoff.
#[derive(Debug, Clone)]
pub struct Puller {
    backoff: Duration,
    failures: u64,
}

impl Default for Puller {
    fn default() -> Puller {
        Puller {
            backoff: BACKOFF_MIN,
            failures: 0,
        }
    }
}

impl Puller {
    /// The next step, given the queue and the link.
    pub fn next(&self, q: QueueView, link: Link) -> Step {
        if link == Link::Closed {
            // Also when not pulling: the lag needs the master's position (and a fetch ticket
            // is kept fresh for the replays still running).
            Step::Connect
        } else if q.status != SlaveStatus::Enabled || q.unfinished >= MAX_UNFINISHED {
            Step::Wait(BACKOFF_MIN)
        } else {
            Step::Pull {
                after: q.last_pulled,
            }
        }
    }

    /// The connection is up: the backoff starts again from the bottom.
    pub fn connected(&mut self) {
        self.failures = 0;
        self.backoff = BACKOFF_MIN;
    }

    /// A connection attempt failed: wait twice as long as last time, up to [`BACKOFF_MAX`].
    pub fn connect_failed(&mut self) -> Retry {
        self.failures += 1;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Retry {
            wait: self.backoff,
            attempt: self.failures,
            warn: self.failures == 1 || self.failures.is_multiple_of(20),
        }
    }
}

impl Slave {
    /// Whether the fetch ticket held is missing or half way through its life.
    async fn ticket_is_old(&self) -> bool {
        let now_ms = (now_ns() / 1_000_000).max(0) as u64;
        self.rt.ticket().await.is_none_or(|t| {
            t.expires_ms.saturating_sub(now_ms) < TICKET_LIFETIME_MS - TICKET_REFRESH_AGE_MS
        })
    }

    fn queue_view(&self) -> QueueView {
        self.meta.read(|s| QueueView {
            status: s.slave.repl.status,
            unfinished: s.slave.unfinished(),
            last_pulled: s.slave.repl.last_pulled,
        })
    }

    async fn connect(&self, master: &str) -> Result<MasterClient, ClientError> {
        let c = MasterClient::connect(
            master,
            &self.cfg.master_username,
            &self.cfg.master_password,
            &self.me,
            &self.master_tls,
        )
        .await?;
        c.register().await?;
        // A ticket now, so that replays need not wait for the first pull's answer (which may
        // wait for a task on the master).
        let ticket = c.refresh_ticket().await?;
        self.rt.set_ticket(ticket).await;
        Ok(c)
    }

    /// Runs the puller until `stop`. While it does not pull (replication is stopped here),
    /// it asks the master where it is every [`POSITION_EVERY`], for the lag.
    pub async fn run_puller(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(master) = self.cfg.master_ctl.clone() else {
            return;
        };
        // The master forgets nothing it was told, and ignores repeats: report all we know.
        self.rt
            .report(self.meta.read(|s| s.slave.finished_ids().collect()))
            .await;
        let mut puller = Puller::default();
        let mut client: Option<MasterClient> = None;
        let mut asked = std::time::Instant::now();
        let wait_ms = u32::try_from(self.cfg.pull_wait.as_millis()).unwrap_or(u32::MAX);
        loop {
            if *stop.borrow() {
                return;
            }
            let link = if client.as_ref().is_some_and(MasterClient::is_open) {
                Link::Open
            } else {
                Link::Closed
            };
            let after = match puller.next(self.queue_view(), link) {
                Step::Wait(d) => {
                    // Not pulling: keep the fetch ticket of the running replays fresh, and
                    // know how far the master is (the lag grows while this slave is stopped).
                    if let Some(c) = client.as_ref().filter(|c| c.is_open()) {
                        if asked.elapsed() >= POSITION_EVERY {
                            asked = std::time::Instant::now();
                            let after = self.meta.read(|s| s.slave.repl.last_pulled);
                            match c.position(after).await {
                                Ok(p) => {
                                    self.view()
                                        .answered(p.last_task, p.next_submit_ns, now_ns())
                                }
                                Err(e) => self.view().failed(e.to_string(), now_ns()),
                            }
                        }
                        if self.ticket_is_old().await {
                            match c.refresh_ticket().await {
                                Ok(t) => self.rt.set_ticket(t).await,
                                Err(e) => {
                                    tracing::warn!(%master, "cannot renew the fetch ticket: {e}")
                                }
                            }
                        }
                    }
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(d) => continue,
                    }
                }
                Step::Connect => {
                    match self.connect(&master).await {
                        Ok(c) => {
                            let after = self.meta.read(|s| s.slave.repl.last_pulled);
                            tracing::info!(%master, "connected to the master controller; pulling after task {after}");
                            puller.connected();
                            client = Some(c);
                        }
                        Err(e) => {
                            self.view().failed(e.to_string(), now_ns());
                            let r = puller.connect_failed();
                            if r.warn {
                                tracing::warn!(%master, "cannot reach the master controller (attempt {}); retrying: {e}", r.attempt);
                            }
                            tokio::select! {
                                _ = stop.changed() => return,
                                _ = tokio::time::sleep(r.wait) => {}
                            }
                        }
                    }
                    continue;
                }
                Step::Pull { after } => after,
            };
            let Some(c) = client.as_ref() else { continue };
            let finished = self.rt.to_report(REPORT_MAX).await;
            let room = self.rt.inline_room().await as u64;
            let pulled = tokio::select! {
                _ = stop.changed() => return,
                p = c.pull(after, &finished, self.cfg.pull_batch, wait_ms, room) => p,
            };
            match pulled {
                Ok((tasks, data, position)) => {
                    self.view()
                        .answered(position.last_task, position.next_submit_ns, now_ns());
                    if let Some(t) = c.ticket() {
                        self.rt.set_ticket(t).await;
                    }
                    *self.bootstraps.lock().unwrap_or_else(|p| p.into_inner()) = c.bootstraps();
                    self.rt.reported(finished).await;
                    if tasks.is_empty() {
                        continue;
                    }
                    let n = tasks.len();
                    match self
                        .meta
                        .apply(MetaCommand::StoreTasks {
                            tasks,
                            queues: self.cfg.queue,
                            now_ns: now_ns(),
                            scope: self.cfg.db_scope.clone(),
                            me: self.me.clone(),
                        })
                        .await
                    {
                        Ok(outcome) => {
                            if let MetaOutcome::Skipped(outside) = outcome {
                                if !outside.is_empty() {
                                    tracing::debug!(
                                        "{} tasks recorded finished without a replay (outside slaveReplicationDBScope, for another slave, or superseded by a re-sync)",
                                        outside.len()
                                    );
                                    self.rt.finished(outside).await;
                                }
                            }
                            tracing::debug!(
                                "received {n} tasks after task {after}, {} with their data",
                                data.len()
                            );
                            self.rt.keep_data(data).await;
                            self.rt.notify();
                        }
                        Err(e) => {
                            tracing::error!("cannot store the tasks received from the master: {e}");
                            tokio::time::sleep(BACKOFF_MAX).await;
                        }
                    }
                }
                Err(e) => {
                    self.view().failed(e.to_string(), now_ns());
                    tracing::warn!(%master, "pull failed; reconnecting: {e}");
                    client = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: SlaveStatus, unfinished: usize, last_pulled: u64) -> QueueView {
        QueueView {
            status,
            unfinished,
            last_pulled,
        }
    }

    #[test]
    fn it_pulls_after_the_last_stored_task_only_when_enabled_connected_and_not_full_and_always_connects(
    ) {
        let p = Puller::default();
        let ok = view(SlaveStatus::Enabled, 10, 42);
        assert_eq!(p.next(ok, Link::Open), Step::Pull { after: 42 });
        assert_eq!(p.next(ok, Link::Closed), Step::Connect);
        for status in [SlaveStatus::Disabled, SlaveStatus::Stopped] {
            assert_eq!(
                p.next(view(status, 0, 42), Link::Open),
                Step::Wait(BACKOFF_MIN),
                "{status:?} pulls nothing"
            );
            assert_eq!(
                p.next(view(status, 0, 42), Link::Closed),
                Step::Connect,
                "{status:?} connects, to know the master's position for the lag"
            );
        }
        let full = view(SlaveStatus::Enabled, MAX_UNFINISHED, 42);
        assert_eq!(p.next(full, Link::Open), Step::Wait(BACKOFF_MIN));
        let below = view(SlaveStatus::Enabled, MAX_UNFINISHED - 1, 42);
        assert_eq!(p.next(below, Link::Open), Step::Pull { after: 42 });
    }

    #[test]
    fn failed_connections_back_off_to_a_limit_and_warn_at_the_first_and_every_twentieth() {
        let mut p = Puller::default();
        let retries: Vec<Retry> = (0..40).map(|_| p.connect_failed()).collect();
        let waits: Vec<u128> = retries.iter().take(8).map(|r| r.wait.as_millis()).collect();
        assert_eq!(waits, vec![200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        let warned: Vec<u64> = retries
            .iter()
            .filter(|r| r.warn)
            .map(|r| r.attempt)
            .collect();
        assert_eq!(warned, vec![1, 20, 40]);
        p.connected();
        let again = p.connect_failed();
        assert_eq!(
            (again.attempt, again.wait, again.warn),
            (1, BACKOFF_MIN * 2, true)
        );
    }
}
