//! Finding SIP messages in a byte stream (RFC 3261 §18.3), for every
//! stream transport: CRLF keep-alives between messages (RFC 5626 §3.5.1)
//! are skipped, and a message ends after its blank line plus its
//! Content-Length. Pure: bytes in, messages out.
//!
//! The buffer never holds more than one largest message
//! ([`MAX_MESSAGE_SIZE`]) plus one byte: a peer cannot make a connection
//! cost more memory than that on the read side. The search for the end of
//! the headers resumes where it stopped, so a peer that trickles a message
//! byte by byte costs linear time, not quadratic.

use super::message::{header_end, message_len, ParseError, MAX_MESSAGE_SIZE};
use bytes::{Bytes, BytesMut};

/// What the buffer holds next.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One whole message.
    Message(Bytes),
    /// Part of a message (or nothing): read more.
    Incomplete,
    /// No message boundary can be found (a bad Content-Length, or more
    /// than the size limit without one): what was buffered, for a 400
    /// where one can be routed; the stream must be closed.
    Unframeable(Bytes, ParseError),
}

/// The unframed bytes of one stream.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// How far the search for the end of the headers got without finding it.
    searched: usize,
    /// The length of the message at the front, once its headers are in.
    message_len: Option<usize>,
}

/// Room asked for before each read: a little while the buffer is empty
/// (most connections that wait hold nothing), more once a message is
/// coming in.
const FIRST_READ: usize = 512;
const READ_CHUNK: usize = 4096;

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// The buffer to read into, with room for at most [`Framer::room`]
    /// more bytes reserved.
    pub fn buffer(&mut self) -> &mut BytesMut {
        let chunk = if self.buf.is_empty() {
            FIRST_READ
        } else {
            READ_CHUNK
        };
        let want = chunk.min(self.room());
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        &mut self.buf
    }

    /// How many more bytes may be read before the buffer is full: one
    /// beyond the size limit, so that an over-long message is seen.
    pub fn room(&self) -> usize {
        (MAX_MESSAGE_SIZE + 1).saturating_sub(self.buf.len())
    }

    /// True when part of a message is waiting for the rest (keep-alives
    /// alone do not count).
    pub fn is_mid_message(&self) -> bool {
        self.buf.iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// Bytes held, framed or not.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, if the buffer holds one.
    pub fn next_frame(&mut self) -> Frame {
        if self.message_len.is_none() {
            let blank = self
                .buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if blank > 0 {
                let _ = self.buf.split_to(blank);
                self.searched = 0;
            }
        }
        if self.buf.is_empty() {
            return Frame::Incomplete;
        }
        let len = match self.message_len {
            Some(len) => len,
            None => {
                // "\n\r\n" may straddle the previous search's end.
                let from = self.searched.saturating_sub(2);
                match header_end(&self.buf[from..]) {
                    Some(end) => match message_len(&self.buf[..from + end]) {
                        Ok(len) => {
                            self.message_len = Some(len);
                            len
                        }
                        Err(error) => return self.unframeable(error),
                    },
                    None if self.buf.len() > MAX_MESSAGE_SIZE => {
                        return self.unframeable(ParseError::TooLarge)
                    }
                    None => {
                        self.searched = self.buf.len();
                        return Frame::Incomplete;
                    }
                }
            }
        };
        if self.buf.len() < len {
            return Frame::Incomplete;
        }
        self.message_len = None;
        self.searched = 0;
        Frame::Message(self.buf.split_to(len).freeze())
    }

    fn unframeable(&mut self, error: ParseError) -> Frame {
        self.message_len = None;
        self.searched = 0;
        Frame::Unframeable(self.buf.split().freeze(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::stream_frame_len;
    use proptest::prelude::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:10000@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\nCall-ID: a\r\n\
        CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    fn feed(framer: &mut Framer, bytes: &[u8]) -> Vec<Frame> {
        framer.buffer().extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            match framer.next_frame() {
                Frame::Incomplete => return frames,
                frame => frames.push(frame),
            }
        }
    }

    #[test]
    fn messages_split_anywhere_come_out_whole_and_in_order() {
        let stream = [b"\r\n\r\n".as_slice(), OPTIONS, b"\r\n", OPTIONS].concat();
        for step in [1, 2, 3, 7, 64, stream.len()] {
            let mut framer = Framer::new();
            let mut frames = Vec::new();
            for chunk in stream.chunks(step) {
                frames.extend(feed(&mut framer, chunk));
            }
            assert_eq!(
                frames,
                vec![
                    Frame::Message(Bytes::from_static(OPTIONS)),
                    Frame::Message(Bytes::from_static(OPTIONS))
                ],
                "chunks of {step}"
            );
            assert_eq!(framer.buffered(), 0);
            assert!(!framer.is_mid_message());
        }
    }

    #[test]
    fn keep_alives_are_not_a_message_in_progress() {
        let mut framer = Framer::new();
        assert!(feed(&mut framer, b"\r\n\r\n").is_empty());
        assert!(!framer.is_mid_message());
        assert!(feed(&mut framer, b"OPTIONS sip:a SIP/2.0\r\n").is_empty());
        assert!(framer.is_mid_message());
    }

    #[test]
    fn a_bad_content_length_is_unframeable() {
        let mut framer = Framer::new();
        let frames = feed(
            &mut framer,
            b"BYE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n",
        );
        assert!(matches!(
            frames.as_slice(),
            [Frame::Unframeable(_, ParseError::Malformed(_))]
        ));
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn the_buffer_never_holds_more_than_one_largest_message() {
        let mut framer = Framer::new();
        let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
        let mut frames = Vec::new();
        while frames.is_empty() {
            let room = framer.room();
            assert!(room > 0, "reading stopped before the limit was seen");
            let take = line.len().min(room);
            frames = feed(&mut framer, &line[..take]);
            assert!(framer.buffered() <= MAX_MESSAGE_SIZE + 1);
        }
        assert!(matches!(
            frames.as_slice(),
            [Frame::Unframeable(bytes, ParseError::TooLarge)] if bytes.len() == MAX_MESSAGE_SIZE + 1
        ));
    }

    #[test]
    fn a_content_length_beyond_the_limit_is_refused_before_the_body() {
        let mut framer = Framer::new();
        let frames = feed(&mut framer, b"INVITE sip:a SIP/2.0\r\nl: 70000\r\n\r\n");
        assert!(matches!(
            frames.as_slice(),
            [Frame::Unframeable(_, ParseError::TooLarge)]
        ));
    }

    proptest! {
        /// Fed in arbitrary pieces, the framer finds the same first message
        /// as the one-shot `stream_frame_len`.
        #[test]
        fn agrees_with_stream_frame_len(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b':'), Just(b'l'), Just(b'0'), Just(b'4'), any::<u8>()],
                0..300,
            ),
            step in 1usize..40,
        ) {
            let mut framer = Framer::new();
            let mut first = None;
            for chunk in bytes.chunks(step) {
                if let Some(frame) = feed(&mut framer, chunk).into_iter().next() {
                    first = Some(frame);
                    break;
                }
            }
            let skipped = bytes.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            let expected = stream_frame_len(&bytes[skipped..]);
            match (first, expected) {
                (Some(Frame::Message(m)), Ok(Some(len))) => prop_assert_eq!(&m[..], &bytes[skipped..skipped + len]),
                (Some(Frame::Unframeable(..)), Err(_)) => {}
                (None, Ok(None)) => {}
                (got, want) => prop_assert!(false, "framer {:?}, stream_frame_len {:?}", got, want),
            }
        }
    }
}
