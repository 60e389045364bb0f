//! A write-ahead log with group commit: what makes a change durable with one `fdatasync`
//! shared by everyone waiting at that moment, instead of one sled flush each.
//!
//! A log is a folder of segment files, `wal-<first seq>.log`. A record is
//! `[len u32][crc32 u32][seq u64][payload]` (little-endian; the checksum covers the sequence
//! number and the payload); sequence numbers grow by one from 1 and never repeat. At open, the
//! records are read in order up to the first that is torn or damaged (a crash in the middle of
//! a write), the segment is cut there, and every record after the store's own checkpoint is
//! handed back for the store to apply again.
//!
//! The store the log protects (a sled tree) records in every batch the sequence number of the
//! log record that carries the same changes, so that after a crash it applies exactly the
//! records it lacks, in order; and once the store has flushed up to a sequence number
//! ([`Wal::checkpoint`]), the segments that hold only older records are deleted.
//!
//! **Invariant:** a record is durable once [`Wal::sync`] returned for its sequence number or a
//! later one; records are durable in order (a record is never durable before an earlier one).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// A new segment is started once the current one holds this much. The tree is checkpointed
/// every second and whole segments behind the checkpoint are deleted, so a log holds about one
/// segment: small, so that disk use follows the live data (the chaos soak measured 64 MiB
/// segments as two thirds of a cluster's disk).
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Bytes before the payload: length, checksum, sequence number.
const HEADER: usize = 16;
/// The largest payload a record may hold (a bigger one is refused, not written).
pub const MAX_RECORD: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write-ahead log {path}: a record of {len} bytes is larger than {MAX_RECORD}")]
    TooLarge { path: PathBuf, len: usize },
}

/// One record read back at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

struct Writer {
    file: File,
    /// Where the current segment is.
    segment: PathBuf,
    segment_bytes: u64,
    /// The last sequence number written.
    seq: u64,
    /// A write failed and the file could not be cut back to its last whole record: nothing
    /// more may be written after the torn bytes (a later open would cut the log there and
    /// drop what followed).
    broken: Option<String>,
}

#[derive(Default)]
struct SyncState {
    /// Every record up to this one is durable.
    synced: u64,
    /// A sync is running (its leader writes `synced` when it ends).
    running: bool,
    /// The error of the last sync, if it failed: every later sync fails too (the file's state
    /// is unknown after a failed fsync).
    failed: Option<String>,
}

/// A write-ahead log; share it behind an `Arc`.
pub struct Wal {
    dir: PathBuf,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

fn segment_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The segments of `dir`, by their first sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the valid records of one segment; `Err(len)` of the valid prefix if it ends in a torn
/// or damaged record.
fn read_segment(path: &Path) -> Result<(Vec<Record>, Option<u64>), WalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + HEADER) else {
            return Ok((out, Some(at as u64)));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some(body) = bytes.get(at + 8..at + 8 + len).filter(|b| b.len() >= 8) else {
            return Ok((out, Some(at as u64)));
        };
        if crc32fast::hash(body) != crc {
            return Ok((out, Some(at as u64)));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&body[..8]);
        out.push(Record {
            seq: u64::from_le_bytes(seq),
            payload: body[8..].to_vec(),
        });
        at += 8 + len;
    }
    Ok((out, None))
}

