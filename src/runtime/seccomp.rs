//! The default seccomp profile of berth containers (`RuntimeDefault` in Kubernetes terms).
//!
//! An **allow-list** with the semantics of containerd's and Docker's default profiles: every
//! system call not named here fails with EPERM. A container may use what ordinary programs
//! need (files, sockets, processes, threads, memory, time, System V and POSIX IPC) and
//! nothing that reaches past the container: no new namespaces (`unshare`, `setns`, `clone`
//! or `clone3` with namespace flags), no mounts (old or new mount API), no keyrings, BPF,
//! perf events, `io_uring`, kernel modules, clock setting, `userfaultfd`, or personalities
//! that weaken the address space (`READ_IMPLIES_EXEC`). Calls that a capability legitimately
//! unlocks come back with that capability ([`CAPABILITY_GATED`]): the profile is built from
//! the container's capability set, so adding `CAP_SYS_ADMIN` also allows `mount`, `unshare`
//! and unfiltered `clone`, as with Docker.
//!
//! `clone3` fails with ENOSYS rather than EPERM: its flags sit in memory where a filter
//! cannot read them, so it is refused as a whole, and ENOSYS makes glibc and others fall
//! back to `clone`, whose flags the filter does check.
//!
//! The filter covers the host's native ABI and the 32-bit ABI the kernel also runs
//! (i386 and x32 on x86_64, arm on aarch64), so switching ABI does not escape it; which is
//! also why the list carries the 32-bit spellings (`mmap2`, `fstat64`, `*_time64`, ...).
//! `libcontainer` resolves each name with libseccomp and **skips names it does not know**
//! (a call newer than the libseccomp berth links): such a call is refused, never an error
//! at container creation. libseccomp places each name in every ABI of the filter that has
//! it and leaves it out of the others.
//!
//! Size: the filter is a linear BPF program per ABI, one comparison per allowed call on
//! the way to a match, about 300 to 380 instructions per ABI; the unit test
//! `the_filter_stays_small` measures it.

use std::collections::{BTreeSet, HashSet};

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use oci_spec::OciSpecError;

/// Files: open, read, write, metadata, directories, links, extended attributes.
const FILES: &str = "
    access chdir chmod chown close close_range copy_file_range creat dup dup2 dup3
    faccessat faccessat2 fadvise64 fallocate fchdir fchmod fchmodat fchmodat2 fchown
    fchownat fcntl fdatasync flock fstat fstatfs fsync ftruncate futimesat getcwd getdents
    getdents64 lchown link linkat lseek lstat mkdir mkdirat mknod mknodat name_to_handle_at
    newfstatat open openat openat2 pread64 preadv preadv2 pwrite64 pwritev pwritev2 read
    readahead readlink readlinkat readv rename renameat renameat2 rmdir sendfile splice
    stat statfs statx symlink symlinkat sync sync_file_range syncfs tee truncate umask
    unlink unlinkat utime utimensat utimes vmsplice write writev cachestat ioctl
    listmount statmount
    fgetxattr flistxattr fremovexattr fsetxattr getxattr lgetxattr listxattr llistxattr
    lremovexattr lsetxattr removexattr setxattr getxattrat listxattrat removexattrat
    setxattrat
";

/// Waiting for I/O and events; classic asynchronous I/O (not `io_uring`, which has been a
/// steady source of kernel exploits and bypasses the filter for the work it queues).
const EVENTS: &str = "
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 inotify_add_watch inotify_init inotify_init1
    inotify_rm_watch fanotify_mark poll ppoll pselect6 select _newselect signalfd signalfd4
    timerfd_create timerfd_gettime timerfd_settime io_setup io_destroy io_submit io_cancel
    io_getevents io_pgetevents
";

/// Sockets, except `socket` itself, whose address family is checked ([`socket_rules`]).
/// `socketcall` is the 32-bit x86 multiplexer of all of them (Docker allows it too).
const NETWORK: &str = "
    accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
    recvmmsg recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socketpair socketcall
";

