//! Where `cargo build --release` put the berth binary: under `CARGO_TARGET_DIR` when it
//! is set (as cargo reads it, relative to the package root), else under `target/`. A
//! bench that looked only in `target/` measured a stale binary once.

use std::path::{Path, PathBuf};

pub fn release_berth() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    target.join("release/berth")
}
