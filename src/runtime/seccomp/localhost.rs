//! `Localhost` seccomp profiles: a file below the agent's seccomp root
//! (`<state dir>/seccomp/`, the kubelet's `/var/lib/kubelet/seccomp`) that the pod names by
//! its relative path, read when a container is created and translated into the OCI spec's
//! `linux.seccomp`, as containerd does for the kubelet.
//!
//! The file is Docker's seccomp profile format, the one the Kubernetes tutorial and
//! `moby/profiles/seccomp/default.json` use: `defaultAction`, `defaultErrnoRet`,
//! `architectures` or `archMap`, `flags`, and `syscalls` with `names` (or `name`),
//! `action`, `errnoRet`, `args` and the `includes`/`excludes` filters on architecture,
//! capability and kernel version, applied here the way moby applies them. The file is
//! input the agent does not control, so it is read with a size cap, every field is checked
//! with an error that names it, unknown fields are refused rather than ignored (a typo in
//! `syscalls` would otherwise leave only the default action), and what berth cannot honour
//! (`SCMP_ACT_NOTIFY`, which needs a seccomp agent listening at `listenerPath`) is refused.
//!
//! Names libseccomp does not know are skipped by libcontainer at load, as runc skips them.
//! A masked comparison is written runc's way in the file (`arg & value == valueTwo`) and
//! turned into libcontainer 0.7's reading (`arg & valueTwo == value`, see
//! [`super::clone_without_namespaces`]).

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
    LinuxSyscallBuilder,
};
use serde_json::{Map, Value};

/// The most bytes a profile may have. Docker's default profile is about 20 KiB; a file
/// much larger than that is a mistake or an attack on the agent's memory.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// The largest errno a filter can return (the kernel's `MAX_ERRNO`).
const MAX_ERRNO: u64 = 4095;

/// A system call has at most six arguments.
const MAX_ARG_INDEX: u64 = 5;

/// What the profile's filters (`includes`, `excludes`) are decided against.
#[derive(Clone, Debug)]
pub(crate) struct HostFacts {
    /// The native seccomp architecture (`SCMP_ARCH_AARCH64`), matched against `archMap`.
    pub(crate) native_arch: &'static str,
    /// Go's name of the architecture (`arm64`), which `includes.arches` uses.
    pub(crate) go_arch: &'static str,
    /// The kernel's major and minor version, for `minKernel`; `None` if unknown.
    pub(crate) kernel: Option<(u32, u32)>,
    /// The container's capabilities, for `includes.caps` and `excludes.caps`.
    pub(crate) capabilities: HashSet<Capability>,
}

impl HostFacts {
    /// This machine, for a container with `capabilities`.
    pub(crate) fn host(capabilities: &[Capability]) -> HostFacts {
        let (native_arch, go_arch) = if cfg!(target_arch = "x86_64") {
            ("SCMP_ARCH_X86_64", "amd64")
        } else if cfg!(target_arch = "aarch64") {
            ("SCMP_ARCH_AARCH64", "arm64")
        } else if cfg!(target_arch = "arm") {
            ("SCMP_ARCH_ARM", "arm")
        } else {
            ("SCMP_ARCH_NATIVE", "unknown")
        };
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| parse_kernel_version(&u.release().to_string_lossy()));
        HostFacts {
            native_arch,
            go_arch,
            kernel,
            capabilities: capabilities.iter().copied().collect(),
        }
    }
}

/// The file `relative` names below `root`: a relative path without `..`, as Kubernetes
/// validates `localhostProfile` (checked again here for pods that reached the store
/// another way).
pub fn profile_path(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = Path::new(relative);
    if path.is_absolute() {
        return Err(format!(
            "localhostProfile {relative:?} must be a relative path"
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "localhostProfile {relative:?} must not contain '..'"
        ));
    }
    Ok(root.join(path))
}

/// Reads and translates the profile `relative` names below `root` for a container with
/// `capabilities`. The error names the file, as containerd's does.
pub fn load_localhost_profile(
    root: &Path,
    relative: &str,
    capabilities: &[Capability],
) -> Result<LinuxSeccomp, String> {
    let path = profile_path(root, relative)?;
    let fail = |why: String| format!("cannot load seccomp profile {:?}: {why}", path.display());
    let bytes = read_capped(&path, MAX_PROFILE_BYTES).map_err(fail)?;
    translate(&bytes, &HostFacts::host(capabilities)).map_err(fail)
}

/// A regular file of at most `max_bytes`. Opened non-blocking, so a FIFO put there
/// cannot hang the agent, and checked to be a regular file before it is read.
fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    Ok(bytes)
}