/// Processes and threads: lifecycle, signals, scheduling, limits, credentials.
/// `ptrace` and `process_vm_*` only reach processes the kernel lets the caller trace (its
/// own container); since Linux 4.8 seccomp re-checks a call after a tracer changed it, so
/// tracing cannot be used to get past the filter. berth needs newer kernels anyway
/// (`pidfd_open`, 5.3). `uretprobe` is entered by the return trampoline the kernel plants
/// when a host tool probes a function of the process: refusing it would crash the process.
const PROCESSES: &str = "
    execve execveat exit exit_group fork vfork wait4 waitid waitpid kill tkill tgkill
    pidfd_open pidfd_send_signal process_mrelease getpid getppid gettid getpgid getpgrp
    getsid setpgid setsid prctl seccomp rseq set_tid_address set_robust_list
    get_robust_list restart_syscall pause capget capset getrlimit setrlimit prlimit64
    getrusage getpriority setpriority ioprio_get ioprio_set sched_getaffinity
    sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
    sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr
    sched_setparam sched_setscheduler sched_yield getcpu times sysinfo uname
    landlock_add_rule landlock_create_ruleset landlock_restrict_self getrandom uretprobe
    ptrace process_vm_readv process_vm_writev
    rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn alarm getitimer
    setitimer
    getuid geteuid getgid getegid getgroups getresuid getresgid setuid setgid setreuid
    setregid setresuid setresgid setfsuid setfsgid setgroups
";

/// Memory, futexes and thread-local storage.
const MEMORY: &str = "
    brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap
    mprotect mremap msync munlock munlockall munmap pkey_alloc pkey_free pkey_mprotect
    remap_file_pages map_shadow_stack mseal futex futex_waitv futex_wait futex_wake
    futex_requeue set_thread_area get_thread_area
";

/// Reading clocks, sleeping, timers. `adjtimex` and `clock_adjtime` only read unless the
/// caller has CAP_SYS_TIME, which the kernel checks itself.
const TIME: &str = "
    clock_getres clock_gettime clock_nanosleep gettimeofday nanosleep time timer_create
    timer_delete timer_getoverrun timer_gettime timer_settime adjtimex clock_adjtime
";

/// Pipes, System V IPC (`ipc` is its 32-bit multiplexer) and POSIX message queues: all
/// scoped to the container's IPC namespace.
const IPC: &str = "
    pipe pipe2 ipc msgctl msgget msgrcv msgsnd semctl semget semop semtimedop shmat shmctl
    shmdt shmget mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink
";

/// The same calls under the names the 32-bit ABIs (arm, i386) give them: 32-bit ids,
/// 64-bit file offsets, and 64-bit time (y2038).
const ABI_32BIT: &str = "
    _llseek chown32 fchown32 lchown32 fadvise64_64 fcntl64 fstat64 fstatat64 fstatfs64
    ftruncate64 truncate64 lstat64 stat64 statfs64 mmap2 sendfile64 ugetrlimit
    getuid32 geteuid32 getgid32 getegid32 getgroups32 getresuid32 getresgid32 setuid32
    setgid32 setreuid32 setregid32 setresuid32 setresgid32 setfsuid32 setfsgid32
    setgroups32
    clock_gettime64 clock_getres_time64 clock_nanosleep_time64 clock_adjtime64 futex_time64
    io_pgetevents_time64 mq_timedreceive_time64 mq_timedsend_time64 ppoll_time64
    pselect6_time64 recvmmsg_time64 rt_sigtimedwait_time64 sched_rr_get_interval_time64
    semtimedop_time64 timer_gettime64 timer_settime64 timerfd_gettime64 timerfd_settime64
    utimensat_time64
";

/// x86 only: thread pointer and segment setup.
const X86_ONLY: &str = "arch_prctl modify_ldt";

/// 32-bit arm only: its own argument orders for two file calls, the thread pointer,
/// cache maintenance for JITs, and the breakpoint trap.
const ARM_ONLY: &str = "
    arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls
";

