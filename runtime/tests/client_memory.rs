//! Memory does not grow with the entity's size: the client parses a page, yields its rows and
//! drops it before requesting the next. Measured with a counting global allocator (this binary
//! holds this one test; the in-process fake server's allocations count too, and it also works
//! page by page).
#![cfg(feature = "client")]

mod client_common;

use client_common::*;
use fake_exact::Config;
use futures_util::TryStreamExt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Peak heap growth (bytes above the level at the start) while streaming `n` rows.
async fn peak_while_paging(c: &odata_runtime::client::Client, n: u64) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let s = c
        .rows::<GlAccount>(DIV)
        .endpoint("bulk/Financial/GLAccounts")
        .stream();
    futures_util::pin_mut!(s);
    let mut count = 0u64;
    while let Some(row) = s.try_next().await.expect("row") {
        std::hint::black_box(&row);
        count += 1;
    }
    assert_eq!(count, n);
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

#[tokio::test]
async fn memory_does_not_grow_with_the_number_of_pages() {
    let h2 = start(Config {
        rows: [("GLAccounts".to_string(), 2_000u64)].into(),
        ..Config::default()
    });
    let h20 = start(Config {
        rows: [("GLAccounts".to_string(), 20_000u64)].into(),
        ..Config::default()
    });
    let c2 = client(&h2, store_for(&h2), fast_options());
    let c20 = client(&h20, store_for(&h20), fast_options());
    // warm up connection pools, tracing callsites and lazy statics
    peak_while_paging(&c2, 2_000).await;
    peak_while_paging(&c20, 20_000).await;
    let small = peak_while_paging(&c2, 2_000).await;
    let large = peak_while_paging(&c20, 20_000).await;
    println!("peak heap growth: 2 pages {small} B, 20 pages {large} B");
    assert!(
        large < small * 3 / 2 + 256 * 1024,
        "20 pages: {large} B, 2 pages: {small} B"
    );
}
