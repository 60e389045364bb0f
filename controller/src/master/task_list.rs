//! The send queue's tasks, compactly. Task ids are consecutive, so the listed tasks are a
//! deque from the first listed id; database, table and host names are shared by many tasks,
//! so each is kept once and a task holds its index. About 40 bytes a task instead of about
//! 250 (three strings each), so a million untruncated tasks (a slave stopped for a while) fit
//! in the controller's memory twice over (the writer's working copy and the published one).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use xrepl_proto::task::{OperationType, TaskInfo};

/// One task, its strings by index into [`Names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    tid: u64,
    group_id: u64,
    submit_ns: i64,
    db: u32,
    table: u32,
    src_host: u32,
    src_port: u16,
    op: OperationType,
    execution_set: u8,
    data_bytes: u64,
    /// Data bytes of every task listed since the list was made, up to this one (see
    /// [`TaskList::bytes_after`]).
    cum_bytes: u64,
    /// The slave a re-sync's task is for, by index ([`NO_SLAVE`]: every slave).
    for_slave: u32,
}

const NO_SLAVE: u32 = u32::MAX;

/// Strings kept once, by index. Never shrinks: it holds the distinct names of databases,
/// tables and data node hosts that tasks have named, which are few.
#[derive(Debug, Clone, Default)]
struct Names {
    index: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(s);
        self.names.push(name.clone());
        self.index.insert(name, i);
        i
    }

    fn get(&self, i: u32) -> String {
        self.names
            .get(i as usize)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

/// The listed tasks: ids `first..first + len`, consecutive.
#[derive(Debug, Clone, Default)]
pub struct TaskList {
    first: u64,
    items: VecDeque<Packed>,
    names: Names,
    /// `cum_bytes` of the last task forgotten from the front (0 before any).
    base_bytes: u64,
}

impl TaskList {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The first listed id (none listed: `None`).
    pub fn first_id(&self) -> Option<u64> {
        (!self.items.is_empty()).then_some(self.first)
    }

    /// Lists `t` after the others. Its id must follow the last one's (or anything, when
    /// none is listed); a task that does not is refused with the reason.
    pub fn push(&mut self, t: &TaskInfo) -> Result<(), String> {
        if self.items.is_empty() {
            self.first = t.task_id;
        } else if t.task_id != self.first + self.items.len() as u64 {
            return Err(format!(
                "task {} does not follow task {}",
                t.task_id,
                self.first + self.items.len() as u64 - 1
            ));
        }
        let cum_bytes = self
            .items
            .back()
            .map_or(self.base_bytes, |p| p.cum_bytes)
            .saturating_add(t.data_bytes);
        let p = Packed {
            data_bytes: t.data_bytes,
            cum_bytes,
            tid: t.tid,
            group_id: t.group_id,
            submit_ns: t.submit_ns,
            db: self.names.id(&t.db),
            table: self.names.id(&t.table),
            src_host: self.names.id(&t.src_host),
            src_port: t.src_port,
            op: t.op,
            execution_set: t.execution_set,
            for_slave: t
                .for_slave
                .as_deref()
                .map_or(NO_SLAVE, |s| self.names.id(s)),
        };
        self.items.push_back(p);
        Ok(())
    }

    fn unpack(&self, id: u64, p: &Packed) -> TaskInfo {
        TaskInfo {
            task_id: id,
            tid: p.tid,
            group_id: p.group_id,
            op: p.op,
            submit_ns: p.submit_ns,
            db: self.names.get(p.db),
            table: self.names.get(p.table),
            src_host: self.names.get(p.src_host),
            src_port: p.src_port,
            execution_set: p.execution_set,
            data_bytes: p.data_bytes,
            for_slave: (p.for_slave != NO_SLAVE).then(|| self.names.get(p.for_slave)),
        }
    }

    pub fn get(&self, id: u64) -> Option<TaskInfo> {
        let at = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.items.get(at).map(|p| self.unpack(id, p))
    }

    /// Forgets the first listed task; answers its id and tid.
    pub fn pop_first(&mut self) -> Option<(u64, u64)> {
        let p = self.items.pop_front()?;
        let id = self.first;
        self.first += 1;
        self.base_bytes = p.cum_bytes;
        Some((id, p.tid))
    }

    /// The listed tasks with ids in `from..=to`, in order.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = TaskInfo> + '_ {
        let start = from.max(self.first);
        let end = to.min((self.first + self.items.len() as u64).saturating_sub(1));
        let skip = usize::try_from(start - self.first).unwrap_or(usize::MAX);
        let take = if end >= start {
            usize::try_from(end - start + 1).unwrap_or(usize::MAX)
        } else {
            0
        };
        let skip = skip.min(self.items.len());
        self.items
            .range(skip..)
            .take(take)
            .enumerate()
            .map(move |(i, p)| self.unpack(start + i as u64, p))
    }

    /// Data bytes of the listed tasks after task `id` (all of them when `id` is before the
    /// first listed): what the master keeps for a slave that finished every task up to `id`.
    pub fn bytes_after(&self, id: u64) -> u64 {
        let Some(last) = self.items.back() else {
            return 0;
        };
        let upto = if id < self.first {
            self.base_bytes
        } else {
            usize::try_from(id - self.first)
                .ok()
                .and_then(|i| self.items.get(i))
                .map_or(last.cum_bytes, |p| p.cum_bytes)
        };
        last.cum_bytes.saturating_sub(upto)
    }

    /// How many listed tasks have ids up to `upto`.
    pub fn count_upto(&self, upto: u64) -> usize {
        if self.items.is_empty() || upto < self.first {
            return 0;
        }
        usize::try_from(upto - self.first + 1)
            .unwrap_or(usize::MAX)
            .min(self.items.len())
    }

    /// The tids of the listed tasks with ids from `from` on.
    pub fn tids_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        let skip = usize::try_from(from.saturating_sub(self.first))
            .unwrap_or(usize::MAX)
            .min(self.items.len());
        self.items.range(skip..).map(|p| p.tid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, db: &str) -> TaskInfo {
        TaskInfo {
            task_id: id,
            tid: id * 10,
            group_id: id / 3,
            op: OperationType::Append,
            submit_ns: id as i64,
            db: db.into(),
            table: "t".into(),
            src_host: "127.0.0.1".into(),
            src_port: 8849,
            execution_set: 1,
            data_bytes: id * 100,
            for_slave: (id == 2).then(|| "slave1".to_string()),
        }
    }

    #[test]
    fn bytes_after_counts_the_data_of_the_later_tasks_also_after_the_front_is_forgotten() {
        let mut l = TaskList::default();
        assert_eq!(l.bytes_after(0), 0);
        for id in 1..=4 {
            l.push(&task(id, "dfs://a")).expect("push");
        }
        assert_eq!(l.bytes_after(0), 1000);
        assert_eq!(l.bytes_after(2), 700);
        assert_eq!(l.bytes_after(4), 0);
        assert_eq!(l.bytes_after(9), 0);
        l.pop_first();
        l.pop_first();
        assert_eq!(l.bytes_after(0), 700, "before the first listed: all listed");
        assert_eq!(l.bytes_after(2), 700);
        assert_eq!(l.bytes_after(3), 400);
        l.push(&task(5, "dfs://a")).expect("push");
        assert_eq!(l.bytes_after(3), 900);
        assert_eq!(l.get(5).map(|t| t.data_bytes), Some(500));
    }

    #[test]
    fn tasks_round_trip_and_only_consecutive_ids_are_listed() {
        let mut l = TaskList::default();
        for id in 5..=9 {
            l.push(&task(id, if id % 2 == 0 { "dfs://a" } else { "dfs://b" }))
                .expect("push");
        }
        assert!(l.push(&task(11, "dfs://a")).is_err(), "a gap is refused");
        assert_eq!(l.get(7), Some(task(7, "dfs://b")));
        assert_eq!(l.get(4), None);
        assert_eq!(l.get(10), None);
        let ids: Vec<u64> = l.range(6, 8).map(|t| t.task_id).collect();
        assert_eq!(ids, vec![6, 7, 8]);
        assert_eq!(l.range(0, u64::MAX).count(), 5);
        assert_eq!(l.range(10, 20).count(), 0);
        assert_eq!(l.count_upto(7), 3);
        assert_eq!(l.count_upto(4), 0);
        assert_eq!(l.count_upto(100), 5);
        assert_eq!(l.pop_first(), Some((5, 50)));
        assert_eq!(l.first_id(), Some(6));
        assert_eq!(
            l.names.names.len(),
            4,
            "two databases, one table, one host: kept once"
        );
    }
}
