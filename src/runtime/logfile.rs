//! The container log file written by the shim: whole lines from stdout and stderr, capped in
//! size and rotated to `<log>.1` … `<log>.<max_files-1>`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A partial line longer than this is written out without waiting for its newline, so a
/// program that never prints one cannot make the shim buffer without bound.
const MAX_PENDING_LINE: usize = 16 * 1024;

/// Appends to a size-capped log file with rotation.
pub(crate) struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    size: u64,
}

impl RotatingLog {
    pub(crate) fn open(path: &Path, max_bytes: u64, max_files: u32) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            max_files: max_files.max(1),
            file,
            size,
        })
    }

    /// Writes one chunk (normally a whole line); rotates first if it would not fit.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + chunk.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        Ok(())
    }

    fn rotated_path(&self, index: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files > 1 {
            // Shift .1 → .2 … and drop the oldest; then the live file becomes .1.
            for index in (1..self.max_files - 1).rev() {
                let from = self.rotated_path(index);
                if from.exists() {
                    fs::rename(&from, self.rotated_path(index + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated_path(1))?;
        } else {
            fs::remove_file(&self.path)?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Cuts a byte stream into lines so the lines of stdout and stderr never interleave
/// mid-line in the shared log file.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit` with every complete line (newline included), and with the
    /// pending bytes when they grew too long.
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        mut emit: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + offset + 1;
            emit(&self.pending[start..end])?;
            start = end;
        }
        self.pending.drain(..start);
        if self.pending.len() >= MAX_PENDING_LINE {
            emit(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Emits what is left at end of stream, terminated with a newline.
    pub(crate) fn finish(
        &mut self,
        mut emit: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            emit(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_emits_whole_lines_and_the_rest_at_the_end() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut splitter = LineSplitter::default();
        let mut collect = |l: &[u8]| {
            lines.push(l.to_vec());
            Ok(())
        };
        splitter.feed(b"a\nb", &mut collect).unwrap();
        splitter.feed(b"c\n\nd", &mut collect).unwrap();
        splitter.finish(&mut collect).unwrap();
        assert_eq!(
            lines,
            vec![
                b"a\n".to_vec(),
                b"bc\n".to_vec(),
                b"\n".to_vec(),
                b"d\n".to_vec()
            ]
        );
    }

    #[test]
    fn splitter_flushes_overlong_lines() {
        let mut count = 0;
        let mut splitter = LineSplitter::default();
        splitter
            .feed(&vec![b'x'; MAX_PENDING_LINE + 5], |_| {
                count += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn log_rotates_and_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/c.log");
        let mut log = RotatingLog::open(&path, 10, 3).unwrap();
        for line in ["0000000\n", "1111111\n", "2222222\n", "3333333\n"] {
            log.write(line.as_bytes()).unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "3333333\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("sub/c.log.1")).unwrap(),
            "2222222\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("sub/c.log.2")).unwrap(),
            "1111111\n"
        );
        assert!(!dir.path().join("sub/c.log.3").exists());
    }

    #[test]
    fn single_file_log_is_truncated_on_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = RotatingLog::open(&path, 4, 1).unwrap();
        log.write(b"abc\n").unwrap();
        log.write(b"de\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "de\n");
        assert!(!dir.path().join("c.log.1").exists());
    }

    #[test]
    fn reopening_continues_counting_the_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        RotatingLog::open(&path, 8, 2)
            .unwrap()
            .write(b"12345\n")
            .unwrap();
        RotatingLog::open(&path, 8, 2)
            .unwrap()
            .write(b"678\n")
            .unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("c.log.1")).unwrap(),
            "12345\n"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "678\n");
    }
}
