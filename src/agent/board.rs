//! The board profile given with `--board`: loaded at start and checked against the
//! machine the agent runs on, so that a profile flashed onto the wrong board (or a board
//! whose firmware hides memory) is noticed in the log instead of misleading the scheduler.
//!
//! Disagreements are warnings, not errors: the agent still runs pods on a board whose
//! profile is off. A profile that does not parse is an error naming the field.

use std::path::{Path, PathBuf};

use crate::model::{build_platform, parse_board_profile, BoardProfile, BoardProfileError};

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("cannot read the board profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid board profile {path}: {source}")]
    Invalid {
        path: PathBuf,
        source: BoardProfileError,
    },
}

/// What the agent can tell about the machine it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineFacts {
    /// OCI name of the architecture the agent runs as (`arm64`, `arm`, `amd64`).
    pub architecture: String,
    /// OCI variant the agent binary was built for (`v8`, `v7`, `v6`); none for amd64.
    pub variant: Option<String>,
    /// CPUs the kernel lists; none when they could not be counted.
    pub cpus: Option<u32>,
    /// `MemTotal` of `/proc/meminfo` in bytes; none when it could not be read.
    pub memory_bytes: Option<u64>,
}

/// The kernel sees less memory than is printed on the box: the firmware, the GPU and the
/// kernel itself keep some (a 512 MB Pi Zero 2 W shows about 430 MiB with the default GPU
/// split). Less than this share of the profile's memory is worth a warning.
const MIN_MEMORY_SHARE_PERCENT: u64 = 75;
/// More memory than the profile says by this much means the profile undersells the board.
const MAX_MEMORY_SHARE_PERCENT: u64 = 105;

/// Reads and validates a board profile file.
pub fn load(path: &Path) -> Result<BoardProfile, BoardError> {
    let text = std::fs::read_to_string(path).map_err(|source| BoardError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_board_profile(&text).map_err(|source| BoardError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a profile and compares it with this machine: the profile and the warnings.
pub fn load_and_check(path: &Path) -> Result<(BoardProfile, Vec<String>), BoardError> {
    let profile = load(path)?;
    let warnings = compare(&profile, &read_machine());
    Ok((profile, warnings))
}

/// Looks at the running machine: `/proc/cpuinfo`, `/proc/meminfo`, and the platform
/// this binary was built for (whose images it will run). The binary's target, not
/// `uname -m`, decides: 32-bit Raspberry Pi OS often runs a 64-bit kernel.
pub fn read_machine() -> MachineFacts {
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| count_cpuinfo_processors(&text))
        .or_else(|| {
            // available_parallelism can be lowered by affinity or cgroup quotas, so it is
            // only the fallback.
            std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok())
        });
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| meminfo_total_bytes(&text));
    let platform = build_platform();
    MachineFacts {
        architecture: platform.architecture,
        variant: platform.variant,
        cpus,
        memory_bytes,
    }
}

/// Number of `processor : N` entries; none when there are none (some kernels and
/// emulators print no such lines).
pub fn count_cpuinfo_processors(cpuinfo: &str) -> Option<u32> {
    let count = cpuinfo
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(key, _)| key.trim() == "processor")
        })
        .count();
    u32::try_from(count).ok().filter(|n| *n > 0)
}

