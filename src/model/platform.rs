//! Which OCI platform a build of berth runs as, from its Rust target triple.
//!
//! The architecture alone does not say enough on 32-bit ARM: an ARMv6 board (Pi 1,
//! Zero W) cannot run ARMv7 code, so images and nodes carry a variant (`v6`, `v7`). The
//! variant follows the triple the binary was compiled for, since that is the oldest core
//! the binary itself is sure to run on.

use crate::model::Platform;

/// Node label carrying the platform variant of a board (`v7`, `v6`, `v8`), beside
/// `kubernetes.io/arch`. Kubernetes has no such label; the scheduler reads it to know
/// which 32-bit ARM images a node can run.
pub const ARCH_VARIANT_LABEL: &str = "berth.dev/arch-variant";

/// The OCI platform of code built for a Rust target triple:
/// `aarch64-unknown-linux-gnu` → `linux/arm64/v8`, `armv7-unknown-linux-gnueabihf` →
/// `linux/arm/v7`, `arm-unknown-linux-gnueabihf` (ARMv6 with VFPv2) → `linux/arm/v6`,
/// `x86_64-…` → `linux/amd64`. An unknown architecture keeps its Rust name and no
/// variant.
pub fn target_platform(triple: &str) -> Platform {
    let arch = triple.split('-').next().unwrap_or("");
    let (architecture, variant) = match arch {
        "aarch64" => ("arm64", Some("v8")),
        "x86_64" => ("amd64", None),
        "i386" | "i586" | "i686" => ("386", None),
        "riscv64gc" => ("riscv64", None),
        // Rust's plain `arm-` triples are ARMv6 (the Raspberry Pi 1 and Zero baseline).
        "arm" | "armv6" => ("arm", Some("v6")),
        "armv5te" => ("arm", Some("v5")),
        other if other.starts_with("armv7") || other.starts_with("thumbv7") => ("arm", Some("v7")),
        other => (other, None),
    };
    Platform {
        os: "linux".to_string(),
        architecture: architecture.to_string(),
        variant: variant.map(str::to_string),
    }
}

/// The platform of this build of berth (set by build.rs from the target triple).
pub fn build_platform() -> Platform {
    target_platform(crate::TARGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: &Platform) -> String {
        match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        }
    }

    #[test]
    fn triples_map_to_oci_platforms() {
        for (triple, platform) in [
            ("aarch64-unknown-linux-gnu", "linux/arm64/v8"),
            ("armv7-unknown-linux-gnueabihf", "linux/arm/v7"),
            ("thumbv7neon-unknown-linux-gnueabihf", "linux/arm/v7"),
            ("arm-unknown-linux-gnueabihf", "linux/arm/v6"),
            ("armv5te-unknown-linux-gnueabi", "linux/arm/v5"),
            ("x86_64-unknown-linux-gnu", "linux/amd64"),
            ("i686-unknown-linux-gnu", "linux/386"),
            ("riscv64gc-unknown-linux-gnu", "linux/riscv64"),
            ("s390x-unknown-linux-gnu", "linux/s390x"),
        ] {
            assert_eq!(text(&target_platform(triple)), platform, "{triple}");
        }
    }

    #[test]
    fn this_build_matches_the_compiler_s_architecture() {
        let expected = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            "x86_64" => "amd64",
            "x86" => "386",
            other => other,
        };
        assert_eq!(build_platform().architecture, expected);
    }
}
