//! A one-way pipe between two threads, for bytes one side writes and the other reads as they
//! come: a run compresses its delta file on one core while the other decompresses and applies
//! it to check it, so the check costs no wall time of its own.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes a [`Writer`] gathers before it hands them on.
const CHUNK: usize = 1 << 16;

/// A pipe holding at most `chunks` chunks of 64 KiB in flight: the writer waits when the
/// reader is that far behind. Dropping the writer is the end of the stream; dropping the
/// reader makes every later write fail.
pub fn pipe(chunks: usize) -> (Writer, Reader) {
    let (tx, rx) = sync_channel(chunks);
    (
        Writer {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        Reader {
            rx,
            chunk: Vec::new(),
            at: 0,
        },
    )
}

pub struct Writer {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader has stopped"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // What is left goes before the end; a reader that stopped has no use for it.
        let _ = self.flush();
    }
}

pub struct Reader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Reader {
    /// The chunks as they come, until the writer is dropped (after what was read already):
    /// for a reader that takes whole chunks, without copying them out.
    pub fn into_chunks(self) -> impl Iterator<Item = Vec<u8>> {
        let Reader { rx, chunk, at } = self;
        let rest = (at < chunk.len()).then(|| chunk[at..].to_vec());
        rest.into_iter().chain(rx)
    }
}

impl Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                // The writer is gone: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_in_order_until_the_writer_is_dropped() {
        let (mut w, mut r) = pipe(2);
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        });
        for piece in data.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        drop(w);
        assert_eq!(reader.join().unwrap(), expected);
    }

    #[test]
    fn a_write_fails_once_the_reader_is_gone() {
        let (mut w, r) = pipe(1);
        drop(r);
        let err = (0..4)
            .try_for_each(|_| w.write_all(&[0; CHUNK]))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
