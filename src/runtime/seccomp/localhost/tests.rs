use oci_spec::runtime::{Arch, Capability, LinuxSeccompAction, LinuxSeccompOperator};

use super::*;

fn host() -> HostFacts {
    HostFacts {
        native_arch: "SCMP_ARCH_AARCH64",
        go_arch: "arm64",
        kernel: Some((6, 1)),
        capabilities: crate::runtime::default_capabilities().into_iter().collect(),
    }
}

fn ok(json: &str) -> LinuxSeccomp {
    translate(json.as_bytes(), &host()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn err(json: &str) -> String {
    match translate(json.as_bytes(), &host()) {
        Ok(profile) => panic!("{json} was accepted: {profile:?}"),
        Err(e) => e,
    }
}

fn rules(profile: &LinuxSeccomp) -> Vec<LinuxSyscall> {
    profile.syscalls().clone().unwrap_or_default()
}

#[test]
fn the_tutorial_profiles_translate() {
    let audit = ok(r#"{"defaultAction": "SCMP_ACT_LOG"}"#);
    assert_eq!(audit.default_action(), LinuxSeccompAction::ScmpActLog);
    assert!(rules(&audit).is_empty());
    assert_eq!(
        audit.architectures(),
        &Some(vec![]),
        "libseccomp's native only"
    );
    let violation = ok(r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#);
    assert_eq!(violation.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(violation.default_errno_ret(), None, "libcontainer's EPERM");
    let fine = ok(r#"{
        "defaultAction": "SCMP_ACT_LOG",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["accept4", "epoll_wait", "pselect6", "futex"],
                      "action": "SCMP_ACT_ALLOW"}]
    }"#);
    assert_eq!(
        fine.architectures(),
        &Some(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32
        ])
    );
    let allowed = rules(&fine);
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0].names().len(), 4);
    assert_eq!(allowed[0].action(), LinuxSeccompAction::ScmpActAllow);
    assert_eq!(allowed[0].args(), &None);
}

#[test]
fn every_action_kind() {
    let kinds = [
        ("SCMP_ACT_KILL", LinuxSeccompAction::ScmpActKill),
        (
            "SCMP_ACT_KILL_THREAD",
            LinuxSeccompAction::ScmpActKillThread,
        ),
        (
            "SCMP_ACT_KILL_PROCESS",
            LinuxSeccompAction::ScmpActKillProcess,
        ),
        ("SCMP_ACT_TRAP", LinuxSeccompAction::ScmpActTrap),
        ("SCMP_ACT_ERRNO", LinuxSeccompAction::ScmpActErrno),
        ("SCMP_ACT_TRACE", LinuxSeccompAction::ScmpActTrace),
        ("SCMP_ACT_LOG", LinuxSeccompAction::ScmpActLog),
        ("SCMP_ACT_ALLOW", LinuxSeccompAction::ScmpActAllow),
    ];
    for (name, expected) in kinds {
        let json = format!(
            r#"{{"defaultAction": "{name}",
                 "syscalls": [{{"names": ["getpid"], "action": "{name}"}}]}}"#
        );
        let profile = ok(&json);
        assert_eq!(profile.default_action(), expected, "{name}");
        assert_eq!(rules(&profile)[0].action(), expected, "{name}");
    }
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#),
        "defaultAction: SCMP_ACT_NOTIFY needs a seccomp agent, and berth runs none"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["b"], "action": "SCMP_ACT_DENY"}]}"#),
        "syscalls[1].action: unknown action \"SCMP_ACT_DENY\""
    );
    assert_eq!(
        err(r#"{"defaultAction": 3}"#),
        "defaultAction: expected string"
    );
}

#[test]
fn errno_values() {
    let profile = ok(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    );
    assert_eq!(profile.default_errno_ret(), Some(38));
    assert_eq!(rules(&profile)[0].errno_ret(), Some(13));
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}"#),
        "defaultErrnoRet: must be at most 4095"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]}"#),
        "syscalls[0].errnoRet: expected an unsigned integer"
    );
}