/// `5.15.0-91-generic` → (5, 15).
fn parse_kernel_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The OCI profile for the Docker-format profile `bytes` on `host`.
pub(crate) fn translate(bytes: &[u8], host: &HostFacts) -> Result<LinuxSeccomp, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON profile: {e}"))?;
    let Value::Object(profile) = value else {
        return Err("not a JSON profile: expected an object".to_owned());
    };
    known_fields(
        &profile,
        "",
        &[
            "defaultAction",
            "defaultErrnoRet",
            "architectures",
            "archMap",
            "flags",
            "listenerPath",
            "listenerMetadata",
            "syscalls",
        ],
    )?;
    for field in ["listenerPath", "listenerMetadata"] {
        if profile.get(field).is_some_and(|v| v != "" && !v.is_null()) {
            return Err(format!(
                "{field}: berth runs no seccomp agent to listen for notifications"
            ));
        }
    }
    let default_action = match profile.get("defaultAction") {
        Some(value) => action(value, "defaultAction")?,
        None => return Err("defaultAction: required value".to_owned()),
    };
    let mut builder = LinuxSeccompBuilder::default()
        .default_action(default_action)
        .architectures(architectures(&profile, host)?)
        .syscalls(syscalls(&profile, host)?);
    if let Some(errno) = optional_errno(&profile, "defaultErrnoRet", "defaultErrnoRet")? {
        builder = builder.default_errno_ret(errno);
    }
    if let Some(flags) = profile.get("flags") {
        builder = builder.flags(filter_flags(flags)?);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Refuses a field of `object` (at `path`) not in `allowed`.
fn known_fields(object: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("{}: unknown field", join(path, key))),
        None => Ok(()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("{path}: expected string"))
}

fn list<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], String> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        _ => Err(format!("{path}: expected list")),
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{path}: expected object"))
}

/// An unsigned integer no larger than `max`.
fn unsigned(value: &Value, path: &str, max: u64) -> Result<u64, String> {
    match value.as_u64() {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(format!("{path}: must be at most {max}")),
        None => Err(format!("{path}: expected an unsigned integer")),
    }
}

fn optional_errno(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u32>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        // MAX_ERRNO fits a u32, so the conversion never fails.
        Some(value) => Ok(u32::try_from(unsigned(value, path, MAX_ERRNO)?).ok()),
    }
}

fn action(value: &Value, path: &str) -> Result<LinuxSeccompAction, String> {
    let name = string(value, path)?;
    let action = match name {
        "SCMP_ACT_KILL" => LinuxSeccompAction::ScmpActKill,
        "SCMP_ACT_KILL_THREAD" => LinuxSeccompAction::ScmpActKillThread,
        "SCMP_ACT_KILL_PROCESS" => LinuxSeccompAction::ScmpActKillProcess,
        "SCMP_ACT_TRAP" => LinuxSeccompAction::ScmpActTrap,
        "SCMP_ACT_ERRNO" => LinuxSeccompAction::ScmpActErrno,
        "SCMP_ACT_TRACE" => LinuxSeccompAction::ScmpActTrace,
        "SCMP_ACT_LOG" => LinuxSeccompAction::ScmpActLog,
        "SCMP_ACT_ALLOW" => LinuxSeccompAction::ScmpActAllow,
        "SCMP_ACT_NOTIFY" => {
            return Err(format!(
                "{path}: SCMP_ACT_NOTIFY needs a seccomp agent, and berth runs none"
            ))
        }
        other => return Err(format!("{path}: unknown action {other:?}")),
    };
    Ok(action)
}

fn operator(value: &Value, path: &str) -> Result<LinuxSeccompOperator, String> {
    let op = match string(value, path)? {
        "SCMP_CMP_NE" => LinuxSeccompOperator::ScmpCmpNe,
        "SCMP_CMP_LT" => LinuxSeccompOperator::ScmpCmpLt,
        "SCMP_CMP_LE" => LinuxSeccompOperator::ScmpCmpLe,
        "SCMP_CMP_EQ" => LinuxSeccompOperator::ScmpCmpEq,
        "SCMP_CMP_GE" => LinuxSeccompOperator::ScmpCmpGe,
        "SCMP_CMP_GT" => LinuxSeccompOperator::ScmpCmpGt,
        "SCMP_CMP_MASKED_EQ" => LinuxSeccompOperator::ScmpCmpMaskedEq,
        other => return Err(format!("{path}: unknown operator {other:?}")),
    };
    Ok(op)
}

