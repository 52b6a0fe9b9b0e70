//! A one-way pipe between two threads, for bytes one side writes and the other reads as they
//! come: a run compresses its delta file on one core while the other decompresses and applies
//! it to check it, so the check costs no wall time of its own; a version rebuilt from a delta
//! is hashed on the other core as it is written.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// The chunk size of the pipe that carries a delta file to its checker.
pub const CHUNK: usize = 1 << 16;

/// A pipe holding at most `chunks` chunks of `chunk` bytes in flight: the writer waits when
/// the reader is that far behind, and each chunk costs the reader a wake-up. Dropping the
/// writer is the end of the stream; dropping the reader makes every later write fail.
pub fn pipe(chunks: usize, chunk: usize) -> (Writer, Reader) {
    let (tx, rx) = sync_channel(chunks);
    (
        Writer {
            tx,
            buf: Vec::with_capacity(chunk),
            chunk,
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
    /// Bytes gathered before they are handed on.
    chunk: usize,
}

impl Write for Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.chunk {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
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

/// Keeps what is written, and hands it on to a pipe while its reader reads, a chunk of the
/// kept bytes at a time (not write by write: an apply writes commas and names one by one, and
/// copying each into the pipe took a tenth of `verify`). A reader that stopped early (a
/// checker whose error is the one reported, or one that cannot read in one pass and checks
/// the whole file afterwards) does not stop the bytes being kept whole.
pub struct Tee {
    kept: Vec<u8>,
    /// How much of `kept` the pipe has had.
    sent: usize,
    pipe: Option<Writer>,
}

impl Tee {
    /// Writes after what `kept` holds already (the reader gets only what is written).
    pub fn new(kept: Vec<u8>, pipe: Option<Writer>) -> Self {
        let sent = kept.len();
        Tee { kept, sent, pipe }
    }

    /// Hands on what the pipe has not had.
    fn send(&mut self) {
        if let Some(pipe) = &mut self.pipe {
            if pipe.write_all(&self.kept[self.sent..]).is_err() {
                self.pipe = None;
            }
        }
        self.sent = self.kept.len();
    }

    /// Starts over: what was kept is dropped, and the reader, which had part of the stream, is
    /// cut off (it sees the end there).
    pub fn restart(&mut self) {
        self.kept.clear();
        self.sent = 0;
        self.pipe = None;
    }

    /// What was kept, and whether the reader had every byte of it; the reader sees the end.
    pub fn finish(mut self) -> (Vec<u8>, bool) {
        self.send();
        let whole = self.pipe.take().is_some_and(|mut p| p.flush().is_ok());
        (std::mem::take(&mut self.kept), whole)
    }
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.kept.extend_from_slice(data);
        if self
            .pipe
            .as_ref()
            .is_some_and(|p| self.kept.len() - self.sent >= p.chunk)
        {
            self.send();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_in_order_until_the_writer_is_dropped() {
        let (mut w, mut r) = pipe(2, CHUNK);
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
        let (mut w, r) = pipe(1, CHUNK);
        drop(r);
        let err = (0..4)
            .try_for_each(|_| w.write_all(&[0; CHUNK]))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_tee_keeps_everything_and_says_whether_its_reader_had_it_all() {
        let read_all =
            |r: Reader| std::thread::spawn(move || r.into_chunks().flatten().collect::<Vec<u8>>());
        let (w, r) = pipe(2, 100);
        let reader = read_all(r);
        let mut tee = Tee::new(b"kept:".to_vec(), Some(w));
        tee.write_all(&[7; 1000]).unwrap();
        let (kept, whole) = tee.finish();
        assert_eq!((kept.len(), whole), (1005, true));
        assert_eq!(reader.join().unwrap(), vec![7; 1000]);

        // A restart drops what was kept and cuts the reader off where it was.
        let (w, r) = pipe(2, 100);
        let reader = read_all(r);
        let mut tee = Tee::new(Vec::new(), Some(w));
        tee.write_all(&[1; 150]).unwrap();
        tee.restart();
        tee.write_all(&[2; 30]).unwrap();
        assert_eq!(tee.finish(), (vec![2; 30], false));
        assert_eq!(reader.join().unwrap(), vec![1; 150]);
    }
}