#[test]
fn arguments_and_the_masked_comparison() {
    let profile = ok(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 4194304, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_GE"},
                  {"index": 1, "value": 18446744073709551615, "op": "SCMP_CMP_NE"}]}
    ]}"#);
    let rules = rules(&profile);
    let args = |i: usize| rules[i].args().clone().unwrap();
    assert_eq!(args(0)[0].op(), LinuxSeccompOperator::ScmpCmpEq);
    assert_eq!(
        (args(0)[0].value(), args(0)[0].value_two()),
        (4194304, Some(0))
    );
    // runc's `arg & value == valueTwo` becomes libcontainer's `arg & valueTwo == value`.
    assert_eq!(args(1)[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(
        (args(1)[0].value(), args(1)[0].value_two()),
        (0, Some(2114060288))
    );
    assert_eq!(args(2).len(), 2);
    assert_eq!((args(2)[1].index(), args(2)[1].value()), (1, u64::MAX));
    for (arg, message) in [
        (
            r#"{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}"#,
            "syscalls[0].args[0].index: must be at most 5",
        ),
        (
            r#"{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}"#,
            "syscalls[0].args[0].op: unknown operator \"SCMP_CMP_LIKE\"",
        ),
        (
            r#"{"index": 0, "op": "SCMP_CMP_EQ"}"#,
            "syscalls[0].args[0].value: required value",
        ),
        (
            r#"{"index": 0, "value": 1, "op": "SCMP_CMP_EQ", "mask": 1}"#,
            "syscalls[0].args[0].mask: unknown field",
        ),
    ] {
        let json = format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW",
                 "syscalls": [{{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{arg}]}}]}}"#
        );
        assert_eq!(err(&json), message);
    }
}

#[test]
fn bad_documents_name_the_field() {
    assert!(err("").starts_with("not a JSON profile: "));
    assert!(err("{\"defaultAction\": ").starts_with("not a JSON profile: "));
    assert_eq!(err("[]"), "not a JSON profile: expected an object");
    assert_eq!(err("{}"), "defaultAction: required value");
    // A typo must not leave a profile of nothing but its default action.
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscall": []}"#),
        "syscall: unknown field"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}"#),
        "syscalls: expected list"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_LOG"}]}"#),
        "syscalls[0].names: required value"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]}"#),
        "syscalls[0].action: required value"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#),
        "architectures[0]: unknown architecture \"SCMP_ARCH_Z80\""
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}"#),
        "flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_NOPE\""
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#),
        "listenerPath: berth runs no seccomp agent to listen for notifications"
    );
    let flagged = ok(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#);
    assert_eq!(flagged.flags().as_ref().map(Vec::len), Some(2));
}

#[test]
fn name_or_names() {
    let profile = ok(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "comment": "old style"}]}"#);
    assert_eq!(rules(&profile)[0].names(), &["mkdir".to_owned()]);
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}"#),
        "syscalls[0].name: name and names are both set; use one of them"
    );
    assert_eq!(
        err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": [""], "action": "SCMP_ACT_ERRNO"}]}"#),
        "syscalls[0].names[0]: must not be empty"
    );
}

#[test]
fn moby_filters_and_arch_map() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64",
             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_FUTURE", "subArchitectures": []}
        ],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["arm", "arm64"]}},
            {"names": ["x86_only"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["not_on_arm"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"arches": ["arm64"]}},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["chown"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_CHOWN"]}},
            {"names": ["without_chown"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"caps": ["CAP_CHOWN"]}},
            {"names": ["new_kernel"], "action": "SCMP_ACT_ALLOW",
             "includes": {"minKernel": "4.8"}},
            {"names": ["future_kernel"], "action": "SCMP_ACT_ALLOW",
             "includes": {"minKernel": "7.0"}},
            {"names": ["old_kernel_only"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"minKernel": "5.10"}}
        ]
    }"#;
    let profile = ok(json);
    assert_eq!(
        profile.architectures(),
        &Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    );
    let kept: Vec<String> = rules(&profile)
        .iter()
        .flat_map(|r| r.names().clone())
        .collect();
    assert_eq!(kept, ["read", "arm_only", "chown", "new_kernel"]);

    // The same profile on x86_64, for a container with CAP_SYS_ADMIN and without CAP_CHOWN.
    let mut x86 = HostFacts {
        native_arch: "SCMP_ARCH_X86_64",
        go_arch: "amd64",
        kernel: Some((4, 19)),
        capabilities: [Capability::SysAdmin].into_iter().collect(),
    };
    let profile = translate(json.as_bytes(), &x86).unwrap();
    assert_eq!(profile.architectures().as_ref().map(Vec::len), Some(3));
    let kept: Vec<String> = rules(&profile)
        .iter()
        .flat_map(|r| r.names().clone())
        .collect();
    assert_eq!(
        kept,
        [
            "read",
            "x86_only",
            "not_on_arm",
            "mount",
            "without_chown",
            "new_kernel",
            "old_kernel_only"
        ]
    );
    x86.kernel = None;
    assert_eq!(
        translate(json.as_bytes(), &x86).unwrap_err(),
        "syscalls[7].includes.minKernel: the running kernel's version is unknown"
    );
    assert_eq!(
        err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_ARM"],
                "archMap": [{"architecture": "SCMP_ARCH_ARM"}]}"#
        ),
        "architectures and archMap are both set; use one of them"
    );
    assert_eq!(
        err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"],
                "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}"#
        ),
        "syscalls[0].includes.minKernel: invalid kernel version \"four\""
    );
    assert_eq!(parse_kernel_version("6.1.0-18-arm64"), Some((6, 1)));
    assert_eq!(parse_kernel_version("5"), None);
}

