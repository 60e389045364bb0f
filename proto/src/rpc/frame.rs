//! Frames: what travels inside one length-delimited unit.
//!
//! Every frame is `[kind: u8][flags: u8][id: u64 big-endian][payload]`, and the whole unit is
//! length-prefixed by [`LengthDelimitedCodec`], which refuses an oversized length before it
//! allocates anything. A message (an rmp-serde body) larger than one frame is cut into chunks
//! that share the id; every chunk but the last carries [`FLAG_MORE`], and none of those is
//! empty. The [`Assembler`] puts them back together and bounds both the bytes it holds and the
//! number of messages it holds them for. [`FrameCodec`] is the codec whose frame limit may
//! change while its connection is open (the server's: small until the peer authenticates).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Bytes before the payload in every frame.
pub const HEADER_LEN: usize = 10;
/// More chunks of this message follow.
pub const FLAG_MORE: u8 = 1;
/// Largest message that may be assembled from chunks (1 GiB).
pub const MAX_MESSAGE_SIZE: usize = 1 << 30;
/// Most messages an [`Assembler`] made with [`Assembler::new`] reassembles at once. Each one
/// being reassembled costs a map entry besides its bytes, so the byte limit alone would let a
/// peer hold a million entries with one byte each. The sender interleaves the chunks of every
/// request (or answer) it has on the way at once: a data node's kept connection to another
/// carries the chunked prepares of all its concurrent transactions, and a server sends up to
/// `MAX_IN_FLIGHT` (256) answers at once, so this bound sits far above what a busy peer has in
/// flight. A peer that has not authenticated gets far fewer (the server's
/// `PRE_AUTH_MAX_PARTIAL`).
pub const MAX_PARTIAL_MESSAGES: usize = 4096;

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
    /// A chunk with more to follow that carries nothing: no sender makes one, and each would
    /// open or prolong a message without a byte counted against the limit.
    #[error("message {id}: a frame with more chunks to follow (FLAG_MORE) carries no bytes; only the last chunk of a message may be empty")]
    EmptyContinuation { id: u64 },
    /// A new chunked message beyond the number that may be assembled at once.
    #[error("too many messages being assembled at once: message {id} would make {count}, and at most {limit} may be")]
    TooManyPartial { id: u64, count: usize, limit: usize },
}

/// The codec for every xrepl connection: a 4-byte big-endian length, at most `max_frame` bytes.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame)
        .new_codec()
}

/// The codec of a connection whose limit on received frames changes while it is open: the
/// limit is read from `max_in` at each decode, so that a length over it is refused before
/// anything is buffered for it, whatever the limit was when the connection opened (the
/// server raises it once the peer has authenticated). A frame whose length was accepted is
/// read whole even if the limit drops meanwhile. Frames sent are bounded by the fixed
/// `max_out`, as with [`codec`].
#[derive(Debug)]
pub struct FrameCodec {
    decoder: LengthDelimitedCodec,
    encoder: LengthDelimitedCodec,
    max_in: Arc<AtomicUsize>,
}

