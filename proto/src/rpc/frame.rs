//! Frames: what travels inside one length-delimited unit.
//!
//! Every frame is `[kind: u8][flags: u8][id: u64 big-endian][payload]`, and the whole unit is
//! length-prefixed by [`LengthDelimitedCodec`], which refuses an oversized length before it
//! allocates anything. A message (an rmp-serde body) larger than one frame is cut into chunks
//! that share the id; every chunk but the last carries [`FLAG_MORE`]. The [`Assembler`] puts
//! them back together and bounds the memory it holds.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::LengthDelimitedCodec;

/// Bytes before the payload in every frame.
pub const HEADER_LEN: usize = 10;
/// More chunks of this message follow.
pub const FLAG_MORE: u8 = 1;
/// Largest message that may be assembled from chunks (1 GiB).
pub const MAX_MESSAGE_SIZE: usize = 1 << 30;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// The client's greeting, first frame on a connection.
    Hello,
    /// The server's answer to the greeting.
    HelloReply,
    Request,
    Response,
    /// A member's proof of the cluster key, after the greeting reply.
    Proof,
}

impl FrameKind {
    fn code(self) -> u8 {
        match self {
            FrameKind::Hello => 1,
            FrameKind::HelloReply => 2,
            FrameKind::Request => 3,
            FrameKind::Response => 4,
            FrameKind::Proof => 5,
        }
    }

    fn from_code(c: u8) -> Option<FrameKind> {
        Some(match c {
            1 => FrameKind::Hello,
            2 => FrameKind::HelloReply,
            3 => FrameKind::Request,
            4 => FrameKind::Response,
            5 => FrameKind::Proof,
            _ => return None,
        })
    }
}

/// Why a frame or a chunk sequence was refused. The connection is closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("unknown frame flags {0:#x}")]
    UnknownFlags(u8),
    #[error("message {id} grew past the {limit}-byte limit while being assembled")]
    MessageTooLarge { id: u64, limit: usize },
}

/// The codec for every xrepl connection: a 4-byte big-endian length, at most `max_frame` bytes.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame)
        .new_codec()
}

/// Cuts one encoded message into frames of at most `max_frame` bytes (header included).
pub fn split(kind: FrameKind, id: u64, payload: &[u8], max_frame: usize) -> Vec<Bytes> {
    let room = max_frame.saturating_sub(HEADER_LEN).max(1);
    let mut chunks: Vec<&[u8]> = payload.chunks(room).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut b = BytesMut::with_capacity(HEADER_LEN + chunk.len());
            b.put_u8(kind.code());
            b.put_u8(if i == last { 0 } else { FLAG_MORE });
            b.put_u64(id);
            b.put_slice(chunk);
            b.freeze()
        })
        .collect()
}

/// Payload bytes per frame when a message is encoded straight into frames: large enough that
/// the header and the per-frame work do not matter, small enough that no frame buffer is
/// reallocated far.
pub const ENCODE_CHUNK: usize = 1 << 20;

/// Encodes `msg` straight into frames of at most `max_frame` bytes (and at most
/// [`ENCODE_CHUNK`] of payload), as [`split`] would cut its encoding: the message is never
/// held as one contiguous buffer besides (a 75 MB bulk prepare was held three times: the
/// value, its encoding grown by doubling, and the frames).
pub fn encode_frames<T: serde::Serialize>(
    kind: FrameKind,
    id: u64,
    msg: &T,
    max_frame: usize,
) -> Result<Vec<Bytes>, rmp_serde::encode::Error> {
    let mut w = FrameWriter {
        kind,
        id,
        room: max_frame.saturating_sub(HEADER_LEN).clamp(1, ENCODE_CHUNK),
        cur: Vec::new(),
        done: Vec::new(),
    };
    w.start();
    rmp_serde::encode::write(&mut w, msg)?;
    w.done.push(Bytes::from(w.cur));
    Ok(w.done)
}

struct FrameWriter {
    kind: FrameKind,
    id: u64,
    /// Payload bytes per frame.
    room: usize,
    cur: Vec<u8>,
    done: Vec<Bytes>,
}

impl FrameWriter {
    fn start(&mut self) {
        let mut b = Vec::with_capacity(HEADER_LEN + 256);
        b.push(self.kind.code());
        b.push(0);
        b.extend_from_slice(&self.id.to_be_bytes());
        self.cur = b;
    }

    /// The slow path: `buf` does not fit in the current frame.
    fn spill(&mut self, mut rest: &[u8]) {
        while !rest.is_empty() {
            let used = self.cur.len() - HEADER_LEN;
            if used == self.room {
                // The frame is full: it is not the last one.
                self.cur[1] = FLAG_MORE;
                let full = std::mem::take(&mut self.cur);
                self.done.push(Bytes::from(full));
                self.start();
                continue;
            }
            let n = rest.len().min(self.room - used);
            self.cur.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
    }
}

impl std::io::Write for FrameWriter {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.cur.len() + buf.len() <= HEADER_LEN + self.room {
            self.cur.extend_from_slice(buf);
        } else {
            self.spill(buf);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One received frame, header decoded.
#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub more: bool,
    pub id: u64,
    pub payload: Bytes,
}

/// Decodes a frame's header; the payload is not looked at.
pub fn parse(mut raw: Bytes) -> Result<Frame, FrameError> {
    if raw.len() < HEADER_LEN {
        return Err(FrameError::Short(raw.len()));
    }
    let head = raw.split_to(HEADER_LEN);
    let kind = FrameKind::from_code(head[0]).ok_or(FrameError::UnknownKind(head[0]))?;
    let flags = head[1];
    if flags & !FLAG_MORE != 0 {
        return Err(FrameError::UnknownFlags(flags));
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&head[2..HEADER_LEN]);
    Ok(Frame {
        kind,
        more: flags & FLAG_MORE != 0,
        id: u64::from_be_bytes(id_bytes),
        payload: raw,
    })
}

/// Reassembles chunked messages, holding at most `limit` bytes in all.
#[derive(Debug)]
pub struct Assembler {
    /// The chunks received so far of each message, kept as they came (no copy until the
    /// last arrives, then one into a buffer of the exact size).
    partial: HashMap<(FrameKind, u64), Vec<Bytes>>,
    held: usize,
    limit: usize,
}

impl Assembler {
    pub fn new(limit: usize) -> Assembler {
        Assembler {
            partial: HashMap::new(),
            held: 0,
            limit,
        }
    }

