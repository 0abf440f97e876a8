use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Seek};
use std::os::fd::AsFd;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use oci_spec::runtime::{Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};

use super::*;

const PLATFORMS: [Platform; 4] = [
    Platform::X86_64,
    Platform::Aarch64,
    Platform::Arm,
    Platform::Other,
];

/// Names newer than the libseccomp 2.5.4 that Debian 12 ships (and berth links): skipped
/// at container creation there, allowed where libseccomp knows them.
const NEWER_THAN_LIBSECCOMP: &[&str] = &[
    "getxattrat",
    "listxattrat",
    "listmount",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lsm_set_self_attr",
    "mseal",
    "removexattrat",
    "setxattrat",
    "statmount",
    "uretprobe",
];

fn docker_capabilities() -> HashSet<Capability> {
    crate::runtime::default_capabilities().into_iter().collect()
}

fn with(extra: Capability) -> HashSet<Capability> {
    let mut capabilities = docker_capabilities();
    capabilities.insert(extra);
    capabilities
}

fn rules(profile: &LinuxSeccomp) -> &[LinuxSyscall] {
    profile.syscalls().as_deref().unwrap_or_default()
}

/// Names allowed without conditions.
fn unconditional(profile: &LinuxSeccomp) -> BTreeSet<String> {
    rules(profile)
        .iter()
        .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
        .flat_map(|r| r.names().iter().cloned())
        .collect()
}

/// The rules naming `name` that have conditions or another action than allow.
fn special(profile: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
    rules(profile)
        .iter()
        .filter(|r| r.names().iter().any(|n| n == name))
        .filter(|r| r.args().is_some() || r.action() != LinuxSeccompAction::ScmpActAllow)
        .cloned()
        .collect()
}

#[test]
fn allows_what_programs_need_and_nothing_that_reaches_past_the_container() {
    for platform in PLATFORMS {
        let profile = profile_for(platform, &docker_capabilities()).unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(libc::EPERM as u32));
        let allowed = unconditional(&profile);
        let needed = "
            read write ioctl getrandom openat execve exit_group futex mmap epoll_wait
            accept4 sendmsg wait4 rt_sigaction setuid chroot mmap2 clock_gettime64
        ";
        for name in needed.split_whitespace() {
            assert!(allowed.contains(name), "{platform:?} must allow {name}");
        }
        // The last four are allowed only with conditions.
        let refused = "
            keyctl add_key request_key bpf perf_event_open io_uring_setup io_uring_enter
            io_uring_register mount umount2 fsopen fsmount fsconfig fspick move_mount
            open_tree unshare setns pivot_root kexec_load init_module finit_module reboot
            swapon settimeofday clock_settime userfaultfd syslog acct iopl vhangup mbind
            open_by_handle_at kcmp sethostname lookup_dcookie quotactl clone clone3
            personality socket
        ";
        for name in refused.split_whitespace() {
            assert!(
                !allowed.contains(name),
                "{platform:?} must not allow {name}"
            );
        }
    }
}

#[test]
fn architecture_specific_calls_follow_the_platform() {
    let caps = docker_capabilities();
    let allowed = |p| unconditional(&profile_for(p, &caps).unwrap());
    let archs = |p| {
        profile_for(p, &caps)
            .unwrap()
            .architectures()
            .clone()
            .unwrap()
    };
    assert!(allowed(Platform::X86_64).contains("arch_prctl"));
    assert!(!allowed(Platform::X86_64).contains("set_tls"));
    assert_eq!(
        archs(Platform::X86_64),
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    );
    for arm in [Platform::Aarch64, Platform::Arm] {
        for name in ["set_tls", "cacheflush", "arm_fadvise64_64", "breakpoint"] {
            assert!(allowed(arm).contains(name), "{arm:?} {name}");
        }
        assert!(!allowed(arm).contains("arch_prctl"), "{arm:?}");
    }
    assert_eq!(
        archs(Platform::Aarch64),
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    );
    assert_eq!(archs(Platform::Arm), vec![Arch::ScmpArchArm]);
}