impl Wal {
    /// Opens (or creates) the log in `dir`; answers it and every record after `checkpoint`
    /// (the last sequence number the store has on disk), in order. A torn tail is cut off.
    pub fn open(dir: &Path, checkpoint: u64) -> Result<(Wal, Vec<Record>), WalError> {
        crate::files::create_private_dirs(dir).map_err(io(dir))?;
        let mut records = Vec::new();
        let mut last_seq = checkpoint;
        let segs = segments(dir)?;
        let mut current: Option<(PathBuf, u64)> = None;
        for (i, (_, path)) in segs.iter().enumerate() {
            let (recs, torn) = read_segment(path)?;
            for r in recs {
                last_seq = last_seq.max(r.seq);
                if r.seq > checkpoint {
                    records.push(r);
                }
            }
            let len = match torn {
                Some(valid) => {
                    // Cut the damaged tail; later segments (there should be none) go too.
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io(path))?;
                    f.set_len(valid).map_err(io(path))?;
                    f.sync_all().map_err(io(path))?;
                    for (_, later) in &segs[i + 1..] {
                        std::fs::remove_file(later).map_err(io(later))?;
                    }
                    current = Some((path.clone(), valid));
                    break;
                }
                None => std::fs::metadata(path).map_err(io(path))?.len(),
            };
            current = Some((path.clone(), len));
        }
        let (segment, segment_bytes) = match current {
            Some(c) => c,
            None => (dir.join(segment_name(last_seq + 1)), 0),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&segment)
            .map_err(io(&segment))?;
        if segment_bytes == 0 {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        let wal = Wal {
            dir: dir.to_path_buf(),
            writer: Mutex::new(Writer {
                file,
                segment,
                segment_bytes,
                seq: last_seq,
                broken: None,
            }),
            sync: Mutex::new(SyncState {
                synced: last_seq,
                ..SyncState::default()
            }),
            synced: Condvar::new(),
        };
        Ok((wal, records))
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sync_state(&self) -> MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a record (not yet durable: see [`Self::sync`]) and answers its sequence number.
    /// `then` runs under the log's lock right after, with that number: what it applies to the
    /// store is applied in the order of the log.
    pub fn append<R>(
        &self,
        payload: &[u8],
        then: impl FnOnce(u64) -> R,
    ) -> Result<(u64, R), WalError> {
        if payload.len() > MAX_RECORD {
            return Err(WalError::TooLarge {
                path: self.dir.clone(),
                len: payload.len(),
            });
        }
        let mut w = self.writer();
        if let Some(e) = &w.broken {
            return Err(WalError::Io {
                path: w.segment.clone(),
                source: std::io::Error::other(format!("an earlier write failed: {e}")),
            });
        }
        if w.segment_bytes >= SEGMENT_BYTES {
            let next = self.dir.join(segment_name(w.seq + 1));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&next)
                .map_err(io(&next))?;
            // The finished segment must be durable before records in the next one are, and
            // the new segment's name with them.
            w.file.sync_data().map_err(io(&w.segment))?;
            crate::files::sync_dir(&self.dir).map_err(|e| WalError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            w.file = file;
            w.segment = next;
            w.segment_bytes = 0;
        }
        let seq = w.seq + 1;
        let mut rec = Vec::with_capacity(HEADER + payload.len());
        rec.extend_from_slice(&((payload.len() + 8) as u32).to_le_bytes());
        rec.extend_from_slice(&[0; 4]);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(payload);
        let crc = crc32fast::hash(&rec[8..]);
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
        let segment = w.segment.clone();
        if let Err(e) = w.file.write_all(&rec) {
            // Part of the record may be in the file: cut it off, so that the next record
            // follows the last whole one.
            let whole = w.segment_bytes;
            if let Err(cut) = w.file.set_len(whole) {
                w.broken = Some(format!(
                    "{e}; cutting the torn record off failed too: {cut}"
                ));
            }
            return Err(io(&segment)(e));
        }
        w.seq = seq;
        w.segment_bytes += rec.len() as u64;
        let r = then(seq);
        Ok((seq, r))
    }

    /// The last sequence number written.
    pub fn last_seq(&self) -> u64 {
        self.writer().seq
    }

    /// Returns once every record up to `seq` is durable. Group commit: the first waiter to
    /// find no sync running syncs for everyone (everything written until then), the others
    /// wait for it.
    pub fn sync(&self, seq: u64) -> Result<(), WalError> {
        let mut s = self.sync_state();
        loop {
            if let Some(e) = &s.failed {
                return Err(WalError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(e.clone()),
                });
            }
            if s.synced >= seq {
                return Ok(());
            }
            if !s.running {
                s.running = true;
                drop(s);
                let (file, target, path) = {
                    let w = self.writer();
                    (w.file.try_clone(), w.seq, w.segment.clone())
                };
                let r = file.and_then(|f| f.sync_data());
                s = self.sync_state();
                s.running = false;
                match r {
                    Ok(()) => s.synced = s.synced.max(target),
                    Err(e) => s.failed = Some(format!("{}: {e}", path.display())),
                }
                self.synced.notify_all();
                continue;
            }
            s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The store has every record up to `seq` on disk: deletes the segments that hold only
    /// such records.
    pub fn checkpoint(&self, seq: u64) -> Result<(), WalError> {
        let current = self.writer().segment.clone();
        let segs = segments(&self.dir)?;
        for (i, (_, path)) in segs.iter().enumerate() {
            if *path == current {
                break;
            }
            // A segment holds the records from its first number to the next one's first - 1.
            let next_first = segs.get(i + 1).map_or(u64::MAX, |(n, _)| *n);
            if next_first.saturating_sub(1) <= seq {
                std::fs::remove_file(path).map_err(io(path))?;
            }
        }
        Ok(())
    }

    /// Bytes the log's segments take on disk.
    pub fn size_on_disk(&self) -> u64 {
        segments(&self.dir)
            .map(|s| {
                s.iter()
                    .filter_map(|(_, p)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(w: &Wal, p: &[u8]) -> u64 {
        w.append(p, |_| ()).expect("append").0
    }

    #[test]
    fn records_come_back_after_the_checkpoint_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (w, recs) = Wal::open(dir.path(), 0).expect("open");
            assert!(recs.is_empty());
            for i in 1..=5u8 {
                assert_eq!(append(&w, &[i; 3]), u64::from(i));
            }
            w.sync(5).expect("sync");
        }
        let (w, recs) = Wal::open(dir.path(), 2).expect("reopen");
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(recs[0].payload, vec![3; 3]);
        assert_eq!(append(&w, b"x"), 6, "numbering goes on");
    }

    #[test]
    fn a_torn_tail_is_cut_and_what_came_before_it_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (w, _) = Wal::open(dir.path(), 0).expect("open");
            append(&w, b"one");
            append(&w, b"two");
            w.sync(2).expect("sync");
        }
        let seg = segments(dir.path()).expect("list")[0].1.clone();
        let len = std::fs::metadata(&seg).expect("meta").len();
        // A crash in the middle of the second record, and garbage after it.
        let f = OpenOptions::new().write(true).open(&seg).expect("open");
        f.set_len(len - 2).expect("cut");
        drop(f);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
        f.write_all(&[0xff; 7]).expect("garbage");
        drop(f);
        let (w, recs) = Wal::open(dir.path(), 0).expect("reopen");
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].payload, b"one");
        assert_eq!(
            append(&w, b"three"),
            2,
            "the torn record's number is used again"
        );
        w.sync(2).expect("sync");
        drop(w);
        let (_, recs) = Wal::open(dir.path(), 0).expect("reopen");
        assert_eq!(
            recs.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(),
            vec![b"one".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn concurrent_appenders_share_syncs_and_all_become_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, _) = Wal::open(dir.path(), 0).expect("open");
        let w = std::sync::Arc::new(w);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let seq = append(&w, &[t as u8, (i % 256) as u8]);
                        w.sync(seq).expect("sync");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        assert_eq!(w.last_seq(), 400);
        drop(w);
        let (_, recs) = Wal::open(dir.path(), 0).expect("reopen");
        assert_eq!(recs.len(), 400);
        assert!(recs.windows(2).all(|p| p[1].seq == p[0].seq + 1));
    }

    #[test]
    fn a_checkpoint_deletes_only_segments_the_store_has_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, _) = Wal::open(dir.path(), 0).expect("open");
        // Force small segments by writing big records.
        let big = vec![1u8; (SEGMENT_BYTES / 2) as usize];
        for _ in 0..5 {
            append(&w, &big);
        }
        let before = segments(dir.path()).expect("list").len();
        assert!(before >= 2, "{before} segments");
        w.checkpoint(2).expect("checkpoint");
        let after = segments(dir.path()).expect("list");
        assert!(after.len() < before);
        assert!(
            after[0].0 <= 3,
            "the segment holding record 3 stays: {after:?}"
        );
        w.sync(5).expect("sync");
        drop(w);
        let (_, recs) = Wal::open(dir.path(), 2).expect("reopen");
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }
}
