//! Hostile and broken rule modules: each failure is typed, readable, and confined to the
//! module that caused it — the engine keeps serving other modules afterwards.

use std::sync::Arc;
use std::time::Duration;

use kmsync::rules::{
    CallError, FilterInput, Hook, LoadError, RuleEngine, RuleLimits, RuleModule, TransformInput,
};
use serde_json::json;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/rules/{name}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The test rule written in Rust with the SDK (`rules/testing/hostile`), built by build.rs.
fn hostile_rust_rule() -> Vec<u8> {
    std::fs::read(concat!(env!("OUT_DIR"), "/kmsync_test_hostile_rule.wasm")).unwrap()
}

fn engine(limits: RuleLimits) -> RuleEngine {
    RuleEngine::new(limits).unwrap()
}

fn input(config: serde_json::Value) -> TransformInput {
    let mut i = kmsync_guest_sdk::testing::secret(r#"{"user":"u"}"#);
    i.config = config;
    i
}

async fn assert_still_serving(engine: &RuleEngine) {
    let ok = engine.load(&fixture("ok.wat")).await.unwrap();
    let out = ok.transform(&input(json!(null))).await.unwrap();
    assert_eq!(out.data["greeting"].expose(), b"hello");
}

async fn load(engine: &RuleEngine, name: &str) -> Arc<RuleModule> {
    engine.load(&fixture(name)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_times_out_at_the_deadline_and_the_engine_keeps_serving() {
    let engine = engine(RuleLimits {
        deadline: Duration::from_millis(50),
        epoch_tick: Duration::from_millis(5),
        ..Default::default()
    });
    let looping = load(&engine, "loop.wat").await;
    let err = looping.transform(&input(json!(null))).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Timeout { deadline, .. } if *deadline == Duration::from_millis(50)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "rule loop exceeded its 50 ms deadline");
    assert_eq!(err.metric_label(), "timeout");
    assert_still_serving(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_deadline_is_100_ms() {
    let engine = engine(RuleLimits::default());
    let err = load(&engine, "loop.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "rule loop exceeded its 100 ms deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_past_the_cap_is_out_of_memory() {
    let engine = engine(RuleLimits {
        memory_bytes: 1 << 20,
        output_bytes: 1 << 19,
        ..Default::default()
    });
    let bomb = load(&engine, "memory_bomb.wat").await;
    let raw = bomb.call_json(Hook::Transform, &json!({})).await;
    let err = raw.result.unwrap_err();
    assert!(
        matches!(err, CallError::OutOfMemory { limit_bytes, .. } if limit_bytes == 1 << 20),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rule memory-bomb ran out of memory (limit 1 MiB)"
    );
    assert_eq!(
        raw.stats.peak_memory_bytes,
        1 << 20,
        "grew up to the cap, not past it"
    );
    assert_still_serving(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_panic_keeps_its_message() {
    let engine = engine(RuleLimits::default());
    let err = load(&engine, "panic.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    match &err {
        CallError::Panic { message, .. } => {
            assert_eq!(message, "index out of bounds: the len is 3 but 7!")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "rule panicky panicked: index out of bounds: the len is 3 but 7!"
    );
    assert_still_serving(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_without_a_message_names_the_trap() {
    let engine = engine(RuleLimits::default());
    let err = load(&engine, "trap.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule trap trapped: wasm `unreachable` instruction executed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_is_refused_before_it_is_copied() {
    let engine = engine(RuleLimits::default());
    let err = load(&engine, "huge_output.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::OutputTooLarge {
                bytes: 2_097_152,
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rule huge-output returned 2097152 bytes from transform, over the limit of 1048576 bytes"
    );
    assert_still_serving(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_output_is_a_clear_error() {
    let engine = engine(RuleLimits::default());
    let err = load(&engine, "bad_json.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "bad_output");
    assert_eq!(
        err.to_string(),
        "rule bad-json returned an invalid transform result: EOF while parsing a value at line 1 column 19"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_errors_keep_their_code_and_message() {
    let engine = engine(RuleLimits::default());
    let err = load(&engine, "rule_error.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    assert_eq!(err.rule_code(), Some("no_such_field"));
    assert_eq!(
        err.to_string(),
        "rule rule-error failed: no_such_field: field x is missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_enforces_key_names_filter_subsets_and_rotate_decisions() {
    let engine = engine(RuleLimits::default());
    let m = load(&engine, "outputs.wat").await;

    let err = m.transform(&input(json!(null))).await.unwrap_err();
    assert!(
        matches!(&err, CallError::InvalidKey { key, .. } if key == "a/b"),
        "{err:?}"
    );

    let filter_input = FilterInput {
        keys: vec!["a".into(), "b".into()],
        context: kmsync_guest_sdk::testing::context(),
        config: json!(null),
    };
    let err = m.filter(&filter_input).await.unwrap_err();
    assert!(
        matches!(&err, CallError::UnknownKey { key, .. } if key == "zzz"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rule outputs kept the key \"zzz\", which was not among the keys it was given"
    );

    let rotate_input = serde_json::from_value(json!({
        "candidate": {"versionId": "v2", "digest": "d2"},
        "now": "2026-01-01T00:00:00Z",
        "context": kmsync_guest_sdk::testing::context(),
    }))
    .unwrap();
    let err = m.rotate(&rotate_input).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule outputs returned an invalid rotate result: `defer` needs requeueAfter (seconds)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_are_refused_at_load_with_distinct_readable_errors() {
    let engine = engine(RuleLimits::default());
    let meta = r#"(@custom "kmsync.metadata" "{\"name\":\"m\",\"version\":\"1\",\"abi\":\"1.0\",\"hooks\":[\"transform\"]}")"#;
    let abi = r#"(func (export "kmsync_abi_v1")) (func (export "kmsync_alloc") (param i32) (result i32) (i32.const 0)) (func (export "transform") (param i32 i32) (result i64) (i64.const 0))"#;
    let wat = |body: &str| wat::parse_str(format!("(module {body})")).unwrap();

    let cases: Vec<(&str, Vec<u8>, LoadError, &str)> = vec![
        (
            "WASI import",
            fixture("wasi.wat"),
            LoadError::ForeignImport {
                module: "wasi_snapshot_preview1".into(),
                name: "fd_write".into(),
            },
            "no WASI",
        ),
        (
            "env import",
            wat(&format!(
                r#"(import "env" "abort" (func)) (memory (export "memory") 1) {abi} {meta}"#
            )),
            LoadError::ForeignImport {
                module: "env".into(),
                name: "abort".into(),
            },
            "only from `kmsync`",
        ),
        (
            "unknown host function",
            wat(&format!(
                r#"(import "kmsync" "http_get" (func (param i32))) (memory (export "memory") 1) {abi} {meta}"#
            )),
            LoadError::UnknownHostFunction {
                name: "http_get".into(),
            },
            "does not provide",
        ),
        (
            "host function with the wrong type",
            wat(&format!(
                r#"(import "kmsync" "log" (func (param i32))) (memory (export "memory") 1) {abi} {meta}"#
            )),
            LoadError::ImportType {
                name: "log".into(),
                expected: "func (i32, i32, i32) -> ()".into(),
                found: "func (i32) -> ()".into(),
            },
            "kmsync.log",
        ),
        (
            "imported memory",
            wat(&format!(
                r#"(import "kmsync" "memory" (memory 1)) {abi} {meta}"#
            )),
            LoadError::UnknownHostFunction {
                name: "memory".into(),
            },
            "kmsync.memory",
        ),
        (
            "missing marker",
            fixture("no_marker.wat"),
            LoadError::MissingMarker,
            "kmsync_abi_v1",
        ),
        (
            "ABI v2 module",
            fixture("abi_v2.wat"),
            LoadError::UnsupportedAbi {
                found: "2.0".into(),
            },
            "ABI 2.0",
        ),
        (
            "ABI v2 marker with v1 metadata",
            wat(&format!(
                r#"(memory (export "memory") 1) (func (export "kmsync_abi_v2")) (func (export "transform") (param i32 i32) (result i64) (i64.const 0)) {meta}"#
            )),
            LoadError::UnsupportedAbi { found: "2".into() },
            "ABI 2",
        ),
        (
            "missing metadata",
            wat(&format!(r#"(memory (export "memory") 1) {abi}"#)),
            LoadError::MissingMetadata,
            "kmsync.metadata",
        ),
        (
            "declared hook not exported",
            wat(&format!(
                r#"(memory (export "memory") 1) {abi} (@custom "kmsync.metadata" "{{\"name\":\"m\",\"version\":\"1\",\"abi\":\"1.0\",\"hooks\":[\"transform\",\"filter\"]}}")"#
            )),
            LoadError::MissingHook { hook: Hook::Filter },
            "filter",
        ),
        (
            "hook with the wrong signature",
            wat(&format!(
                r#"(memory (export "memory") 1) (func (export "kmsync_abi_v1")) (func (export "kmsync_alloc") (param i32) (result i32) (i32.const 0)) (func (export "transform") (param i32) (result i32) (i32.const 0)) {meta}"#
            )),
            LoadError::ExportType {
                name: "transform".into(),
                expected: "func (i32, i32) -> (i64)".into(),
                found: "func (i32) -> (i32)".into(),
            },
            "transform",
        ),
        (
            "no memory",
            wat(&format!("{abi} {meta}")),
            LoadError::MissingExport {
                name: "memory".into(),
            },
            "memory",
        ),
        (
            "initial memory over the cap",
            wat(&format!(r#"(memory (export "memory") 1024) {abi} {meta}"#)),
            LoadError::MemoryTooLarge {
                initial_bytes: 64 << 20,
                limit: 32 << 20,
            },
            "initial memory",
        ),
        (
            "precompiled native code",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(),
            LoadError::Precompiled,
            "never accepted",
        ),
        (
            "a text file",
            b"(module)".to_vec(),
            LoadError::NotWasm,
            "not a WebAssembly module",
        ),
        (
            "a component",
            b"\0asm\x0d\0\x01\0".to_vec(),
            LoadError::Component,
            "component",
        ),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for (what, bytes, expected, needle) in cases {
        let err = engine.load(&bytes).await.unwrap_err();
        assert_eq!(err, expected, "{what}");
        let message = err.to_string();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(messages.insert(message), "{what}: message not distinct");
    }

    // Truncated bytes: wasmtime's validation message.
    let mut truncated = fixture("ok.wat");
    truncated.truncate(truncated.len() - 10);
    let err = engine.load(&truncated).await.unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Invalid { .. } | LoadError::BadMetadata { .. }
        ),
        "{err:?}"
    );
    assert_still_serving(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_compile_once_and_failures_are_cached_too() {
    let engine = engine(RuleLimits::default());
    let bytes = fixture("ok.wat");
    let (a, b) = tokio::join!(engine.load(&bytes), engine.load(&bytes));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(Arc::ptr_eq(&a, &b));
    assert!(Arc::ptr_eq(&a, &engine.load(&bytes).await.unwrap()));
    assert_eq!(engine.cached_modules(), 1);
    assert_eq!(a.sha256_hex().len(), 64);
    // Looked up by digest (rule bundles name modules by sha256): no bytes, no hashing.
    assert!(Arc::ptr_eq(&a, &engine.get(&a.sha256()).unwrap().unwrap()));
    assert!(engine.get(&[0; 32]).is_none());

    let wasi = fixture("wasi.wat");
    assert!(engine.load(&wasi).await.is_err());
    assert!(engine.load(&wasi).await.is_err());
    assert_eq!(engine.cached_modules(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_cache_is_bounded() {
    let engine = engine(RuleLimits {
        max_cached_modules: 2,
        ..Default::default()
    });
    let ok = String::from_utf8(
        std::fs::read(format!(
            "{}/tests/fixtures/rules/ok.wat",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let mut held = Vec::new();
    for i in 0..4 {
        let renamed = ok.replace(r#"\"name\":\"ok\""#, &format!(r#"\"name\":\"ok{i}\""#));
        held.push(
            engine
                .load(&wat::parse_str(&renamed).unwrap())
                .await
                .unwrap(),
        );
        assert!(engine.cached_modules() <= 2);
    }
    // Evicted modules stay usable by whoever holds them.
    let out = held[0].transform(&input(json!(null))).await.unwrap();
    assert_eq!(out.data.len(), 1);
    assert_eq!(held[0].name(), "ok0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_bound_wait_for_a_slot() {
    let engine = engine(RuleLimits {
        max_concurrent_calls: 1,
        ..Default::default()
    });
    let ok = load(&engine, "ok.wat").await;
    let i = input(json!(null));
    let calls = (0..16).map(|_| ok.transform(&i));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().data["greeting"].expose(), b"hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_log_lines_are_captured_with_stats() {
    let engine = engine(RuleLimits::default());
    let raw = load(&engine, "ok.wat")
        .await
        .call_json(Hook::Transform, &json!({}))
        .await;
    assert_eq!(raw.result.unwrap(), json!({"data": {"greeting": "hello"}}));
    assert_eq!(raw.stats.logs.len(), 1);
    assert_eq!(raw.stats.logs[0].message, "hello world");
    assert_eq!(raw.stats.peak_memory_bytes, 2 * 65536);
    assert_eq!(raw.stats.output_bytes, 36);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_guest_panic_reaches_the_caller_with_its_message_and_location() {
    // The second call must succeed: a deadline no loaded machine misses.
    let engine = engine(RuleLimits {
        deadline: Duration::from_secs(10),
        ..Default::default()
    });
    let rule = engine.load(&hostile_rust_rule()).await.unwrap();
    let err = rule
        .transform(&input(json!({"panic": "custom failure 42"})))
        .await
        .unwrap_err();
    match &err {
        CallError::Panic { message, .. } => {
            assert!(message.starts_with("custom failure 42 (at "), "{message}");
            assert!(message.contains("src/lib.rs"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let ok = rule.transform(&input(json!(null))).await.unwrap();
    assert_eq!(ok.data["echo"].expose(), br#"{"user":"u"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_guest_is_stopped_by_each_limit() {
    // A generous deadline for the calls that must succeed (a loaded CI machine is slow);
    // the spinning call gets a short one.
    let engine = engine(RuleLimits {
        deadline: Duration::from_secs(2),
        ..Default::default()
    });
    let rule = engine.load(&hostile_rust_rule()).await.unwrap();
    let short = self::engine(RuleLimits {
        deadline: Duration::from_millis(50),
        epoch_tick: Duration::from_millis(5),
        ..Default::default()
    });
    let spinning = short.load(&hostile_rust_rule()).await.unwrap();

    let err = rule
        .transform(&input(json!({"allocate": 64u64 << 20})))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::OutOfMemory { .. }), "{err:?}");

    let out = rule
        .transform(&input(json!({"allocate": 8u64 << 20})))
        .await
        .unwrap();
    assert_eq!(out.data["allocated"].expose(), b"8388608");

    let err = spinning
        .transform(&input(json!({"spin": true})))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");

    let err = rule
        .transform(&input(json!({"output": 2u64 << 20})))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::OutputTooLarge { .. }), "{err:?}");

    let raw = rule
        .call_json(
            Hook::Transform,
            &serde_json::to_value(input(json!({"log": 100}))).unwrap(),
        )
        .await;
    assert!(raw.result.is_ok());
    assert_eq!(raw.stats.logs.len(), 32);
    assert_eq!(raw.stats.dropped_logs, 68);
    assert_eq!(raw.stats.logs[31].message, "line 31");

    // Still serving after all of that.
    assert!(rule.transform(&input(json!(null))).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_the_module_lacks_is_a_typed_error() {
    let engine = engine(RuleLimits::default());
    let ok = load(&engine, "ok.wat").await;
    let err = ok
        .rotate(
            &serde_json::from_value(json!({
                "candidate": {"versionId": "v", "digest": "d"},
                "now": "2026-01-01T00:00:00Z",
                "context": kmsync_guest_sdk::testing::context(),
            }))
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule ok does not implement the rotate hook"
    );
    // validate_config is optional: a module without it accepts any config.
    ok.validate_config(&json!({"anything": 1})).await.unwrap();
}

#[test]
fn the_engine_needs_a_runtime_and_consistent_limits() {
    let err = RuleEngine::new(RuleLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "RuleEngine::new must be called inside a tokio runtime"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let err = RuleEngine::new(RuleLimits {
            max_concurrent_calls: 0,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid rule limits: max_concurrent_calls must be between 1 and 1024"
        );
    });
}

#[tokio::test]
async fn a_current_thread_runtime_still_enforces_the_deadline() {
    // The ticker shares the only runtime thread with the caller: guest calls run on blocking
    // threads, so it keeps ticking.
    let engine = engine(RuleLimits {
        deadline: Duration::from_millis(30),
        epoch_tick: Duration::from_millis(5),
        ..Default::default()
    });
    let err = load(&engine, "loop.wat")
        .await
        .transform(&input(json!(null)))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
}

/// Everything `tracing` emits in this test binary, from any thread (rule calls run on the
/// blocking pool, so a thread-local subscriber would miss them).
fn global_log() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || GlobalWriter(log))
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
}

struct GlobalWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for GlobalWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_log_lines_reach_the_host_log_only_when_asked() {
    let log = global_log();
    // ok.wat logs its 11-byte line at offset 512; give each engine its own line.
    let module = |line: &str| {
        let source = std::fs::read_to_string(format!(
            "{}/tests/fixtures/rules/ok.wat",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(line.len(), "hello world".len());
        wat::parse_str(source.replace("\"hello world\"", &format!("{line:?}"))).unwrap()
    };
    let quiet = engine(RuleLimits {
        log_to_host: false,
        ..Default::default()
    });
    let raw = quiet
        .load(&module("quiet-7c1f0"))
        .await
        .unwrap()
        .call_json(Hook::Transform, &json!({}))
        .await;
    assert!(raw.result.is_ok());
    // Still kept for the caller (`kmsync rules run` prints them)...
    assert_eq!(raw.stats.logs[0].message, "quiet-7c1f0");
    let loud = engine(RuleLimits::default());
    let raw = loud
        .load(&module("loud-7c1f0x"))
        .await
        .unwrap()
        .call_json(Hook::Transform, &json!({}))
        .await;
    assert!(raw.result.is_ok());
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    // ...but only the default engine's line reached the host log.
    assert!(text.contains("loud-7c1f0x"), "{text}");
    assert!(!text.contains("quiet-7c1f0"), "{text}");
}