#[test]
fn clone_is_filtered_and_clone3_refused_on_every_platform() {
    for platform in PLATFORMS {
        let profile = profile_for(platform, &docker_capabilities()).unwrap();
        let clone = special(&profile, "clone");
        assert_eq!(clone.len(), 1, "{platform:?}");
        let args = clone[0].args().clone().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // libcontainer's reading: arg & value_two == value.
        assert_eq!(
            (args[0].value(), args[0].value_two()),
            (0, Some(0x7e02_0000))
        );
        let clone3 = special(&profile, "clone3");
        assert_eq!(clone3.len(), 1, "{platform:?}");
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(libc::ENOSYS as u32));
    }
}

#[test]
fn capabilities_unlock_their_calls() {
    let admin = profile_for(Platform::Aarch64, &with(Capability::SysAdmin)).unwrap();
    let allowed = unconditional(&admin);
    for name in [
        "mount", "umount2", "unshare", "setns", "clone", "clone3", "fsopen", "bpf",
    ] {
        assert!(allowed.contains(name), "CAP_SYS_ADMIN allows {name}");
    }
    assert!(special(&admin, "clone").is_empty(), "no flag filter left");
    assert!(special(&admin, "clone3").is_empty(), "no ENOSYS left");
    assert!(!allowed.contains("init_module"));

    let cases = [
        (Capability::SysPtrace, "kcmp"),
        (Capability::SysTime, "settimeofday"),
        (Capability::SysModule, "finit_module"),
        (Capability::SysBoot, "reboot"),
        (Capability::SysNice, "mbind"),
        (Capability::Bpf, "bpf"),
        (Capability::Perfmon, "perf_event_open"),
        (Capability::DacReadSearch, "open_by_handle_at"),
    ];
    for (capability, name) in cases {
        let profile = profile_for(Platform::X86_64, &with(capability)).unwrap();
        assert!(unconditional(&profile).contains(name), "{capability:?}");
        assert!(!unconditional(&profile).contains("mount"), "{capability:?}");
    }
    let without_chroot: HashSet<_> = docker_capabilities()
        .into_iter()
        .filter(|c| *c != Capability::SysChroot)
        .collect();
    let profile = profile_for(Platform::Arm, &without_chroot).unwrap();
    assert!(!unconditional(&profile).contains("chroot"));
}

#[test]
fn personality_and_socket_allow_only_listed_values() {
    let profile = profile_for(Platform::Aarch64, &docker_capabilities()).unwrap();
    let values = |name| -> Vec<(LinuxSeccompOperator, u64)> {
        special(&profile, name)
            .iter()
            .map(|r| {
                assert_eq!(r.action(), LinuxSeccompAction::ScmpActAllow);
                let args = r.args().clone().unwrap();
                assert_eq!((args.len(), args[0].index()), (1, 0));
                (args[0].op(), args[0].value())
            })
            .collect()
    };
    let eq = LinuxSeccompOperator::ScmpCmpEq;
    assert_eq!(
        values("personality"),
        vec![
            (eq, 0),
            (eq, 8),
            (eq, 0x20000),
            (eq, 0x20008),
            (eq, 0xffff_ffff)
        ]
    );
    let socket = values("socket");
    assert_eq!(socket[0], (LinuxSeccompOperator::ScmpCmpLt, 38));
    let listed: Vec<u64> = socket[1..].iter().map(|(_, v)| *v).collect();
    assert_eq!(listed, vec![39, 41, 42, 43, 44, 45]);
    assert!(socket[1..].iter().all(|(op, _)| *op == eq));
}

#[test]
fn every_name_is_a_known_system_call() {
    let everything = PLATFORMS.iter().flat_map(|p| {
        let all_caps: HashSet<_> = CAPABILITY_GATED.iter().map(|(c, _)| *c).collect();
        allowed_calls(*p, &all_caps)
    });
    let mut unknown = BTreeSet::new();
    for name in everything {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name:?}"
        );
        if libseccomp::ScmpSyscall::from_name(name).is_err() {
            unknown.insert(name);
        }
    }
    let expected_unknown: BTreeSet<&str> = NEWER_THAN_LIBSECCOMP.iter().copied().collect();
    assert!(
        unknown.is_subset(&expected_unknown),
        "typo, or newer than libseccomp: {:?}",
        unknown.difference(&expected_unknown).collect::<Vec<_>>()
    );
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchNative => ScmpArch::Native,
        other => panic!("architecture {other:?} not used"),
    }
}

