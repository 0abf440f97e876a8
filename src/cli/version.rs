//! `berth version`: version, target triple and git revision, fixed at build time.

pub fn run() -> anyhow::Result<()> {
    println!(
        "berth {} ({}, git {})",
        crate::VERSION,
        crate::TARGET,
        crate::GIT_REVISION
    );
    Ok(())
}
