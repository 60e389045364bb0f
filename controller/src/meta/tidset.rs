//! A set of tids kept as ranges: the transactions whose decisions were forgotten once every
//! participant had applied them. Tids are used roughly in order (each data node from its own
//! lease), so the set stays a handful of ranges however many transactions ran: a gap is a tid
//! still decided-and-waiting, or one leased and never used.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TidSet {
    /// first → last, inclusive; ranges neither overlap nor touch.
    ranges: BTreeMap<u64, u64>,
}

impl TidSet {
    pub fn contains(&self, tid: u64) -> bool {
        self.ranges
            .range(..=tid)
            .next_back()
            .is_some_and(|(_, last)| *last >= tid)
    }

    pub fn insert(&mut self, tid: u64) {
        if self.contains(tid) {
            return;
        }
        let mut first = tid;
        let mut last = tid;
        if let Some((&f, &l)) = self.ranges.range(..tid).next_back() {
            if l.checked_add(1) == Some(tid) {
                first = f;
            }
        }
        if let Some(next) = tid.checked_add(1) {
            if let Some(l) = self.ranges.remove(&next) {
                last = l;
            }
        }
        self.ranges.insert(first, last);
    }

    /// How many ranges it holds.
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_merge_into_ranges_in_any_order() {
        let mut s = TidSet::default();
        for t in [5, 3, 4, 1, 10, 2, 9, 11] {
            s.insert(t);
        }
        assert_eq!(s.ranges(), 2, "{s:?}");
        for t in [1, 2, 3, 4, 5, 9, 10, 11] {
            assert!(s.contains(t), "{t}");
        }
        for t in [0, 6, 8, 12] {
            assert!(!s.contains(t), "{t}");
        }
        s.insert(7);
        s.insert(6);
        assert_eq!(s.ranges(), 2);
        s.insert(8);
        assert_eq!(s.ranges(), 1);
        s.insert(u64::MAX);
        assert!(s.contains(u64::MAX));
    }
}