/// Compiles `profile` for `archs` the way libcontainer 0.7 does (skipping unknown names)
/// and returns the BPF program's length in instructions. The host's libseccomp can build
/// filters for any architecture, so every platform is measured here.
fn bpf_instructions(profile: &LinuxSeccomp, archs: &[Arch]) -> usize {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM)).unwrap();
    for arch in archs {
        ctx.add_arch(scmp_arch(*arch)).unwrap();
    }
    let archs: Vec<ScmpArch> = archs.iter().map(|a| scmp_arch(*a)).collect();
    if !archs.contains(&ScmpArch::native()) && !archs.contains(&ScmpArch::Native) {
        ctx.remove_arch(ScmpArch::native()).unwrap();
    }
    for rule in rules(profile) {
        let action = match rule.action() {
            LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
            _ => ScmpAction::Errno(rule.errno_ret().unwrap() as i32),
        };
        for name in rule.names() {
            let Ok(syscall) = libseccomp::ScmpSyscall::from_name(name) else {
                continue;
            };
            match rule.args() {
                None => ctx.add_rule(action, syscall).unwrap(),
                Some(args) => {
                    let compare: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| {
                            let op = match a.op() {
                                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                                    ScmpCompareOp::MaskedEqual(a.value_two().unwrap_or(0))
                                }
                                other => panic!("operator {other:?} not used"),
                            };
                            ScmpArgCompare::new(a.index() as u32, op, a.value())
                        })
                        .collect();
                    ctx.add_rule_conditional(action, syscall, &compare).unwrap()
                }
            };
        }
    }
    let mut file = tempfile::tempfile().unwrap();
    ctx.export_bpf(file.as_fd()).unwrap();
    let mut bytes = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    // struct sock_filter is 8 bytes.
    bytes.len() / 8
}

/// The kernel takes up to 4096 instructions per filter, and every system call of the
/// container runs the part for its ABI: that per-ABI length is what a board pays.
#[test]
fn the_filter_stays_small() {
    for platform in [Platform::X86_64, Platform::Aarch64, Platform::Arm] {
        let profile = profile_for(platform, &docker_capabilities()).unwrap();
        let archs = platform.architectures();
        let total = bpf_instructions(&profile, &archs);
        let per_abi: Vec<(Arch, usize)> = archs
            .iter()
            .map(|arch| (*arch, bpf_instructions(&profile, &[*arch])))
            .collect();
        eprintln!(
            "{platform:?}: {} allowed names, {} rules, {total} BPF instructions {per_abi:?}",
            allowed_calls(platform, &docker_capabilities()).len(),
            rules(&profile).len(),
        );
        assert!(total < 4096, "{platform:?}: {total} instructions");
        for (arch, length) in per_abi {
            assert!(length < 512, "{arch}: {length} instructions");
        }
    }
}

/// The errno of a system call's result, 0 for success. Generic because the calls return
/// `c_int` or `c_long`, which are the same type on 32-bit targets and not on 64-bit ones.
pub(super) fn outcome(result: impl Into<i64>) -> i32 {
    if result.into() < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// Runs `check` in a forked child with the host's default filter loaded by libcontainer
/// itself (as the shim and the exec helper do); returns what `check` reported.
fn in_confined_child(check: fn() -> Vec<String>) -> Vec<String> {
    in_child_under(&default_profile(&docker_capabilities()).unwrap(), check)
}

/// Runs `check` in a forked child with `profile` loaded by libcontainer; returns what
/// `check` reported.
pub(super) fn in_child_under(profile: &LinuxSeccomp, check: fn() -> Vec<String>) -> Vec<String> {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only runs `confined`, which loads the filter, makes system calls
    // and allocates (glibc's fork leaves the allocator usable in the child), and then
    // leaves with _exit without returning into the test harness.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            drop(reader);
            let report = std::panic::catch_unwind(|| confined(profile, check))
                .unwrap_or_else(|_| vec!["the check panicked".to_string()]);
            let _ = nix::unistd::write(&writer, report.join("\n").as_bytes());
            // SAFETY: ends the forked child at once, without running the harness's
            // destructors or atexit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(writer);
            let mut report = String::new();
            std::fs::File::from(reader)
                .read_to_string(&mut report)
                .unwrap();
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            report.lines().map(str::to_string).collect()
        }
    }
}