fn arch(value: &Value, path: &str) -> Result<Arch, String> {
    let name = string(value, path)?;
    name.parse::<Arch>()
        .map_err(|_| format!("{path}: unknown architecture {name:?}"))
}

/// `architectures`, or the native entry of `archMap` with its sub-architectures, as moby
/// expands it. Neither: libseccomp's native architecture only.
fn architectures(profile: &Map<String, Value>, host: &HostFacts) -> Result<Vec<Arch>, String> {
    let listed = list(
        profile.get("architectures").unwrap_or(&Value::Null),
        "architectures",
    )?;
    let map = list(profile.get("archMap").unwrap_or(&Value::Null), "archMap")?;
    if !listed.is_empty() && !map.is_empty() {
        return Err("architectures and archMap are both set; use one of them".to_owned());
    }
    let mut arches = Vec::new();
    for (i, value) in listed.iter().enumerate() {
        arches.push(arch(value, &format!("architectures[{i}]"))?);
    }
    for (i, entry) in map.iter().enumerate() {
        let path = format!("archMap[{i}]");
        let entry = object(entry, &path)?;
        known_fields(entry, &path, &["architecture", "subArchitectures"])?;
        let arch_path = join(&path, "architecture");
        let main = entry
            .get("architecture")
            .ok_or(format!("{arch_path}: required value"))?;
        // Only the native entry is parsed: the others may name architectures this build
        // of berth has no name for, and they do not matter on this machine.
        if string(main, &arch_path)? != host.native_arch {
            continue;
        }
        arches.push(arch(main, &arch_path)?);
        let subs_path = join(&path, "subArchitectures");
        let subs = list(
            entry.get("subArchitectures").unwrap_or(&Value::Null),
            &subs_path,
        )?;
        for (j, sub) in subs.iter().enumerate() {
            arches.push(arch(sub, &format!("{subs_path}[{j}]"))?);
        }
    }
    Ok(arches)
}

fn filter_flags(value: &Value) -> Result<Vec<LinuxSeccompFilterFlag>, String> {
    let mut flags = Vec::new();
    for (i, flag) in list(value, "flags")?.iter().enumerate() {
        let path = format!("flags[{i}]");
        let name = string(flag, &path)?;
        flags.push(
            name.parse::<LinuxSeccompFilterFlag>()
                .map_err(|_| format!("{path}: unknown flag {name:?}"))?,
        );
    }
    Ok(flags)
}