/// Calls a capability unlocks, as Docker's profile does: they are useless (or the kernel's
/// own capability check is thin) without it.
const CAPABILITY_GATED: &[(Capability, &str)] = &[
    (Capability::DacReadSearch, "open_by_handle_at"),
    (
        Capability::SysAdmin,
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
         lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr
         move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
         sethostname setns syslog umount umount2 unshare",
    ),
    (Capability::SysBoot, "reboot"),
    (Capability::SysChroot, "chroot"),
    (
        Capability::SysModule,
        "delete_module finit_module init_module",
    ),
    (Capability::SysPacct, "acct"),
    (
        Capability::SysPtrace,
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    (Capability::SysRawio, "ioperm iopl"),
    (
        Capability::SysTime,
        "clock_settime clock_settime64 settimeofday stime",
    ),
    (Capability::SysTtyConfig, "vhangup"),
    (
        Capability::SysNice,
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    (Capability::Syslog, "syslog"),
    (Capability::Bpf, "bpf"),
    (Capability::Perfmon, "perf_event_open"),
];

/// The `clone` flags that create namespaces: refused unless the container has
/// CAP_SYS_ADMIN (plain `fork` and threads never set them).
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// The `personality` values allowed (Docker's): Linux, its 32-bit variant (`linux32`),
/// both with `UNAME26`, and the query `0xffffffff`. Everything else, `READ_IMPLIES_EXEC`
/// and `ADDR_NO_RANDOMIZE` among them, is refused.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Address families `socket` refuses, as containerd and Docker do: `AF_ALG` (38, the
/// kernel's crypto API, a frequent source of privilege escalations) and `AF_VSOCK` (40,
/// a channel to the hypervisor).
const REFUSED_FAMILIES: [u64; 2] = [38, 40];
/// One past the last address family the kernel knows (`AF_MCTP`, 45, in Linux 6.x).
const FAMILY_END: u64 = 46;

/// The ABIs a filter must cover on a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Platform {
    /// x86_64, with i386 and x32 binaries.
    X86_64,
    /// 64-bit arm, with 32-bit arm binaries (armhf images on a 64-bit board OS).
    Aarch64,
    /// 32-bit arm (a board on a 32-bit OS).
    Arm,
    /// Anything else: the native ABI only, without architecture-specific calls.
    Other,
}

impl Platform {
    fn host() -> Platform {
        if cfg!(target_arch = "x86_64") {
            Platform::X86_64
        } else if cfg!(target_arch = "aarch64") {
            Platform::Aarch64
        } else if cfg!(target_arch = "arm") {
            Platform::Arm
        } else {
            Platform::Other
        }
    }

    fn architectures(self) -> Vec<Arch> {
        match self {
            Platform::X86_64 => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            Platform::Aarch64 => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            Platform::Arm => vec![Arch::ScmpArchArm],
            Platform::Other => vec![Arch::ScmpArchNative],
        }
    }

    /// Calls only this platform's ABIs have.
    fn specific_calls(self) -> &'static str {
        match self {
            Platform::X86_64 => X86_ONLY,
            Platform::Aarch64 | Platform::Arm => ARM_ONLY,
            Platform::Other => "",
        }
    }
}

/// The default profile for a container with `capabilities` (its effective set).
pub(crate) fn default_profile(
    capabilities: &HashSet<Capability>,
) -> Result<LinuxSeccomp, OciSpecError> {
    profile_for(Platform::host(), capabilities)
}

fn profile_for(
    platform: Platform,
    capabilities: &HashSet<Capability>,
) -> Result<LinuxSeccomp, OciSpecError> {
    let allowed = allowed_calls(platform, capabilities);
    let mut rules = vec![rule(&allowed, LinuxSeccompAction::ScmpActAllow)?];
    // One rule kind per name: next to an unconditional allow, libseccomp drops a
    // conditional rule, and of two rules with different actions it keeps the first.
    if !allowed.contains("clone") {
        rules.push(clone_without_namespaces()?);
    }
    if !allowed.contains("clone3") {
        let mut refused = rule(
            &BTreeSet::from(["clone3"]),
            LinuxSeccompAction::ScmpActErrno,
        )?;
        refused.set_errno_ret(Some(libc::ENOSYS as u32));
        rules.push(refused);
    }
    for &persona in PERSONALITIES {
        rules.push(allow_if(
            "personality",
            LinuxSeccompOperator::ScmpCmpEq,
            persona,
        )?);
    }
    rules.extend(socket_rules()?);
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .architectures(platform.architectures())
        .syscalls(rules)
        .build()
}

