//! Layer files that are read while they are being downloaded, so a pull can unpack a layer
//! as its bytes arrive instead of after the whole blob is on disk.
//!
//! The download writes the blob to its staging file and reports how long the file is; a
//! [`FeedReader`] reads that file behind it (from the page cache) and waits when it has
//! caught up. Nothing is buffered in memory, and the download never waits for the reader.
//! A download that starts over or fails breaks the feed: its readers fail, and the pull
//! unpacks from the finished files instead. Readers see unverified bytes; the pull checks
//! the blob digest and the diff id before anything is published.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A reader behind the download wakes up when this much more is readable (or the
/// download ended): fewer wake-ups, and the unpacker works on bigger pieces.
const WAKE_STEP: u64 = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// The download has not written anything yet (it may still be queued).
    Waiting,
    /// The file holds `written` bytes and more may come.
    Growing,
    /// The download finished and was verified.
    Complete,
    /// The download failed or started over: the bytes read so far may be wrong.
    Broken,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    written: u64,
    /// `written` when the readers were last woken.
    announced: u64,
}

/// One layer being downloaded to `<path>.partial`, renamed to `path` when complete.
#[derive(Debug)]
pub(crate) struct Feed {
    path: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

impl Feed {
    pub fn new(path: PathBuf) -> Feed {
        Feed {
            path,
            state: Mutex::new(State {
                phase: Phase::Waiting,
                written: 0,
                announced: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields, valid whatever a panicking holder did.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The download's file now holds `written` bytes. Fewer than before means it started
    /// over, which breaks the feed.
    pub fn grew(&self, written: u64) {
        let mut state = self.lock();
        if state.phase == Phase::Broken || state.phase == Phase::Complete {
            return;
        }
        if written < state.written {
            state.phase = Phase::Broken;
            self.changed.notify_all();
            return;
        }
        state.phase = Phase::Growing;
        state.written = written;
        if written - state.announced >= WAKE_STEP {
            state.announced = written;
            self.changed.notify_all();
        }
    }

    /// The download ended: verified and renamed into place (`ok`), or failed.
    pub fn finish(&self, ok: bool) {
        let mut state = self.lock();
        if state.phase != Phase::Broken {
            state.phase = if ok { Phase::Complete } else { Phase::Broken };
        }
        self.changed.notify_all();
    }

    /// Breaks the feed unless it completed; readers waiting on it wake up and fail.
    pub fn close(&self) {
        let mut state = self.lock();
        if state.phase != Phase::Complete {
            state.phase = Phase::Broken;
        }
        self.changed.notify_all();
    }

    pub fn reader(&self) -> FeedReader<'_> {
        FeedReader {
            feed: self,
            file: None,
            pos: 0,
        }
    }
}

/// Reads a feed's file from the start, waiting for the download when it catches up.
pub(crate) struct FeedReader<'a> {
    feed: &'a Feed,
    file: Option<File>,
    pos: u64,
}

fn broken() -> io::Error {
    io::Error::other("the download started over or failed")
}

impl FeedReader<'_> {
    /// The staging file: `.partial` while downloading, its final name once complete (the
    /// rename may happen between our look at the phase and the open).
    fn open(&self) -> io::Result<File> {
        match File::open(self.feed.path.with_extension("partial")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => File::open(&self.feed.path),
            other => other,
        }
    }
}

impl Read for FeedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = {
            let mut state = self.feed.lock();
            loop {
                match state.phase {
                    Phase::Broken => return Err(broken()),
                    Phase::Growing if state.written >= self.pos + WAKE_STEP => {
                        break state.written - self.pos
                    }
                    Phase::Complete if state.written > self.pos => break state.written - self.pos,
                    Phase::Complete => return Ok(0),
                    Phase::Waiting | Phase::Growing => {
                        state = self
                            .feed
                            .changed
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                }
            }
        };
        if self.file.is_none() {
            self.file = Some(self.open()?);
        }
        let Some(file) = &self.file else {
            return Err(broken());
        };
        let len = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = file.read_at(&mut buf[..len], self.pos)?;
        // A restart is announced before the file is truncated and rewritten, so a read
        // that might have seen the new bytes ends after the feed broke.
        if self.feed.lock().phase == Phase::Broken {
            return Err(broken());
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the layer file is shorter than the download reported",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reader_follows_a_growing_file_and_sees_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let feed = Feed::new(path.clone());
        let expected: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let read = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut out = Vec::new();
                feed.reader().read_to_end(&mut out).map(|_| out)
            });
            let partial = path.with_extension("partial");
            let mut file = File::create(&partial).unwrap();
            let mut written = 0;
            for chunk in expected.chunks(7_000) {
                file.write_all(chunk).unwrap();
                written += chunk.len() as u64;
                feed.grew(written);
            }
            std::fs::rename(&partial, &path).unwrap();
            feed.finish(true);
            reader.join().unwrap()
        });
        assert_eq!(read.unwrap(), expected);
    }

    #[test]
    fn a_restart_or_failure_breaks_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let len = WAKE_STEP as usize + 10;
        std::fs::write(path.with_extension("partial"), vec![7u8; len]).unwrap();
        let feed = Feed::new(path.clone());
        feed.grew(len as u64);
        let mut reader = feed.reader();
        let mut buf = [0u8; 4];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        feed.grew(0);
        assert!(reader.read(&mut buf).is_err());
        // A later success does not repair a broken feed.
        feed.finish(true);
        assert!(feed.reader().read(&mut buf).is_err());

        let waiting = Feed::new(path);
        std::thread::scope(|s| {
            let reader = s.spawn(|| waiting.reader().read(&mut [0u8; 4]).is_err());
            waiting.close();
            assert!(reader.join().unwrap(), "a closed feed wakes its reader");
        });
    }
}
