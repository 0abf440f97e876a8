//! Reading a stream on a thread of its own, a few pieces ahead of its consumer: a layer's
//! decompression and diff id hashing then run beside the writing of its files.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per piece handed over (below glibc's mmap threshold, so pieces are cheap).
const PIECE: usize = 64 * 1024;
/// Pieces that may wait for the consumer. With the one each side holds, at most
/// `AHEAD + 2` pieces (640 KiB) exist at a time, whatever the size of the stream.
const AHEAD: usize = 8;

/// Runs `consume` on a reader of `source`, while another thread reads `source` ahead.
/// When `consume` succeeds, `source` is read to its end even if `consume` stopped early
/// (the diff id covers the whole stream) and handed to `finish`; when it fails, reading
/// stops. Returns both results.
pub(crate) fn read_ahead<S, C, F, T, E, U>(
    source: S,
    consume: C,
    finish: F,
) -> (Result<T, E>, io::Result<U>)
where
    S: Read + Send,
    C: FnOnce(&mut dyn Read) -> Result<T, E>,
    F: FnOnce(S) -> io::Result<U> + Send,
    U: Send,
{
    let abandoned = &AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(AHEAD);
        // Used pieces go back to the producer, so the same few buffers carry the stream.
        let (recycle, spare) = sync_channel::<Vec<u8>>(AHEAD + 1);
        let producer = scope.spawn(move || {
            let mut source = source;
            let mut consumer_gone = false;
            loop {
                if abandoned.load(Ordering::Relaxed) {
                    return Err(io::Error::other("the consumer failed"));
                }
                let mut piece = spare.try_recv().unwrap_or_default();
                piece.resize(PIECE, 0);
                match source.read(&mut piece) {
                    Ok(0) => break,
                    Ok(n) => {
                        piece.truncate(n);
                        // Once the consumer is done, keep reading for `finish` only.
                        consumer_gone = consumer_gone || tx.send(Ok(piece)).is_err();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                }
            }
            drop(tx);
            finish(source)
        });
        let mut reader = Pieces {
            rx: Some(rx),
            recycle,
            piece: Vec::new(),
            pos: 0,
        };
        let consumed = consume(&mut reader);
        abandoned.store(consumed.is_err(), Ordering::Relaxed);
        // Lets the producer go on (or stop) without waiting for us.
        drop(reader);
        let finished = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")));
        (consumed, finished)
    })
}

/// The consumer's side: the pieces in order, then end of stream.
struct Pieces {
    rx: Option<Receiver<io::Result<Vec<u8>>>>,
    recycle: SyncSender<Vec<u8>>,
    piece: Vec<u8>,
    pos: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.piece.len() {
            let Some(rx) = &self.rx else {
                return Ok(0);
            };
            match rx.recv() {
                Ok(Ok(piece)) => {
                    let used = std::mem::replace(&mut self.piece, piece);
                    let _ = self.recycle.try_send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The producer finished: end of stream.
                Err(_) => {
                    self.rx = None;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.piece.len() - self.pos);
        buf[..n].copy_from_slice(&self.piece[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_sees_everything_and_the_source_is_read_to_its_end() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let (all, rest) = read_ahead(
            io::Cursor::new(data.clone()),
            |r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map(|_| out)
            },
            |cursor| Ok(cursor.position()),
        );
        assert_eq!(all.unwrap(), data);
        assert_eq!(rest.unwrap(), data.len() as u64);

        // A consumer that stops early does not stop the source.
        let (first, rest) = read_ahead(
            io::Cursor::new(data.clone()),
            |r| {
                let mut head = [0u8; 10];
                r.read_exact(&mut head).map(|()| head)
            },
            |cursor| Ok(cursor.position()),
        );
        assert_eq!(first.unwrap()[..], data[..10]);
        assert_eq!(rest.unwrap(), data.len() as u64);
    }

    #[test]
    fn a_failing_consumer_stops_the_reading() {
        let total = 64 << 20;
        let (consumed, finished) = read_ahead(
            io::repeat(1).take(total),
            |r| {
                let mut head = [0u8; 10];
                r.read_exact(&mut head).map_err(|e| e.to_string())?;
                Err::<(), String>("bad entry".to_string())
            },
            |rest| Ok(rest.limit()),
        );
        assert_eq!(consumed.unwrap_err(), "bad entry");
        assert!(finished.is_err(), "the rest of the source is not read");
    }

    #[test]
    fn a_read_error_reaches_the_consumer() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("broken"))
            }
        }
        let (consumed, finished) = read_ahead(
            Failing,
            |r| r.read(&mut [0u8; 4]).map_err(|e| e.to_string()),
            |_| Ok(()),
        );
        assert_eq!(consumed.unwrap_err(), "broken");
        assert!(finished.is_err());
    }
}
