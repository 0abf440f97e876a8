//! A small mutation fuzzer for unit tests, on stable Rust and without new dependencies.
//!
//! `cargo fuzz` needs a nightly toolchain, which CI machines do not have. The parsers that
//! read what peers send (manifests, HTTP heads, layer tarballs, registry documents) are
//! instead fed mutations of realistic seeds from a seeded xorshift generator: the same
//! inputs on every run, so a failure reproduces. `scripts/test` runs a few thousand
//! inputs per target (seconds); `scripts/fuzz` sets `BERTH_FUZZ_ITERATIONS` and
//! `BERTH_FUZZ_SEED` for long runs. A panicking input is written to
//! `target/fuzz-crashes/` and becomes a regression seed once the bug is fixed.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Byte values that tend to matter to parsers.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b' ', b':', b'/', b'.', b'-', b'"', b'\\', b'{', b'}',
    b'[', b']', b'0', b'9', b'%', b'#', b'&', b'*', b'!', b'|', b'>',
];

/// xorshift64*: small, fast, and good enough to pick mutations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// How many inputs each target gets: `BERTH_FUZZ_ITERATIONS`, or `default`.
pub(crate) fn iterations(default: usize) -> usize {
    std::env::var("BERTH_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("BERTH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_b3a7)
}

/// One to four random edits of `input`: bit flips, interesting bytes, dictionary words,
/// deletions, duplications, truncation, or a splice with another seed.
pub(crate) fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if !dict.is_empty() => {
                let word = dict[rng.below(dict.len())].as_bytes();
                out.splice(at..at, word.iter().copied());
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
            5 => out.truncate(at),
            6 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = at.min(out.len());
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// Feeds `check` the seeds, then `iterations(default)` mutations of them. A panic is
/// reported with the input (saved under `target/fuzz-crashes/<name>-<n>`) and re-raised.
pub(crate) fn run(
    name: &str,
    seeds: &[Vec<u8>],
    dict: &[&str],
    default: usize,
    mut check: impl FnMut(&[u8]),
) {
    let mut rng = Rng::new(
        seed()
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    let total = iterations(default);
    let mut current = seeds.first().cloned().unwrap_or_default();
    for n in 0..seeds.len() + total {
        let input = match seeds.get(n) {
            Some(seed) => seed.clone(),
            None => {
                // Mostly build on the last input, sometimes start over from a seed, so
                // that mutations both pile up and stay close to valid documents.
                if rng.below(4) == 0 && !seeds.is_empty() {
                    current = seeds[rng.below(seeds.len())].clone();
                }
                current = mutate(&mut rng, &current, seeds, dict);
                if current.len() > 1 << 20 {
                    current.truncate(1 << 20);
                }
                current.clone()
            }
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            let path = dir.join(format!("{name}-{n}"));
            let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &input));
            eprintln!(
                "fuzz target {name}: input {n} panicked ({}): {:?}",
                if saved.is_ok() {
                    path.display().to_string()
                } else {
                    "not saved".into()
                },
                String::from_utf8_lossy(&input)
            );
            std::panic::resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_change_the_input() {
        let seeds = vec![b"apiVersion: v1".to_vec()];
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let first: Vec<Vec<u8>> = (0..50)
            .map(|_| mutate(&mut a, &seeds[0], &seeds, &["kind"]))
            .collect();
        let second: Vec<Vec<u8>> = (0..50)
            .map(|_| mutate(&mut b, &seeds[0], &seeds, &["kind"]))
            .collect();
        assert_eq!(first, second);
        assert!(first.iter().any(|m| *m != seeds[0]));
    }

    #[test]
    fn a_panicking_input_is_reported_and_raised() {
        let result = catch_unwind(|| {
            run(
                "self-test",
                &[b"ok".to_vec(), b"boom".to_vec()],
                &[],
                0,
                |input| {
                    assert_ne!(input, b"boom");
                },
            )
        });
        assert!(result.is_err());
        let saved = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/fuzz-crashes/self-test-1");
        assert_eq!(std::fs::read(&saved).unwrap(), b"boom");
        std::fs::remove_file(saved).unwrap();
    }
}
