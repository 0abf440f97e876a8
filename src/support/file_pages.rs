//! Dropping a process's mappings of clean file pages, which count in its RSS for as long
//! as they are mapped although they are page cache that costs nothing to map again: the
//! berth binary's code and constants and libc's, mostly mapped by the kernel's
//! fault-around (64 KiB around each page touched) during a burst of work. The agent does
//! it after such bursts (`agent::memory`), the PID namespace holder once it is set up
//! (`runtime::pid_holder`). Heap, stacks and every written page are never touched.

/// One mapping of `/proc/self/smaps` that may be released.
#[derive(Debug, PartialEq)]
pub struct Releasable {
    start: usize,
    end: usize,
    rss_kib: u64,
}

/// Mappings of files that are not writable and hold no private copy of any page
/// (`Anonymous: 0 kB`): their pages can always be read again from the file. A read-only
/// mapping that was written before it was made read-only (relocations under RELRO)
/// holds anonymous pages and is left alone, as are heap, stacks and special mappings.
fn releasable(smaps: &str) -> Vec<Releasable> {
    let mut found = Vec::new();
    let mut current: Option<(Releasable, bool)> = None;
    let mut anonymous_seen = false;
    let mut finish = |current: Option<(Releasable, bool)>, anonymous_seen: bool| {
        if let Some((mapping, eligible)) = current {
            if eligible && anonymous_seen && mapping.rss_kib > 0 {
                found.push(mapping);
            }
        }
    };
    for line in smaps.lines() {
        if let Some(mapping) = mapping_header(line) {
            finish(current.take(), anonymous_seen);
            anonymous_seen = false;
            current = Some(mapping);
            continue;
        }
        let Some((mapping, eligible)) = current.as_mut() else {
            continue;
        };
        let (field, value) = match line.split_once(':') {
            Some((field, rest)) => (field, rest.trim().trim_end_matches(" kB").trim()),
            None => continue,
        };
        let kib = value.parse::<u64>().ok();
        match field {
            "Rss" => mapping.rss_kib = kib.unwrap_or(0),
            // Any private copy, or a figure we cannot read, rules the mapping out.
            "Anonymous" => {
                anonymous_seen = true;
                *eligible &= kib == Some(0);
            }
            "Locked" => *eligible &= kib == Some(0),
            _ => {}
        }
    }
    finish(current, anonymous_seen);
    found
}

/// Parses a mapping's header line: `start-end perms offset dev inode [path]`. Returns
/// the mapping and whether its kind allows a release (a file, not writable).
fn mapping_header(line: &str) -> Option<(Releasable, bool)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let _offset = fields.next()?;
    let device = fields.next()?;
    if !device.contains(':') {
        return None;
    }
    let inode: u64 = fields.next()?.parse().ok()?;
    let path = fields.next().unwrap_or("");
    let eligible = inode != 0 && !perms.contains('w') && path.starts_with('/');
    let mapping = Releasable {
        start,
        end,
        rss_kib: 0,
    };
    Some((mapping, eligible))
}

/// The mappings of clean file pages this process has now (see the module comment).
pub fn releasable_file_pages() -> std::io::Result<Vec<Releasable>> {
    Ok(releasable(&std::fs::read_to_string("/proc/self/smaps")?))
}

/// Drops the mappings of clean file pages `mappings` names (read by
/// [`releasable_file_pages`] from this process, whose file mappings have not changed
/// since); returns how many KiB of RSS that released. Errors on single mappings are
/// skipped: this only ever lowers RSS and never changes what the process sees.
pub fn release(mappings: &[Releasable]) -> u64 {
    let mut released = 0;
    for mapping in mappings {
        let length = mapping.end.saturating_sub(mapping.start);
        // SAFETY: the range is one whole mapping of this process, read from its smaps:
        // a file mapped without write permission and without any private (anonymous)
        // page, and without write permission none can appear since. MADV_DONTNEED only
        // removes its page-table entries; the next access maps the same, unchanged file
        // page again from the page cache. Memory the program owns (heap, stacks,
        // writable or relocated data) is never in such a mapping.
        let result = unsafe {
            libc::madvise(
                mapping.start as *mut libc::c_void,
                length,
                libc::MADV_DONTNEED,
            )
        };
        if result == 0 {
            released += mapping.rss_kib;
        }
    }
    released
}

/// Drops this process's mappings of clean file pages now; returns how many KiB of RSS
/// that released.
pub fn release_file_pages() -> std::io::Result<u64> {
    Ok(release(&releasable_file_pages()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
40b0000-4304000 r--p 00000000 fe:00 5578813                    /usr/bin/berth
Size:               2384 kB
Rss:                1088 kB
Anonymous:             0 kB
Locked:                0 kB
4304000-494f000 r-xp 00253000 fe:00 5578813                    /usr/bin/berth
Rss:                5116 kB
Anonymous:             0 kB
Locked:                0 kB
494f000-4999000 r--p 0089d000 fe:00 5578813                    /usr/bin/berth
Rss:                 296 kB
Anonymous:           296 kB
4999000-499b000 rw-p 008e7000 fe:00 5578813                    /usr/bin/berth
Rss:                   8 kB
Anonymous:             8 kB
50fa2000-51068000 rw-p 00000000 00:00 0                          [heap]
Rss:                 716 kB
Anonymous:           716 kB
7fa5f000-7fbb5000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1220 kB
Anonymous:             0 kB
Locked:                4 kB
7fc60000-7fc62000 r--p 00000000 00:00 0                          [vvar]
Rss:                   0 kB
Anonymous:             0 kB
7e3f0000-7e3f2000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7fc70000-7fc72000 r--s 00000000 fe:00 4242                       /var/lib/berth/db-shm
Rss:                   8 kB
";

    #[test]
    fn only_clean_read_only_file_mappings_are_released() {
        let found = releasable(SMAPS);
        assert_eq!(
            found,
            vec![
                Releasable {
                    start: 0x40b0000,
                    end: 0x4304000,
                    rss_kib: 1088
                },
                Releasable {
                    start: 0x4304000,
                    end: 0x494f000,
                    rss_kib: 5116
                },
            ],
            "relocated data, writable data, heap, locked pages, special mappings and a \
             mapping whose private pages are not reported must stay"
        );
    }

    #[test]
    fn releasing_keeps_code_and_data_working() {
        let table: Vec<u64> = (0..10_000).collect();
        let sum_before: u64 = table.iter().sum();
        release_file_pages().expect("smaps is readable");
        // Code runs and data reads the same after the mappings went.
        let sum_after: u64 = table.iter().sum();
        assert_eq!(sum_before, sum_after);
        assert_eq!(format!("{}", 42), "42");
    }
}