impl FrameCodec {
    /// Reads frames of at most `max_in` bytes (as it is at each read) and sends frames of at
    /// most `max_out` bytes.
    pub fn new(max_in: Arc<AtomicUsize>, max_out: usize) -> FrameCodec {
        FrameCodec {
            decoder: codec(max_in.load(Ordering::Acquire)),
            encoder: codec(max_out),
            max_in,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        self.decoder
            .set_max_frame_length(self.max_in.load(Ordering::Acquire));
        self.decoder.decode(src)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.encoder.encode(frame, dst)
    }
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

/// Decodes a frame's header; the payload is not looked at, except that a chunk with more to
/// follow must not be empty.
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
    let id = u64::from_be_bytes(id_bytes);
    let more = flags & FLAG_MORE != 0;
    if more && raw.is_empty() {
        return Err(FrameError::EmptyContinuation { id });
    }
    Ok(Frame {
        kind,
        more,
        id,
        payload: raw,
    })
}

/// Reassembles chunked messages, holding at most `limit` bytes in all, for at most
/// `max_partial` messages at once.
#[derive(Debug)]
pub struct Assembler {
    /// The chunks received so far of each message, kept as they came (no copy until the
    /// last arrives, then one into a buffer of the exact size).
    partial: HashMap<(FrameKind, u64), Vec<Bytes>>,
    held: usize,
    limit: usize,
    max_partial: usize,
}

impl Assembler {
    /// An assembler holding at most `limit` bytes, for at most [`MAX_PARTIAL_MESSAGES`]
    /// messages.
    pub fn new(limit: usize) -> Assembler {
        Assembler::with_limits(limit, MAX_PARTIAL_MESSAGES)
    }

    /// An assembler holding at most `limit` bytes, for at most `max_partial` messages.
    pub fn with_limits(limit: usize, max_partial: usize) -> Assembler {
        Assembler {
            partial: HashMap::new(),
            held: 0,
            limit,
            max_partial,
        }
    }