/// The calls allowed without conditions on `platform` with `capabilities`.
fn allowed_calls(platform: Platform, capabilities: &HashSet<Capability>) -> BTreeSet<&'static str> {
    let groups = [
        FILES,
        EVENTS,
        NETWORK,
        PROCESSES,
        MEMORY,
        TIME,
        IPC,
        ABI_32BIT,
        platform.specific_calls(),
    ];
    let gated = CAPABILITY_GATED
        .iter()
        .filter(|(capability, _)| capabilities.contains(capability))
        .map(|(_, names)| *names);
    groups
        .into_iter()
        .chain(gated)
        .flat_map(str::split_whitespace)
        .collect()
}

fn rule(names: &BTreeSet<&str>, action: LinuxSeccompAction) -> Result<LinuxSyscall, OciSpecError> {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(action)
        .build()
}

/// Allows `name` when its first argument compares to `value` with `op`. The comparison is
/// on all 64 bits: a kernel that truncates the argument to an `int` would otherwise let a
/// caller hide a refused value behind high bits.
fn allow_if(
    name: &str,
    op: LinuxSeccompOperator,
    value: u64,
) -> Result<LinuxSyscall, OciSpecError> {
    let arg = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .op(op)
        .value(value)
        .build()?;
    let mut allowed = rule(&BTreeSet::from([name]), LinuxSeccompAction::ScmpActAllow)?;
    allowed.set_args(Some(vec![arg]));
    Ok(allowed)
}

/// `clone` when its flags (first argument on x86 and arm) have no namespace bit.
///
/// libcontainer 0.7 reads a masked comparison as `arg & value_two == value` (runc reads
/// `arg & value == value_two`), so the mask goes in `value_two`. Written runc's way, the
/// filter would allow every `clone`. The unit test `host_filter_refuses_what_it_should`
/// loads the filter and checks that namespace flags are refused and `fork` still works, so
/// a libcontainer that changes its reading is caught.
fn clone_without_namespaces() -> Result<LinuxSyscall, OciSpecError> {
    let flags = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .value(0u64)
        .value_two(NAMESPACE_FLAGS)
        .build()?;
    let mut allowed = rule(&BTreeSet::from(["clone"]), LinuxSeccompAction::ScmpActAllow)?;
    allowed.set_args(Some(vec![flags]));
    Ok(allowed)
}

/// `socket` for every address family the kernel knows except [`REFUSED_FAMILIES`].
///
/// One rule per allowed range or value: libcontainer (like runc) turns several conditions
/// on the same argument into separate rules, which would allow what either allows. The
/// families are listed up to [`FAMILY_END`] rather than allowed with "greater than 40"
/// because `socket` truncates its family to an `int`: 0x1_0000_0026 is above 40 but
/// creates an `AF_ALG` socket. A family newer than the list fails with EPERM until added.
fn socket_rules() -> Result<Vec<LinuxSyscall>, OciSpecError> {
    let first_refused = REFUSED_FAMILIES[0];
    let mut rules = vec![allow_if(
        "socket",
        LinuxSeccompOperator::ScmpCmpLt,
        first_refused,
    )?];
    for family in first_refused..FAMILY_END {
        if !REFUSED_FAMILIES.contains(&family) {
            rules.push(allow_if("socket", LinuxSeccompOperator::ScmpCmpEq, family)?);
        }
    }
    Ok(rules)
}

pub(crate) mod localhost;
#[cfg(test)]
mod tests;
