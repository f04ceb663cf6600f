//! What an answer costs parsed: the most memory `classify` allocates at once for answers at the
//! default byte cap (1 MiB), whatever their shape. The README's arithmetic for the answers in
//! flight at once ("Servers, credentials and the allow-list") rests on this bound: at most the
//! body's size again (serde_json's scratch buffer for one string with escapes, or one byte per
//! level of nesting while it skips a value), plus a small constant.
//!
//! One test in its own binary: the allocator counts every thread, so nothing else may run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use scalewise::metrics::{classify, limits};

/// The system allocator, counting the bytes allocated now and the peak since the last reset.
struct Counting;

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

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes `f` had allocated at once beyond what was allocated before it.
fn peak_of(f: impl FnOnce()) -> usize {
    let before = NOW.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst).saturating_sub(before)
}

const CAP: usize = limits::DEFAULT_MAX_ANSWER_BYTES;

/// `start`, then `repeat` as often as fits, then `end`: a body of at most the cap.
fn fill(start: &str, repeat: &str, end: &str) -> Vec<u8> {
    let n = (CAP - start.len() - end.len()) / repeat.len();
    format!("{start}{}{end}", repeat.repeat(n)).into_bytes()
}

#[test]
fn an_answer_at_the_byte_cap_costs_at_most_its_size_again_parsed() {
    let vector = r#"{"status":"success","data":{"resultType":"vector","result":["#;
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        (
            "series up to the series cap, then more",
            fill(
                vector,
                r#"{"metric":{"__name__":"up","pod":"checkout-7d9f8b6c5d-x2x4z"},"value":[1700000000,"1"]},"#,
                r#"{"metric":{},"value":[1,"1"]}]}}"#,
            ),
        ),
        (
            "one series with a huge label set",
            fill(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"#,
                r#""label_with_a_long_name":"and a value with \"escapes\"","#,
                r#""a":"b"},"value":[1,"5"]}]}}"#,
            ),
        ),
        (
            "a server error of 1 MiB with escapes",
            fill(
                r#"{"status":"error","errorType":"execution","error":""#,
                r#"\"x\""#,
                r#""}"#,
            ),
        ),
        ("a label nested half a million deep", {
            let start =
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"#;
            let end = r#"},"value":[1,"5"]}]}}"#;
            let depth = (CAP - start.len() - end.len()) / 2;
            format!("{start}{}{}{end}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }),
        (
            "a range vector",
            fill(
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":["#,
                r#"[1700000000,"1"],"#,
                r#"[1,"1"]]}]}}"#,
            ),
        ),
        (
            "not JSON at all",
            fill("<html>", "<p>login</p>\n", "</html>"),
        ),
    ];
    let mut report = Vec::new();
    for (what, body) in &shapes {
        assert!(body.len() <= CAP, "{what}: {} bytes", body.len());
        let mut result = None;
        let peak = peak_of(|| {
            result = Some(classify(200, Some("application/json"), body, 100));
        });
        let result = result.unwrap();
        let result: String = format!("{result:?}").chars().take(80).collect();
        report.push(format!(
            "{what}: {} parsed with {} allocated at most: {result}",
            limits::size(body.len()),
            limits::size(peak)
        ));
        assert!(
            peak <= body.len() + 64 * 1024,
            "{what}: parsing {} allocated {} at once",
            limits::size(body.len()),
            limits::size(peak)
        );
    }
    // What the answers cost (shown with `cargo test --test answer_memory -- --nocapture`).
    println!("{}", report.join("\n"));
}
