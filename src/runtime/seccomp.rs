//! The default seccomp profile of berth containers.
//!
//! This is a **blocklist**: every system call is allowed except the ones Docker's default
//! profile refuses outright (kernel modules, clocks, keyrings, mount and namespace
//! manipulation, tracing other processes, ...), which fail with EPERM. Docker's profile is
//! an allowlist of some 350 calls per architecture with argument filters; carrying and
//! updating that list here would be a large, architecture-dependent maintenance burden and a
//! big filter on every system call of a small board. The dangerous calls are the same short
//! list everywhere, and most of them also need capabilities our containers do not have, so
//! the blocklist is a second fence rather than the only one.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};

/// System calls that Docker's default profile denies to containers without extra
/// capabilities. Names unknown on an architecture are skipped by `libcontainer`.
const BLOCKED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapon",
    "swapoff",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Architectures whose system call tables the filter covers: the native one plus the
/// 32-bit compat ABI the kernel may also accept, so the filter cannot be bypassed by
/// switching ABI.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else if cfg!(target_arch = "arm") {
        vec![Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

/// The default profile: allow everything, EPERM for [`BLOCKED_SYSCALLS`].
pub(crate) fn default_profile() -> Result<LinuxSeccomp, oci_spec::OciSpecError> {
    let blocked = LinuxSyscallBuilder::default()
        .names(
            BLOCKED_SYSCALLS
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EPERM as u32)
        .build()?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(vec![blocked])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_allows_by_default_and_refuses_the_dangerous_calls() {
        let profile = default_profile().unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActAllow);
        let rules = profile.syscalls().as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(rules[0].errno_ret(), Some(libc::EPERM as u32));
        for name in ["mount", "ptrace", "kexec_load", "unshare"] {
            assert!(rules[0].names().iter().any(|n| n == name), "{name}");
        }
        assert!(!profile.architectures().as_ref().unwrap().is_empty());
    }
}