/// `MemTotal:  3884564 kB` → bytes.
pub fn meminfo_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Every way the machine disagrees with the profile, one sentence each.
pub fn compare(profile: &BoardProfile, machine: &MachineFacts) -> Vec<String> {
    let mut warnings = Vec::new();
    if profile.platform.architecture != machine.architecture {
        warnings.push(format!(
            "board profile {} says architecture {} but this agent runs as {}",
            profile.name, profile.platform.architecture, machine.architecture
        ));
    } else if let (Some(said), Some(built)) = (&profile.platform.variant, &machine.variant) {
        // An ARMv7 binary does not run on an ARMv6 board at all; an ARMv6 one runs on an
        // ARMv7 board but pulls v6 images where the scheduler expects v7.
        if said != built {
            warnings.push(format!(
                "board profile {} says platform variant {said} but this agent was built for {built}",
                profile.name
            ));
        }
    }
    if let Some(cpus) = machine.cpus {
        if cpus != profile.cores {
            warnings.push(format!(
                "board profile {} says {} CPU cores but this machine has {cpus}",
                profile.name, profile.cores
            ));
        }
    }
    if let Some(memory) = machine.memory_bytes {
        let stated = u128::from(profile.memory_bytes);
        let seen = u128::from(memory);
        let too_little = seen * 100 < stated * u128::from(MIN_MEMORY_SHARE_PERCENT);
        let too_much = seen * 100 > stated * u128::from(MAX_MEMORY_SHARE_PERCENT);
        if too_little || too_much {
            warnings.push(format!(
                "board profile {} says {} of memory but this machine has {}",
                profile.name,
                human_bytes(profile.memory_bytes),
                human_bytes(memory)
            ));
        }
    }
    warnings
}