/// The rules of `syscalls` that apply on `host`, in their order.
fn syscalls(profile: &Map<String, Value>, host: &HostFacts) -> Result<Vec<LinuxSyscall>, String> {
    let mut rules = Vec::new();
    let items = list(profile.get("syscalls").unwrap_or(&Value::Null), "syscalls")?;
    for (i, item) in items.iter().enumerate() {
        let path = format!("syscalls[{i}]");
        if let Some(rule) = syscall(object(item, &path)?, &path, host)? {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// One rule, or `None` when its `includes`/`excludes` leave it out on `host`.
fn syscall(
    rule: &Map<String, Value>,
    path: &str,
    host: &HostFacts,
) -> Result<Option<LinuxSyscall>, String> {
    known_fields(
        rule,
        path,
        &[
            "names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes",
        ],
    )?;
    let names = syscall_names(rule, path)?;
    let action_path = join(path, "action");
    let action = action(
        rule.get("action")
            .ok_or(format!("{action_path}: required value"))?,
        &action_path,
    )?;
    let errno = optional_errno(rule, "errnoRet", &join(path, "errnoRet"))?;
    let args_path = join(path, "args");
    let mut args = Vec::new();
    for (j, arg) in list(rule.get("args").unwrap_or(&Value::Null), &args_path)?
        .iter()
        .enumerate()
    {
        args.push(argument(arg, &format!("{args_path}[{j}]"))?);
    }
    let included = match rule.get("includes") {
        Some(filter) => matches(filter, &join(path, "includes"), host, true)?,
        None => true,
    };
    let excluded = match rule.get("excludes") {
        Some(filter) => matches(filter, &join(path, "excludes"), host, false)?,
        None => false,
    };
    if !included || excluded {
        return Ok(None);
    }
    let mut built = LinuxSyscallBuilder::default()
        .names(names)
        .action(action)
        .build()
        .map_err(|e| e.to_string())?;
    built.set_errno_ret(errno);
    // An empty condition list is no condition: libcontainer would hand libseccomp an empty
    // comparison list, which it reads the same, but the spec stays plainer without it.
    built.set_args((!args.is_empty()).then_some(args));
    Ok(Some(built))
}

/// `names`, or the older single `name`; not both, as moby refuses both.
fn syscall_names(rule: &Map<String, Value>, path: &str) -> Result<Vec<String>, String> {
    let names_path = join(path, "names");
    let mut names = Vec::new();
    for (j, name) in list(rule.get("names").unwrap_or(&Value::Null), &names_path)?
        .iter()
        .enumerate()
    {
        let name = string(name, &format!("{names_path}[{j}]"))?;
        if name.is_empty() {
            return Err(format!("{names_path}[{j}]: must not be empty"));
        }
        names.push(name.to_owned());
    }
    if let Some(single) = rule.get("name") {
        let name_path = join(path, "name");
        let single = string(single, &name_path)?;
        if !names.is_empty() {
            return Err(format!(
                "{name_path}: name and names are both set; use one of them"
            ));
        }
        if single.is_empty() {
            return Err(format!("{name_path}: must not be empty"));
        }
        names.push(single.to_owned());
    }
    if names.is_empty() {
        return Err(format!("{names_path}: required value"));
    }
    Ok(names)
}

/// One argument condition. A masked comparison swaps `value` and `valueTwo` into
/// libcontainer 0.7's reading (see the module's documentation).
fn argument(value: &Value, path: &str) -> Result<LinuxSeccompArg, String> {
    let arg = object(value, path)?;
    known_fields(arg, path, &["index", "value", "valueTwo", "op"])?;
    let field = |key: &str| -> Result<&Value, String> {
        arg.get(key)
            .ok_or(format!("{}: required value", join(path, key)))
    };
    let index = unsigned(field("index")?, &join(path, "index"), MAX_ARG_INDEX)?;
    let op = operator(field("op")?, &join(path, "op"))?;
    let first = unsigned(field("value")?, &join(path, "value"), u64::MAX)?;
    let second = match arg.get("valueTwo") {
        Some(v) => unsigned(v, &join(path, "valueTwo"), u64::MAX)?,
        None => 0,
    };
    let (value, value_two) = if op == LinuxSeccompOperator::ScmpCmpMaskedEq {
        (second, first)
    } else {
        (first, second)
    };
    LinuxSeccompArgBuilder::default()
        .index(usize::try_from(index).map_err(|e| e.to_string())?)
        .op(op)
        .value(value)
        .value_two(value_two)
        .build()
        .map_err(|e| e.to_string())
}

/// Whether the `includes` (`all_of` true: every condition must hold) or `excludes`
/// (any condition that holds excludes) filter at `path` matches `host`, as moby reads
/// them: `arches` by Go's architecture name, `caps` against the container's
/// capabilities, `minKernel` against the running kernel.
fn matches(filter: &Value, path: &str, host: &HostFacts, all_of: bool) -> Result<bool, String> {
    let filter = object(filter, path)?;
    known_fields(filter, path, &["arches", "caps", "minKernel"])?;
    let mut verdicts = Vec::new();
    let arches_path = join(path, "arches");
    let arches = list(filter.get("arches").unwrap_or(&Value::Null), &arches_path)?;
    if !arches.is_empty() {
        let mut any = false;
        for (j, a) in arches.iter().enumerate() {
            any |= string(a, &format!("{arches_path}[{j}]"))? == host.go_arch;
        }
        verdicts.push(any);
    }
    let caps_path = join(path, "caps");
    for (j, cap) in list(filter.get("caps").unwrap_or(&Value::Null), &caps_path)?
        .iter()
        .enumerate()
    {
        let name = string(cap, &format!("{caps_path}[{j}]"))?;
        // A name that is no capability is one the container does not hold.
        let held = serde_json::from_value::<Capability>(Value::String(name.to_owned()))
            .is_ok_and(|c| host.capabilities.contains(&c));
        verdicts.push(held);
    }
    if let Some(min) = filter.get("minKernel").filter(|v| !v.is_null()) {
        let min_path = join(path, "minKernel");
        let text = string(min, &min_path)?;
        let wanted = parse_kernel_version(text)
            .ok_or(format!("{min_path}: invalid kernel version {text:?}"))?;
        let running = host.kernel.ok_or(format!(
            "{min_path}: the running kernel's version is unknown"
        ))?;
        verdicts.push(running >= wanted);
    }
    Ok(if all_of {
        verdicts.iter().all(|v| *v)
    } else {
        verdicts.iter().any(|v| *v)
    })
}

#[cfg(test)]
mod tests;
