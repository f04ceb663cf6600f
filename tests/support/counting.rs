//! The system allocator, counting the bytes allocated now and the peak since the last reset. A
//! test binary that measures memory declares it its global allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: support::counting::Counting = support::counting::Counting;
//! ```
//!
//! It counts every thread, so such a binary runs one measuring test at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        NOW.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = NOW.fetch_add(grown, Ordering::SeqCst) + grown;
                PEAK.fetch_max(now, Ordering::SeqCst);
            } else {
                NOW.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
            }
        }
        q
    }
}

/// The bytes allocated now.
pub fn allocated() -> usize {
    NOW.load(Ordering::SeqCst)
}

/// Starts measuring a peak: the bytes allocated now, for [`peak_since`].
pub fn start() -> usize {
    let before = NOW.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    before
}

/// The most bytes allocated at once since [`start`] returned `before`, beyond `before`.
pub fn peak_since(before: usize) -> usize {
    PEAK.load(Ordering::SeqCst).saturating_sub(before)
}

/// The most bytes `f` had allocated at once beyond what was allocated before it.
pub fn peak_of(f: impl FnOnce()) -> usize {
    let before = start();
    f();
    peak_since(before)
}
