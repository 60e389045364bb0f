//! Login throttling: after [`FREE_FAILURES`] failed logins in a row for one user, or from one
//! peer address, each further attempt for it is answered no sooner than [`FIRST_DELAY`] after
//! the previous failure, doubling up to [`MAX_DELAY`]; a success resets it.
//!
//! An attempt that may go ahead reserves its slot at once (as if it will fail), so attempts
//! sent together are spaced as attempts sent one after the other are.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins in a row answered without delay.
pub const FREE_FAILURES: u32 = 3;
/// The delay after the first failure past [`FREE_FAILURES`].
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Most users and peers remembered; past it, the ones quiet for longest are forgotten.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failed logins in a row.
    failures: u32,
    /// No attempt is answered before this.
    next_allowed: Instant,
    last_failure: Instant,
}

/// What is being throttled: a user name, or a peer's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(String),
    Peer(String),
}

#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<Subject, Entry>>,
}

/// The delay after `failures` failures in a row.
pub fn delay_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long an attempt for `subjects` must wait now; when it need not, its slot is
    /// reserved.
    fn wait_or_reserve(&self, subjects: &[Subject], now: Instant) -> Duration {
        let mut m = self.lock();
        let wait = subjects
            .iter()
            .filter_map(|s| m.get(s))
            .map(|e| e.next_allowed.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            for s in subjects {
                if let Some(e) = m.get_mut(s) {
                    e.next_allowed = now + delay_after(e.failures);
                }
            }
        }
        wait
    }

    /// Waits until an attempt for all of `subjects` may be answered.
    pub async fn admit(&self, subjects: &[Subject]) {
        loop {
            let wait = self.wait_or_reserve(subjects, Instant::now());
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, subjects: &[Subject]) {
        let now = Instant::now();
        let mut m = self.lock();
        if m.len() >= MAX_ENTRIES {
            let quiet = now.checked_sub(MAX_DELAY * 2).unwrap_or(now);
            m.retain(|_, e| e.last_failure > quiet);
        }
        for s in subjects {
            if m.len() >= MAX_ENTRIES && !m.contains_key(s) {
                continue;
            }
            let e = m.entry(s.clone()).or_insert(Entry {
                failures: 0,
                next_allowed: now,
                last_failure: now,
            });
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
            e.next_allowed = now + delay_after(e.failures);
        }
    }

    /// Records a successful attempt: its subjects start afresh.
    pub fn succeeded(&self, subjects: &[Subject]) {
        let mut m = self.lock();
        for s in subjects {
            m.remove(s);
        }
    }

    /// Failed logins in a row for `subject`.
    pub fn failures(&self, subject: &Subject) -> u32 {
        self.lock().get(subject).map_or(0, |e| e.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_three_failures_and_double_up_to_thirty_seconds() {
        let secs: Vec<u64> = (0..12).map(|f| delay_after(f).as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn attempts_wait_after_three_failures_and_a_success_resets() {
        let t = Throttle::default();
        let alice = [
            Subject::User("alice".into()),
            Subject::Peer("1.2.3.4".into()),
        ];
        for _ in 0..3 {
            assert!(t.wait_or_reserve(&alice, Instant::now()).is_zero());
            t.failed(&alice);
        }
        let wait = t.wait_or_reserve(&alice, Instant::now());
        assert!(wait > Duration::from_millis(900), "{wait:?}");
        // Another user from the same peer waits too; another user from elsewhere does not.
        let bob_here = [Subject::User("bob".into()), Subject::Peer("1.2.3.4".into())];
        assert!(!t.wait_or_reserve(&bob_here, Instant::now()).is_zero());
        let bob_away = [Subject::User("bob".into()), Subject::Peer("5.6.7.8".into())];
        assert!(t.wait_or_reserve(&bob_away, Instant::now()).is_zero());
        // Once allowed, the attempt reserves its slot: a second one at the same moment waits.
        let later = Instant::now() + Duration::from_secs(2);
        assert!(t.wait_or_reserve(&alice, later).is_zero());
        assert!(!t.wait_or_reserve(&alice, later).is_zero());
        t.succeeded(&alice);
        assert_eq!(t.failures(&alice[0]), 0);
        assert!(t.wait_or_reserve(&alice, Instant::now()).is_zero());
    }
}
