//! What an answer costs parsed: the most memory `classify` allocates at once for answers at the
//! default byte cap (1 MiB), whatever their shape. The README's arithmetic for the answers in
//! flight at once ("Servers, credentials and the allow-list") rests on this bound: at most the
//! body's size again (serde_json's scratch buffer for one string with escapes, or one byte per
//! level of nesting while it skips a value), plus a small constant.
//!
//! And reading an answer that never ends, through the operator's HTTP client from a server on
//! 127.0.0.1, costs at most the cap plus a small constant (the HTTP client's buffers).
//!
//! One test in its own binary: the allocator counts every thread, so nothing else may run.

mod support;

use std::time::Duration;

use scalewise::metrics::{
    AnswerLimits, Failure, Invalid, ServerConfig, SourceConfig, classify, limits,
};
use support::counting::{self, peak_of};
use support::promdata::{self, Behaviour, FakeServer};

#[global_allocator]
static ALLOCATOR: support::counting::Counting = support::counting::Counting;

const CAP: usize = limits::DEFAULT_MAX_ANSWER_BYTES;

/// `start`, then `repeat` as often as fits, then `end`: a body of at most the cap.
fn fill(start: &str, repeat: &str, end: &str) -> Vec<u8> {
    let n = (CAP - start.len() - end.len()) / repeat.len();
    format!("{start}{}{end}", repeat.repeat(n)).into_bytes()
}

#[test]
fn answers_cost_at_most_the_cap_read_and_the_cap_again_parsed() {
    an_answer_at_the_byte_cap_costs_at_most_its_size_again_parsed();
    reading_an_answer_that_never_ends_costs_at_most_the_cap_and_a_constant();
}

fn reading_an_answer_that_never_ends_costs_at_most_the_cap_and_a_constant() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endless = FakeServer::start(Behaviour::Endless {
            start: r#"{"status":"success","data":{"resultType":"vector","result":["#.into(),
            repeat: r#"{"metric":{"pod":"checkout-1"},"value":[1700000000,"1"]},"#.repeat(1000),
            pause: Duration::ZERO,
            for_at_most: Duration::from_secs(30),
        })
        .await;
        let source = promdata::source_with(SourceConfig {
            default: Some(ServerConfig {
                url: endless.url.parse().unwrap(),
                access: Default::default(),
                tenancy: Default::default(),
            }),
            limits: AnswerLimits::default(),
            ..SourceConfig::default()
        });
        let policy = promdata::policy(
            "shop",
            "15s",
            "    - name: q\n      query: vector(1)\n      scaleOutAbove: 1\n",
        );
        // The first read sets up the connection pool; the second is measured.
        promdata::read_with(&source, &policy, None).await;
        let before = counting::start();
        let observed = promdata::read_with(&source, &policy, None).await;
        let peak = counting::peak_since(before);
        assert_eq!(
            observed[0].result,
            Err(Failure::Invalid(Invalid::TooLarge { limit: CAP }))
        );
        println!(
            "reading an endless answer capped at {}: {} allocated at most",
            limits::size(CAP),
            limits::size(peak)
        );
        // The cap, the HTTP client's read buffer (408 KiB at most) and the chunk being copied.
        assert!(
            peak <= CAP + 1024 * 1024,
            "reading an endless answer allocated {} at once",
            limits::size(peak)
        );
    });
}

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