    /// Changes both limits; they apply from the next frame on (what is held already stays).
    pub fn set_limits(&mut self, limit: usize, max_partial: usize) {
        self.limit = limit;
        self.max_partial = max_partial;
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
                if self.partial.len() >= self.max_partial {
                    return Err(FrameError::TooManyPartial {
                        id: frame.id,
                        count: self.partial.len() + 1,
                        limit: self.max_partial,
                    });
                }
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

    /// A frame with `FLAG_MORE` set, as a peer may write it.
    fn more(kind: FrameKind, id: u64, payload: &[u8]) -> Bytes {
        let mut raw = split(kind, id, payload, payload.len() + HEADER_LEN)[0].to_vec();
        raw[1] = FLAG_MORE;
        Bytes::from(raw)
    }

    #[test]
    fn an_empty_frame_with_more_to_follow_is_refused() {
        assert_eq!(
            parse(more(FrameKind::Request, 5, b"")).err(),
            Some(FrameError::EmptyContinuation { id: 5 })
        );
        let reason = FrameError::EmptyContinuation { id: 5 }.to_string();
        assert!(
            reason.contains("FLAG_MORE") && reason.contains("no bytes"),
            "{reason}"
        );
        // Without FLAG_MORE an empty frame is a whole (empty) message, or the last chunk.
        let last = parse(split(FrameKind::Request, 5, b"", 64)[0].clone()).expect("parse");
        assert_eq!((last.more, last.payload.len()), (false, 0));
        let mut asm = Assembler::new(100);
        assert_eq!(
            asm.push(parse(more(FrameKind::Request, 6, b"ab")).expect("parse")),
            Ok(None)
        );
        let done = asm.push(last_of(6)).expect("push").expect("whole");
        assert_eq!(&done.2[..], b"ab");
    }

    /// An empty last chunk of message `id`.
    fn last_of(id: u64) -> Frame {
        parse(split(FrameKind::Request, id, b"", 64)[0].clone()).expect("parse")
    }

    #[test]
    fn the_assembler_bounds_how_many_messages_it_assembles_at_once() {
        let mut asm = Assembler::with_limits(1 << 20, 3);
        for id in 0..3 {
            assert_eq!(
                asm.push(parse(more(FrameKind::Request, id, b"x")).expect("parse")),
                Ok(None)
            );
        }
        // More chunks of a message already counted are fine, a fourth message is not.
        assert_eq!(
            asm.push(parse(more(FrameKind::Request, 1, b"y")).expect("parse")),
            Ok(None)
        );
        assert_eq!(
            asm.push(parse(more(FrameKind::Request, 3, b"z")).expect("parse")),
            Err(FrameError::TooManyPartial {
                id: 3,
                count: 4,
                limit: 3
            })
        );
        // A whole message in one frame is never held, so it does not count.
        assert!(matches!(
            asm.push(parse(split(FrameKind::Request, 9, b"w", 64)[0].clone()).expect("parse")),
            Ok(Some(_))
        ));
        // Once one completes, another may start.
        let done = asm.push(last_of(1)).expect("push").expect("whole");
        assert_eq!(&done.2[..], b"xy");
        assert_eq!(
            asm.push(parse(more(FrameKind::Request, 3, b"z")).expect("parse")),
            Ok(None)
        );
        assert_eq!(asm.partial.len(), 3);
        let reason = FrameError::TooManyPartial {
            id: 3,
            count: 4,
            limit: 3,
        }
        .to_string();
        assert!(reason.contains("at most 3"), "{reason}");
    }

    #[test]
    fn the_default_bound_on_messages_at_once_holds() {
        let mut asm = Assembler::new(MAX_MESSAGE_SIZE);
        for id in 0..MAX_PARTIAL_MESSAGES as u64 {
            asm.push(parse(more(FrameKind::Request, id, b"x")).expect("parse"))
                .expect("within the bound");
        }
        assert!(matches!(
            asm.push(parse(more(FrameKind::Response, 0, b"x")).expect("parse")),
            Err(FrameError::TooManyPartial { .. })
        ));
    }

    #[test]
    fn limits_raised_on_an_assembler_apply_to_the_next_frame() {
        let mut asm = Assembler::with_limits(100, 1);
        let chunk = [7u8; 60];
        assert_eq!(
            asm.push(parse(more(FrameKind::Request, 1, &chunk)).expect("parse")),
            Ok(None)
        );
        assert!(asm
            .push(parse(more(FrameKind::Request, 1, &chunk)).expect("parse"))
            .is_err());
        let mut asm = Assembler::with_limits(100, 1);
        asm.push(parse(more(FrameKind::Request, 1, &chunk)).expect("parse"))
            .expect("first chunk");
        asm.set_limits(1_000, 2);
        asm.push(parse(more(FrameKind::Request, 1, &chunk)).expect("parse"))
            .expect("second chunk, under the raised limit");
        asm.push(parse(more(FrameKind::Request, 2, &chunk)).expect("parse"))
            .expect("a second message, under the raised bound");
        assert_eq!(asm.held, 180);
    }

    #[test]
    fn a_frame_codec_reads_its_limit_at_each_frame() {
        let limit = Arc::new(AtomicUsize::new(16));
        let mut c = FrameCodec::new(limit.clone(), 1 << 20);
        let frame = |n: usize| {
            let mut b = BytesMut::new();
            b.put_u32(n as u32);
            b.put_slice(&vec![1u8; n]);
            b
        };
        // Within the limit: read.
        assert_eq!(
            c.decode(&mut frame(16)).expect("read").map(|f| f.len()),
            Some(16)
        );
        // Over it: refused on the length alone, nothing reserved for it.
        let mut head = BytesMut::with_capacity(8);
        head.put_u32(1 << 20);
        let before = head.capacity();
        let e = c.decode(&mut head).expect_err("refused");
        assert!(e.to_string().contains("frame size too big"), "{e}");
        assert_eq!(head.capacity(), before);
        // Raised: a length refused before is now read.
        let mut big = frame(100);
        assert!(c.decode(&mut big).is_err());
        limit.store(1 << 20, Ordering::Release);
        assert_eq!(
            c.decode(&mut big).expect("read").map(|f| f.len()),
            Some(100)
        );
        // What it sends is bounded by its own fixed limit, not by what it reads.
        let mut out = BytesMut::new();
        c.encode(Bytes::from(vec![0u8; 1 << 20]), &mut out)
            .expect("a frame of max_out");
        assert!(c
            .encode(Bytes::from(vec![0u8; (1 << 20) + 1]), &mut out)
            .is_err());
    }
}
