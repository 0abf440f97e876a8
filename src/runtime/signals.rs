//! Signal state that processes started by the agent must not pass on to containers.

use nix::sys::signal::{signal, SigHandler, SigSet, Signal};

/// Clears the signal mask and restores the default disposition of every signal; returns a
/// description of each step that failed (the caller decides where to report them).
///
/// Blocked and ignored signals survive fork and exec, and a container's processes would
/// inherit them: the agent blocks SIGTERM/SIGINT (it waits for them on a thread), the Rust
/// runtime ignores SIGPIPE, and a shell that started the agent in the background ignores
/// SIGINT/SIGQUIT. A container process must start with none of that, or it could never see
/// the SIGTERM of a graceful stop and pipelines would misbehave.
pub(crate) fn reset_signal_handling() -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(err) = SigSet::empty().thread_set_mask() {
        problems.push(format!("cannot clear the signal mask: {err}"));
    }
    for signal_to_reset in Signal::iterator() {
        if matches!(signal_to_reset, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: restoring the default disposition installs no handler code.
        if let Err(err) = unsafe { signal(signal_to_reset, SigHandler::SigDfl) } {
            problems.push(format!("cannot reset {signal_to_reset}: {err}"));
        }
    }
    problems
}
