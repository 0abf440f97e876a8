//! Process-wide allocator tuning both daemons apply at start-up (issue 10: resident
//! memory on a Pi Zero 2). Dropping clean file pages after a burst of work is in
//! [`super::file_pages`].

/// glibc gives each thread that allocates its own malloc arena; with the executor, the
/// blocking pool and the helper threads that multiplies a daemon's resident memory for
/// no gain. An agent, idle most of the time, keeps one (every arena holds on to its own
/// free pages: one arena fewer was 0.4 MiB less with the pod network's DNS threads and
/// per-pass Service tables, docs/benchmarks.md); the coordinator, which serves hundreds
/// of boards at once, keeps two.
pub fn limit_malloc_arenas(arenas: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = arenas;
}

/// Gives the heap's free pages back to the kernel (glibc keeps them after a burst of
/// work: a DNS flood, a hundred Endpoints parsed). Only lowers resident memory.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns unused heap memory to the kernel; it takes the
    // allocator's own locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
