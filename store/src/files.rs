//! Files for bulk bytes (column blocks, replication task data): a file system is good at them,
//! a sled value is not (sled 0.34 keeps a large value in a blob file of its own and never
//! deletes it).
//!
//! A file is written whole and made durable ([`write`] then [`sync_dir`] for its folder)
//! *before* the sled record that names it is written; the record holds a [`FileRef`]: the
//! file's length and CRC-32, so that a torn or damaged file is told as such when it is read,
//! never returned as data. A file that no record names (the process died between the two
//! steps) is garbage; its owner removes it at start.
//!
//! **Invariant:** a record that names a file is written only after the file and its directory
//! entry are durable.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The first byte of an encoded [`FileRef`]. MessagePack never uses it, so a sled value that
/// may hold either an rmp-encoded value or a file reference tells them apart by it.
pub const FILE_REF_TAG: u8 = 0xc1;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

impl FileError {
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            FileError::Io { source, .. } => Some(source.kind()),
            FileError::Damaged { .. } => None,
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a record knows of the file it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRef {
    pub len: u64,
    pub crc: u32,
}

impl FileRef {
    pub const ENCODED: usize = 13;

    pub fn of(bytes: &[u8]) -> FileRef {
        FileRef {
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        }
    }

    /// `[FILE_REF_TAG][len u64 LE][crc u32 LE]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::ENCODED);
        v.push(FILE_REF_TAG);
        v.extend_from_slice(&self.len.to_le_bytes());
        v.extend_from_slice(&self.crc.to_le_bytes());
        v
    }

    /// `None` unless `v` is an encoded reference.
    pub fn decode(v: &[u8]) -> Option<FileRef> {
        if v.len() != Self::ENCODED || v[0] != FILE_REF_TAG {
            return None;
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&v[1..9]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&v[9..13]);
        Some(FileRef {
            len: u64::from_le_bytes(len),
            crc: u32::from_le_bytes(crc),
        })
    }
}

/// Writes `bytes` as the whole of the file at `path` and makes its data durable (its directory
/// entry is not: see [`sync_dir`]). Answers the reference a record keeps.
pub fn write(path: &Path, bytes: &[u8]) -> Result<FileRef, FileError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_data().map_err(io(path))?;
    Ok(FileRef::of(bytes))
}

/// Most threads [`write_all`] and [`sync_dirs`] wait on `fsync` with at once.
const SYNC_THREADS: usize = 8;

/// Writes each `(path, bytes)` as a whole file, then makes their data durable with up to
/// [`SYNC_THREADS`] `fdatasync`s in flight: the file system's journal takes the concurrent
/// ones in fewer commits than one after another (a bulk append writes a block file for each
/// of hundreds of partitions). Answers the references in order.
pub fn write_all(files: &[(PathBuf, &[u8])]) -> Result<Vec<FileRef>, FileError> {
    let mut opened = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let mut f = File::create(path).map_err(io(path))?;
        f.write_all(bytes).map_err(io(path))?;
        opened.push((f, path.as_path()));
    }
    in_parallel(&opened, |(f, path)| f.sync_data().map_err(io(path)))?;
    Ok(files.iter().map(|(_, b)| FileRef::of(b)).collect())
}

/// [`sync_dir`] on each of `dirs`, up to [`SYNC_THREADS`] at once.
pub fn sync_dirs(dirs: &[&Path]) -> Result<(), FileError> {
    in_parallel(dirs, |d| sync_dir(d))
}

/// `f` on every item, spread over up to [`SYNC_THREADS`] threads; the first error.
fn in_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), FileError> + Sync,
) -> Result<(), FileError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&f);
    }
    let per = items.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| s.spawn(|| part.iter().try_for_each(&f)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<()>, FileError>>()
            .map(|_| ())
    })
}

/// Makes the entries of directory `dir` (files created or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Creates `dir` (and its parents) if missing; answers whether it did, so that the caller
/// makes the parent's entry durable too. Each folder it creates is `0700`: a store's data is
/// its node's alone, whatever the umask.
pub fn ensure_dir(dir: &Path) -> Result<bool, FileError> {
    if dir.is_dir() {
        return Ok(false);
    }
    create_private_dirs(dir).map_err(io(dir))?;
    Ok(true)
}

/// `create_dir_all`, each folder created `0700` (less the umask).
pub fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// The file's bytes, checked against its reference; `None` when there is no such file.
pub fn read(path: &Path, expect: FileRef) -> Result<Option<Vec<u8>>, FileError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut bytes = Vec::with_capacity(usize::try_from(expect.len).unwrap_or(0));
    f.read_to_end(&mut bytes).map_err(io(path))?;
    let got = FileRef::of(&bytes);
    if got != expect {
        return Err(FileError::Damaged {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes with checksum {:08x}, its record says {} bytes with checksum {:08x}",
                got.len, got.crc, expect.len, expect.crc
            ),
        });
    }
    Ok(Some(bytes))
}

/// Removes a file; one already gone is fine.
pub fn remove(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// Bytes the files under `dir` take (0 for a missing folder).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_a_torn_one_is_told_as_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        let r = write(&p, b"hello world").expect("write");
        assert_eq!(FileRef::decode(&r.encode()), Some(r));
        assert_eq!(
            read(&p, r).expect("read").as_deref(),
            Some(&b"hello world"[..])
        );
        // Torn: the process died while writing (or the disk lost the tail).
        std::fs::write(&p, b"hello").expect("tear");
        let e = read(&p, r).expect_err("damaged");
        assert!(e.to_string().contains("is damaged: 5 bytes"), "{e}");
        remove(&p).expect("remove");
        assert_eq!(read(&p, r).expect("read"), None);
        remove(&p).expect("removing again is fine");
    }

    #[test]
    fn an_rmp_value_is_never_taken_for_a_reference() {
        let v = rmp_serde::to_vec(&(1u32, vec![1u8; 9])).expect("encode");
        assert_eq!(FileRef::decode(&v), None);
        assert_eq!(FileRef::decode(&[FILE_REF_TAG; 3]), None);
    }
}