fn confined(profile: &LinuxSeccomp, check: fn() -> Vec<String>) -> Vec<String> {
    if let Err(err) = nix::sys::prctl::set_no_new_privs() {
        return vec![format!("no_new_privs: {err}")];
    }
    if let Err(err) = libcontainer::seccomp::initialize_seccomp(profile) {
        return vec![format!("load the filter: {err:?}")];
    }
    check()
}

/// What a container must and must not be able to do, checked under the real filter.
fn container_calls() -> Vec<String> {
    let mut wrong = Vec::new();
    let mut expect = |what: &str, got: i32, errno: i32| {
        if got != errno {
            wrong.push(format!("{what}: errno {got}, expected {errno}"));
        }
    };
    const READ_IMPLIES_EXEC: libc::c_ulong = 0x0040_0000;
    // SAFETY: raw system calls with scalar arguments or pointers to live, zeroed buffers
    // of the size each call expects; a call that wrongly succeeds in creating a child
    // makes that child exit at once.
    unsafe {
        expect("getpid", outcome(libc::getpid()), 0);
        expect(
            "unshare(CLONE_NEWUSER)",
            outcome(libc::unshare(libc::CLONE_NEWUSER)),
            libc::EPERM,
        );
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long;
        let pid = libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0);
        if pid == 0 {
            libc::_exit(0);
        }
        expect("clone(CLONE_NEWUSER)", outcome(pid), libc::EPERM);
        let mut args = [0u64; 11];
        args[0] = libc::CLONE_NEWUSER as u64;
        args[4] = libc::SIGCHLD as u64;
        let pid = libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 88usize);
        if pid == 0 {
            libc::_exit(0);
        }
        expect("clone3(CLONE_NEWUSER)", outcome(pid), libc::ENOSYS);
        let persona = libc::syscall(libc::SYS_personality, READ_IMPLIES_EXEC);
        expect(
            "personality(READ_IMPLIES_EXEC)",
            outcome(persona),
            libc::EPERM,
        );
        let query = libc::syscall(libc::SYS_personality, 0xffff_ffff as libc::c_ulong);
        expect("personality(query)", outcome(query), 0);
        let keyring = libc::syscall(libc::SYS_keyctl, 0, -3, 0);
        expect("keyctl", outcome(keyring), libc::EPERM);
        let mut params = [0u8; 120];
        let ring = libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr());
        expect("io_uring_setup", outcome(ring), libc::EPERM);
        let fs = libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 0);
        expect("fsopen", outcome(fs), libc::EPERM);
        let mut attr = [0u8; 128];
        let map = libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), 128);
        expect("bpf", outcome(map), libc::EPERM);
        let perf = libc::syscall(libc::SYS_perf_event_open, attr.as_mut_ptr(), 0, -1, -1, 0);
        expect("perf_event_open", outcome(perf), libc::EPERM);
        let alg = libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0);
        expect("socket(AF_ALG)", outcome(alg), libc::EPERM);
        let vsock = libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0);
        expect("socket(AF_VSOCK)", outcome(vsock), libc::EPERM);
        let udp = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        expect("socket(AF_INET)", outcome(udp), 0);
        #[cfg(target_pointer_width = "64")]
        {
            let hidden = libc::syscall(libc::SYS_socket, 0x1_0000_0026_u64, 5, 0);
            expect(
                "socket(AF_ALG with high bits)",
                outcome(hidden),
                libc::EPERM,
            );
        }
    }
    // fork (clone without namespace flags) and threads (clone3 refused with ENOSYS,
    // then clone) keep working.
    match std::process::Command::new("/bin/true").status() {
        Ok(status) if status.success() => {}
        other => wrong.push(format!("spawn /bin/true: {other:?}")),
    }
    if std::thread::spawn(|| 7).join().ok() != Some(7) {
        wrong.push("thread".to_string());
    }
    wrong
}

#[test]
fn host_filter_refuses_what_it_should() {
    if Platform::host() == Platform::Other {
        return;
    }
    assert_eq!(in_confined_child(container_calls), Vec::<String>::new());
}
