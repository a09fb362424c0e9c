//! Counts glibc's thread arenas in another process, from its memory map
//! (tests/arenas.rs and the soak in examples/bench/soak.rs). 64-bit only:
//! the heap size below is glibc's for 64-bit targets.
#![cfg(target_pointer_width = "64")]

/// glibc's size and alignment of a thread arena's heap on 64-bit
/// (HEAP_MAX_SIZE: twice the largest mmap threshold, 2 × 32 MB).
const ARENA_HEAP: u64 = 64 << 20;

/// Thread arenas of process `pid`, from its memory map: each is an
/// anonymous reservation of ARENA_HEAP bytes at an ARENA_HEAP-aligned
/// address (its used part read-write, the rest `---p`). The main arena is
/// the brk heap and is not counted.
pub fn thread_arenas(pid: u32) -> std::io::Result<usize> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    // (start, end) of anonymous mappings: no path after the inode.
    let anon: Vec<(u64, u64)> = maps
        .lines()
        .filter(|l| l.split_whitespace().count() == 5)
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    let mut count = 0;
    for (i, &(start, first_end)) in anon.iter().enumerate() {
        if start % ARENA_HEAP != 0 {
            continue;
        }
        let mut end = first_end;
        for &(a, b) in &anon[i + 1..] {
            if end - start >= ARENA_HEAP || a != end {
                break;
            }
            end = b;
        }
        if end - start == ARENA_HEAP {
            count += 1;
        }
    }
    Ok(count)
}