    /// Adds a frame; returns the whole message when this was its last chunk.
    pub fn push(&mut self, frame: Frame) -> Result<Option<(FrameKind, u64, Bytes)>, FrameError> {
        let key = (frame.kind, frame.id);
        let grown = self.held + frame.payload.len();
        if grown > self.limit {
            return Err(FrameError::MessageTooLarge {
                id: frame.id,
                limit: self.limit,
            });
        }
        match (self.partial.remove(&key), frame.more) {
            (None, false) => Ok(Some((frame.kind, frame.id, frame.payload))),
            (None, true) => {
                self.held = grown;
                self.partial.insert(key, vec![frame.payload]);
                Ok(None)
            }
            (Some(mut pieces), true) => {
                self.held = grown;
                pieces.push(frame.payload);
                self.partial.insert(key, pieces);
                Ok(None)
            }
            (Some(mut pieces), false) => {
                pieces.push(frame.payload);
                let total: usize = pieces.iter().map(Bytes::len).sum();
                self.held -= total - pieces.last().map_or(0, Bytes::len);
                let mut buf = BytesMut::with_capacity(total);
                for p in pieces {
                    buf.extend_from_slice(&p);
                }
                Ok(Some((frame.kind, frame.id, buf.freeze())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_encoded_into_frames_is_what_split_makes_of_its_encoding() {
        let msg: Vec<u64> = (0..300_000).map(|i| i * 7_919).collect();
        let body = rmp_serde::to_vec(&msg).expect("encode");
        for max in [64, 1_000, 1 << 20, 64 << 20] {
            let frames = encode_frames(FrameKind::Request, 9, &msg, max).expect("frames");
            let cut = split(
                FrameKind::Request,
                9,
                &body,
                max.min(ENCODE_CHUNK + HEADER_LEN),
            );
            assert_eq!(frames, cut, "max_frame {max}");
            let mut asm = Assembler::new(MAX_MESSAGE_SIZE);
            let mut out = None;
            for f in frames {
                out = asm.push(parse(f).expect("parse")).expect("push");
            }
            let (_, id, got) = out.expect("whole");
            assert_eq!((id, &got[..]), (9, &body[..]));
        }
        // An empty payload is still one frame.
        let frames = encode_frames(FrameKind::Response, 1, &(), 1024).expect("frames");
        assert_eq!(frames.len(), 1);
    }

    #[test]
    fn small_message_is_one_frame() {
        let frames = split(FrameKind::Request, 7, b"hello", 1024);
        assert_eq!(frames.len(), 1);
        let f = parse(frames[0].clone()).expect("parse");
        assert_eq!((f.kind, f.id, f.more), (FrameKind::Request, 7, false));
        assert_eq!(&f.payload[..], b"hello");
    }

    #[test]
    fn large_message_is_chunked_and_reassembled_even_interleaved() {
        let a: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = vec![9; 300];
        let fa = split(FrameKind::Response, 1, &a, 110);
        let fb = split(FrameKind::Response, 2, &b, 110);
        assert!(fa.iter().all(|f| f.len() <= 110));
        assert_eq!(fa.len(), 10);
        let mut asm = Assembler::new(MAX_MESSAGE_SIZE);
        let mut done = Vec::new();
        let mut ia = fa.into_iter();
        let mut ib = fb.into_iter();
        loop {
            let next = [ia.next(), ib.next()];
            if next.iter().all(Option::is_none) {
                break;
            }
            for f in next.into_iter().flatten() {
                if let Some(m) = asm.push(parse(f).expect("parse")).expect("push") {
                    done.push(m);
                }
            }
        }
        done.sort_by_key(|m| m.1);
        assert_eq!(done.len(), 2);
        assert_eq!(&done[0].2[..], &a[..]);
        assert_eq!(&done[1].2[..], &b[..]);
        assert_eq!(asm.held, 0);
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(
            parse(Bytes::from_static(b"abc")).err(),
            Some(FrameError::Short(3))
        );
        let mut bad = vec![99u8, 0];
        bad.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse(Bytes::from(bad)).err(),
            Some(FrameError::UnknownKind(99))
        );
        let mut flags = vec![3u8, 0x80];
        flags.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse(Bytes::from(flags)).err(),
            Some(FrameError::UnknownFlags(0x80))
        );
    }

    #[test]
    fn assembler_bounds_what_it_holds() {
        let mut asm = Assembler::new(100);
        for f in split(FrameKind::Request, 1, &[0; 500], 60) {
            match asm.push(parse(f).expect("parse")) {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e, FrameError::MessageTooLarge { id: 1, limit: 100 });
                    return;
                }
            }
        }
        panic!("the assembler accepted more than its limit");
    }
}
