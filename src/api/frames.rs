//! Framing of `exec` responses: stdout, stderr and the exit code on one HTTP response.
//!
//! Frame: one byte channel (1 stdout, 2 stderr, 3 exit code), four bytes big-endian
//! length, then the data; the exit-code frame carries a big-endian i32.

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;

pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5);
    out.push(channel);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Splits complete frames off the front of `buffer`.
pub fn take_frames(buffer: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        if buffer.len() < 5 {
            return frames;
        }
        let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
        if buffer.len() < 5 + len {
            return frames;
        }
        let data = buffer[5..5 + len].to_vec();
        frames.push((buffer[0], data));
        buffer.drain(..5 + len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_chunk_boundaries() {
        let mut wire = frame(STDOUT, b"hello");
        wire.extend(frame(STDERR, b""));
        wire.extend(frame(EXIT, &3i32.to_be_bytes()));
        let mut buffer = Vec::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            buffer.extend_from_slice(chunk);
            got.extend(take_frames(&mut buffer));
        }
        assert!(buffer.is_empty());
        assert_eq!(got[0], (STDOUT, b"hello".to_vec()));
        assert_eq!(got[1], (STDERR, Vec::new()));
        assert_eq!(got[2], (EXIT, 3i32.to_be_bytes().to_vec()));
    }
}
