//! Small tasks' data kept in memory by task id, up to a number of bytes, so that it can travel
//! with the task instead of being fetched from the master data node: the master controller
//! keeps what coordinators send with their decisions and puts it into pull answers; the slave
//! controller keeps what came with the pulled tasks and puts it into hand-outs.
//!
//! It is only a copy. What does not fit is not kept (the master evicts its oldest), and a
//! restart forgets it all: such a task's data is fetched from its master data node, which
//! keeps the copy that lasts.

use std::collections::BTreeMap;

use serde_bytes::ByteBuf;
use xrepl_proto::task::InlineData;

/// Task data in memory, by task id, at most `limit` bytes in all.
#[derive(Debug)]
pub struct InlineCache {
    data: BTreeMap<u64, ByteBuf>,
    bytes: usize,
    limit: usize,
}

impl InlineCache {
    pub fn new(limit: usize) -> InlineCache {
        InlineCache {
            data: BTreeMap::new(),
            bytes: 0,
            limit,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes that may still be added without evicting.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.bytes)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Keeps `bytes` for task `id`, evicting the oldest tasks' data while over the limit
    /// (the newest is what a slave that keeps up asks for next). Data larger than the whole
    /// limit is not kept.
    pub fn keep(&mut self, id: u64, bytes: ByteBuf) {
        if bytes.len() > self.limit {
            return;
        }
        self.bytes += bytes.len();
        if let Some(old) = self.data.insert(id, bytes) {
            self.bytes -= old.len();
        }
        while self.bytes > self.limit {
            let Some((_, old)) = self.data.pop_first() else {
                break;
            };
            self.bytes -= old.len();
        }
    }

    /// Keeps `bytes` for task `id` only if it fits without evicting anything (a slave keeps
    /// what it asked room for; anything beyond is fetched).
    pub fn keep_if_room(&mut self, id: u64, bytes: ByteBuf) -> bool {
        if bytes.len() > self.room() {
            return false;
        }
        self.keep(id, bytes);
        true
    }

    /// Forgets the data of every task up to `id`.
    pub fn forget_upto(&mut self, id: u64) {
        let rest = self.data.split_off(&id.saturating_add(1));
        let gone = std::mem::replace(&mut self.data, rest);
        self.bytes -= gone.values().map(|b| b.len()).sum::<usize>();
    }

    /// Forgets the data of task `id`.
    pub fn forget(&mut self, id: u64) {
        if let Some(old) = self.data.remove(&id) {
            self.bytes -= old.len();
        }
    }

    /// Keeps only the data of the tasks `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut freed = 0;
        self.data.retain(|id, b| {
            let k = keep(*id);
            if !k {
                freed += b.len();
            }
            k
        });
        self.bytes -= freed;
    }

    /// The data held for `ids`, in their order, at most `room` bytes (what does not fit is
    /// left out, and so fetched).
    pub fn copies(&self, ids: impl IntoIterator<Item = u64>, room: usize) -> Vec<InlineData> {
        let mut left = room;
        let mut out = Vec::new();
        for id in ids {
            if let Some(b) = self.data.get(&id) {
                if b.len() <= left {
                    left -= b.len();
                    out.push(InlineData {
                        task_id: id,
                        bytes: b.clone(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: usize) -> ByteBuf {
        ByteBuf::from(vec![7u8; n])
    }

    #[test]
    fn it_keeps_to_its_limit_by_evicting_the_oldest() {
        let mut c = InlineCache::new(100);
        for id in 1..=5 {
            c.keep(id, b(30));
        }
        assert_eq!(c.bytes(), 90);
        assert_eq!(c.len(), 3);
        let held: Vec<u64> = c
            .copies(1..=5, usize::MAX)
            .iter()
            .map(|d| d.task_id)
            .collect();
        assert_eq!(held, vec![3, 4, 5]);
        c.keep(9, b(101));
        assert_eq!(c.len(), 3, "larger than the whole limit: not kept");
        c.keep(4, b(10));
        assert_eq!(c.bytes(), 70, "a task kept again replaces its data");
    }

    #[test]
    fn copies_stay_within_the_room_and_forgetting_frees_bytes() {
        let mut c = InlineCache::new(1000);
        for id in 1..=10 {
            c.keep(id, b(10 * id as usize));
        }
        let got = c.copies([2, 3, 11, 4], 55);
        let ids: Vec<u64> = got.iter().map(|d| d.task_id).collect();
        assert_eq!(
            ids,
            vec![2, 3],
            "task 4 (40 bytes) does not fit in the 5 left"
        );
        assert!(!c.keep_if_room(20, b(1000 - 550 + 1)));
        assert!(c.keep_if_room(20, b(1000 - 550)));
        assert_eq!(c.room(), 0);
        c.forget_upto(5);
        assert_eq!(c.bytes(), 1000 - 150);
        c.forget(20);
        c.retain(|id| id % 2 == 0);
        let ids: Vec<u64> = c
            .copies(0..30, usize::MAX)
            .iter()
            .map(|d| d.task_id)
            .collect();
        assert_eq!(ids, vec![6, 8, 10]);
        assert_eq!(c.bytes(), 60 + 80 + 100);
    }
}