#[test]
fn paths_stay_below_the_root() {
    let root = Path::new("/var/lib/berth/seccomp");
    assert_eq!(
        profile_path(root, "profiles/audit.json").unwrap(),
        Path::new("/var/lib/berth/seccomp/profiles/audit.json")
    );
    assert!(profile_path(root, "/etc/passwd")
        .unwrap_err()
        .contains("must be a relative path"));
    assert!(profile_path(root, "a/../../b")
        .unwrap_err()
        .contains("must not contain '..'"));
}

#[test]
fn files_are_read_with_a_cap_and_errors_name_them() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("profiles")).unwrap();
    let caps = crate::runtime::default_capabilities();
    let good = root.path().join("profiles/audit.json");
    std::fs::write(&good, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
    let profile = load_localhost_profile(root.path(), "profiles/audit.json", &caps).unwrap();
    assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActLog);

    let missing = load_localhost_profile(root.path(), "profiles/nope.json", &caps).unwrap_err();
    let shown = root.path().join("profiles/nope.json");
    assert!(
        missing.starts_with(&format!(
            "cannot load seccomp profile {:?}: ",
            shown.display()
        )),
        "{missing}"
    );
    assert!(missing.contains("No such file"), "{missing}");

    let big = root.path().join("big.json");
    let mut text = String::from(r#"{"defaultAction": "SCMP_ACT_LOG", "syscalls": []}"#);
    text.push_str(&" ".repeat(MAX_PROFILE_BYTES as usize));
    std::fs::write(&big, text).unwrap();
    let oversize = load_localhost_profile(root.path(), "big.json", &caps).unwrap_err();
    assert!(
        oversize.ends_with("larger than 1048576 bytes"),
        "{oversize}"
    );

    let bad = root.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
    let invalid = load_localhost_profile(root.path(), "bad.json", &caps).unwrap_err();
    assert!(invalid.contains("bad.json"), "{invalid}");
    assert!(
        invalid.ends_with("defaultAction: unknown action \"SCMP_ACT_NOPE\""),
        "{invalid}"
    );

    let dir = load_localhost_profile(root.path(), "profiles", &caps).unwrap_err();
    assert!(dir.ends_with("not a regular file"), "{dir}");
    let fifo = root.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let fifo = load_localhost_profile(root.path(), "fifo", &caps).unwrap_err();
    assert!(fifo.ends_with("not a regular file"), "{fifo}");
}

/// A translated profile loaded by libcontainer does what the file says, with the masked
/// comparison read runc's way.
#[test]
fn a_loaded_profile_refuses_what_it_names() {
    let profile = translate(
        br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 63, "valueTwo": 18, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}"#,
        &HostFacts::host(&crate::runtime::default_capabilities()),
    )
    .unwrap();
    let report = super::super::tests::in_child_under(&profile, || {
        let mut wrong = Vec::new();
        let path = c"/nonexistent-berth-seccomp-test/dir";
        // SAFETY: mkdir, mkdirat, umask and getpid with a valid NUL-terminated path and
        // scalar arguments; none of them touches memory the test owns.
        let results = unsafe {
            [
                (
                    "mkdir",
                    super::super::tests::outcome(libc::mkdir(path.as_ptr(), 0o755)),
                    libc::EPERM,
                ),
                (
                    "mkdirat",
                    super::super::tests::outcome(libc::mkdirat(
                        libc::AT_FDCWD,
                        path.as_ptr(),
                        0o755,
                    )),
                    libc::EPERM,
                ),
                // 0o022 & 0o077 == 0o022: refused with the rule's errno.
                (
                    "umask(022)",
                    super::super::tests::outcome(libc::syscall(libc::SYS_umask, 0o022)),
                    libc::EACCES,
                ),
                (
                    "umask(027)",
                    super::super::tests::outcome(libc::syscall(libc::SYS_umask, 0o027)),
                    0,
                ),
                ("getpid", super::super::tests::outcome(libc::getpid()), 0),
            ]
        };
        for (what, got, expected) in results {
            if got != expected {
                wrong.push(format!("{what}: errno {got}, expected {expected}"));
            }
        }
        wrong
    });
    assert_eq!(report, Vec::<String>::new());
}
