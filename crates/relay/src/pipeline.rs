//! A writer that hands its bytes to a second thread.
//!
//! Sealing a large upload is a pipeline: read the spool back and decrypt it,
//! encrypt with age, then hash the ciphertext and write it to the store.
//! On one thread those steps take turns; copying a GiB into the page cache
//! and hashing it is about as much work as the decryption and encryption
//! together (perf; `docs/decisions.md`, "Large uploads"). With
//! [`ThreadedWriter`] the store's side (hash
//! and write) runs on its own thread while the sealing thread encrypts the
//! next buffers, so a large upload is acknowledged sooner.
//!
//! Only ciphertext passes through it. Memory is bounded: at most
//! [`BUFFERS`] buffers of [`BUFFER`] bytes exist per writer, recycled
//! between the two threads.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Bytes per hand-over.
const BUFFER: usize = 256 * 1024;
/// Buffers per writer: one being filled, the rest queued or being written.
const BUFFERS: usize = 4;

/// Writes to `W` on a thread of its own.
pub(crate) struct ThreadedWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    /// Full buffers to the writing thread.
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Written buffers back from it.
    empty: mpsc::Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
    /// Buffers made so far (at most [`BUFFERS`]).
    made: usize,
}

impl<W: Write + Send + 'static> ThreadedWriter<W> {
    /// Starts the writing thread for `inner`.
    pub(crate) fn new(mut inner: W) -> io::Result<Self> {
        let (full, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (empty_tx, empty) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let thread = std::thread::Builder::new()
            .name("relay-store-writer".into())
            .spawn(move || {
                for mut buf in full_rx {
                    inner.write_all(&buf)?;
                    buf.clear();
                    // The other side may be gone (finished or dropped).
                    let _ = empty_tx.send(buf);
                }
                inner.flush()?;
                Ok(inner)
            })?;
        Ok(Self {
            buf: Vec::with_capacity(BUFFER),
            full: Some(full),
            empty,
            thread: Some(thread),
            made: 1,
        })
    }

    /// Ends the writing thread and returns its result: its error if it
    /// failed (with the operating system's error kind, so a full disk is
    /// still recognised as one), else `inner`.
    fn join(&mut self) -> io::Result<W> {
        self.full.take();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the store's writer thread panicked"))),
            None => Err(io::Error::other("the store's writer already ended")),
        }
    }

    /// Hands the current buffer over and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        let next = if self.made < BUFFERS {
            self.made += 1;
            Vec::with_capacity(BUFFER)
        } else {
            match self.empty.recv() {
                Ok(buf) => buf,
                Err(_) => return Err(self.failure()),
            }
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.full.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.failure()),
        }
    }

    /// Why the writing thread stopped early.
    fn failure(&mut self) -> io::Error {
        match self.join() {
            Err(e) => e,
            Ok(_) => io::Error::other("the store's writer stopped early"),
        }
    }

    /// Writes what is buffered, waits for the thread, and returns `inner`.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.hand_over()?;
        }
        self.join()
    }
}

impl<W: Write + Send + 'static> Write for ThreadedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == BUFFER {
            self.hand_over()?;
        }
        let n = data.len().min(BUFFER - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Buffers stay until full or [`ThreadedWriter::finish`]: a flush here
    /// would only make the hand-overs smaller.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for ThreadedWriter<W> {
    fn drop(&mut self) {
        // Unfinished (an error elsewhere): the thread writes what it has
        // queued and ends; `inner` is dropped there.
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn everything_arrives_in_order() {
        let data: Vec<u8> = (0..3 * BUFFER * BUFFERS + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        for piece in [1, 999, BUFFER, 5 * BUFFER] {
            let mut w = ThreadedWriter::new(Vec::new()).unwrap();
            let pieces = if piece == 1 {
                &data[..70_000]
            } else {
                &data[..]
            };
            for part in pieces.chunks(piece) {
                w.write_all(part).unwrap();
            }
            assert_eq!(w.finish().unwrap(), pieces, "{piece}");
        }
        assert!(
            ThreadedWriter::new(Vec::new())
                .unwrap()
                .finish()
                .unwrap()
                .is_empty()
        );
    }

    /// Fails with `kind` once more than `room` bytes were written.
    #[derive(Debug)]
    struct Full {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Full {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if data.len() > self.room {
                return Err(io::Error::new(self.kind, "no room"));
            }
            self.room -= data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_threads_error_comes_back_with_its_kind() {
        let kind = io::ErrorKind::StorageFull;
        // Failing early: the error reaches a later write.
        let mut w = ThreadedWriter::new(Full { room: 10, kind }).unwrap();
        let e = (0..64)
            .find_map(|_| w.write_all(&[0; BUFFER]).err())
            .unwrap();
        assert_eq!(e.kind(), kind);
        // Failing on the last bytes: the error comes from `finish`.
        let mut w = ThreadedWriter::new(Full { room: BUFFER, kind }).unwrap();
        w.write_all(&[0; BUFFER + 1]).unwrap();
        assert_eq!(w.finish().unwrap_err().kind(), kind);
    }
}
