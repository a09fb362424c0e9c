//! glibc's malloc arenas stay bounded once printcam has set its limit: new
//! threads that allocate at the same time share the existing arenas
//! instead of getting one each (src/malloc.rs); and the real binary sets it.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

#[path = "support/served.rs"]
mod served;

#[cfg(target_pointer_width = "64")]
#[path = "support/arenas.rs"]
mod arenas;

use std::sync::{Arc, Barrier};
use std::thread;

/// How many arenas glibc has, from malloc_info's `<heap nr=…>` elements.
fn heaps_here() -> usize {
    let mut buf: *mut libc::c_char = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: open_memstream writes the buffer pointer and length into our
    // locals; malloc_info writes to the stream; after fclose the buffer is
    // ours to read and free.
    let xml = unsafe {
        let stream = libc::open_memstream(&mut buf, &mut len);
        assert!(!stream.is_null(), "open_memstream failed");
        assert_eq!(libc::malloc_info(0, stream), 0, "malloc_info failed");
        assert_eq!(libc::fclose(stream), 0);
        let bytes = std::slice::from_raw_parts(buf.cast::<u8>(), len).to_vec();
        libc::free(buf.cast());
        bytes
    };
    String::from_utf8_lossy(&xml).matches("<heap nr=").count()
}

#[test]
fn threads_allocating_at_once_get_no_new_arenas() {
    printcam::malloc::bound_arenas();
    let before = heaps_here();
    const THREADS: usize = 8;
    let all_alive = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let all_alive = Arc::clone(&all_alive);
            thread::Builder::new()
                .name(format!("alloc{i}"))
                .spawn(move || {
                    // Every thread allocates while all the others are alive,
                    // which is when glibc would give each its own arena.
                    let mut kept: Vec<Vec<u8>> = (0..64).map(|n| vec![0u8; 512 + n]).collect();
                    all_alive.wait();
                    kept.extend((0..64).map(|n| vec![1u8; 4096 + n]));
                    all_alive.wait();
                    kept.len()
                })
                .expect("spawn")
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("join"), 128);
    }
    let after = heaps_here();
    let bound = before.max(printcam::malloc::ARENA_MAX as usize);
    assert!(
        after <= bound,
        "{THREADS} threads made glibc go from {before} to {after} arenas (bound {bound})"
    );
}

#[cfg(target_pointer_width = "64")]
#[test]
fn the_server_keeps_one_arena_while_serving_several_clients() {
    let served = served::Served::start(&["--demo"], &[]);
    // Each connection is a thread of its own, which without the limit
    // gets an arena of its own at its first allocation.
    let mut viewers: Vec<support::MjpegReader> = (0..4)
        .map(|_| support::MjpegReader::open(served.addr, "/printers/0/camera/stream?fps=5"))
        .collect();
    for v in viewers.iter_mut() {
        assert!(support::is_jpeg(&v.next_part().expect("a frame")));
    }
    let snapshot = support::request(served.addr, "GET", "/printers/0/camera/snapshot", &[], None);
    assert_eq!(snapshot.status, 200);
    let arenas = arenas::thread_arenas(served.child.id()).expect("its memory map");
    drop(viewers);
    served.stop();
    assert_eq!(arenas, 0, "printcam made {arenas} thread arenas");
}