/// `8 GiB`, `3.8 GiB`, `512 MiB`: enough precision to see the mismatch.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        let tenths = (bytes * 10 + GIB / 2) / GIB;
        if tenths % 10 == 0 {
            format!("{} GiB", tenths / 10)
        } else {
            format!("{}.{} GiB", tenths / 10, tenths % 10)
        }
    } else {
        format!("{} MiB", (bytes + MIB / 2) / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profiles shipped in board-configs/, read from the source tree.
    fn shipped_profiles() -> Vec<(PathBuf, BoardProfile)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board-configs");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let profile = load(&path).unwrap_or_else(|e| panic!("{e}"));
                found.push((path, profile));
            }
        }
        crate::support::sort::sort_by(&mut found, |a, b| a.0.cmp(&b.0));
        found
    }

    fn profile_named(name: &str) -> BoardProfile {
        shipped_profiles()
            .into_iter()
            .map(|(_, p)| p)
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no shipped profile {name}"))
    }

    #[test]
    fn every_shipped_profile_loads_and_is_consistent() {
        let profiles = shipped_profiles();
        let names: Vec<&str> = profiles.iter().map(|(_, p)| p.name.as_str()).collect();
        for expected in [
            "rpi-zero-2w",
            "rpi3b-plus",
            "rpi4b-2gb",
            "rpi4b-4gb",
            "rpi4b-8gb",
            "rpi5-4gb",
            "rpi5-8gb",
            "cm4",
            "generic-aarch64",
            "generic-x86_64",
            "rpi2b",
            "rpi3b-plus-armhf",
            "rpi4b-4gb-armhf",
        ] {
            assert!(names.contains(&expected), "missing {expected} in {names:?}");
        }
        for (path, profile) in &profiles {
            // The file is named after the profile, so `--board board-configs/NAME.yaml` works.
            assert_eq!(
                path.file_stem().unwrap().to_str(),
                Some(profile.name.as_str())
            );
            assert_eq!(
                profile.labels.get("kubernetes.io/arch"),
                Some(&profile.platform.architecture)
            );
            assert_eq!(
                profile.labels.get("kubernetes.io/os").map(String::as_str),
                Some("linux")
            );
            assert!(
                profile
                    .labels
                    .contains_key("node.kubernetes.io/instance-type"),
                "{}",
                profile.name
            );
            assert!(profile.allocatable_memory_bytes() > 0 && profile.allocatable_cpu_millis() > 0);
        }
    }

    #[test]
    fn a_matching_machine_gives_no_warning() {
        let profile = profile_named("rpi4b-4gb");
        // What a 4 GB Pi 4 running 64-bit Pi OS reports.
        let machine = MachineFacts {
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            cpus: Some(4),
            memory_bytes: Some(3_884_564 * 1024),
        };
        assert_eq!(compare(&profile, &machine), Vec::<String>::new());
        let zero = profile_named("rpi-zero-2w");
        let machine = MachineFacts {
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            cpus: Some(4),
            memory_bytes: Some(434_000 * 1024),
        };
        assert_eq!(compare(&zero, &machine), Vec::<String>::new());
    }

    #[test]
    fn a_profile_claiming_more_memory_warns() {
        let profile = profile_named("rpi4b-8gb");
        let machine = MachineFacts {
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            cpus: Some(4),
            memory_bytes: Some(3_884_564 * 1024),
        };
        assert_eq!(
            compare(&profile, &machine),
            ["board profile rpi4b-8gb says 8 GiB of memory but this machine has 3.7 GiB"]
        );
    }

    #[test]
    fn architecture_and_core_mismatches_warn() {
        let profile = profile_named("rpi5-8gb");
        let machine = MachineFacts {
            architecture: "amd64".into(),
            variant: None,
            cpus: Some(2),
            memory_bytes: None,
        };
        let warnings = compare(&profile, &machine);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("says architecture arm64 but this agent runs as amd64"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("says 4 CPU cores but this machine has 2"),
            "{warnings:?}"
        );
    }

    #[test]
    fn this_machine_against_a_huge_profile_warns_about_memory() {
        // The real /proc of the test machine, against a profile no machine here matches.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.yaml");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("board-configs/generic-x86_64.yaml"),
        )
        .unwrap()
        .replace("memory: 8Gi", "memory: 64Ti");
        std::fs::write(&path, text).unwrap();
        let (profile, warnings) = load_and_check(&path).unwrap();
        assert_eq!(profile.memory_bytes, 64 << 40);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("says 65536 GiB of memory but this machine has")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_malformed_profile_is_an_error_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("board-configs/rpi4b-4gb.yaml"),
        )
        .unwrap()
        .replace("memory: 4Gi", "memory: 4GB");
        std::fs::write(&path, text).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.starts_with("invalid board profile "), "{err}");
        assert!(
            err.ends_with(r#"bad.yaml: spec.memory: invalid quantity "4GB""#),
            "{err}"
        );
        let missing = load(&dir.path().join("absent.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("cannot read the board profile "),
            "{missing}"
        );
    }

    #[test]
    fn proc_files_are_parsed() {
        let cpuinfo = "processor\t: 0\nBogoMIPS\t: 108.00\n\nprocessor\t: 1\nmodel name\t: x\n\nHardware\t: BCM2835\n";
        assert_eq!(count_cpuinfo_processors(cpuinfo), Some(2));
        assert_eq!(count_cpuinfo_processors("Hardware : x\n"), None);
        let meminfo = "MemTotal:        3884564 kB\nMemFree:          100 kB\n";
        assert_eq!(meminfo_total_bytes(meminfo), Some(3_884_564 * 1024));
        assert_eq!(meminfo_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(meminfo_total_bytes("MemTotal: lots kB\n"), None);
        assert_eq!(human_bytes(8 << 30), "8 GiB");
        assert_eq!(human_bytes(512 << 20), "512 MiB");
        assert_eq!(human_bytes(3_884_564 * 1024), "3.7 GiB");
    }

    #[test]
    fn the_real_machine_is_readable() {
        let machine = read_machine();
        assert!(machine.cpus.is_some_and(|n| n >= 1));
        assert!(machine.memory_bytes.is_some_and(|m| m > 0));
        assert_eq!(machine.architecture, build_platform().architecture);
        assert_eq!(machine.variant, build_platform().variant);
    }

    #[test]
    fn a_32_bit_profile_wants_a_binary_of_its_variant() {
        let pi3 = profile_named("rpi3b-plus-armhf");
        let machine = |variant: &str| MachineFacts {
            architecture: "arm".into(),
            variant: Some(variant.into()),
            cpus: Some(4),
            memory_bytes: Some(948_000 * 1024),
        };
        assert_eq!(compare(&pi3, &machine("v7")), Vec::<String>::new());
        assert_eq!(
            compare(&pi3, &machine("v6")),
            ["board profile rpi3b-plus-armhf says platform variant v7 but this agent was built for v6"]
        );
        // A 64-bit profile on a 32-bit agent names the architecture only.
        let warnings = compare(&profile_named("rpi4b-4gb"), &machine("v7"));
        assert!(
            warnings[0].contains("says architecture arm64 but this agent runs as arm"),
            "{warnings:?}"
        );
    }
}
