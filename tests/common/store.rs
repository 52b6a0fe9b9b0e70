//! Stores for library-level tests: one factory for both backends (a temporary directory, or a
//! fresh prefix on the S3 server), [`on_both_stores!`](crate::on_both_stores) to run a test
//! body on each, and [`Intercept`], a wrapper that counts, fails or slows what passes through.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use snapsync::store::file::FileStore;
use snapsync::store::s3::{S3Options, S3Store};
use snapsync::store::{
    ConditionalWrites, DynStore, ListEntry, ObjectMeta, PutMode, PutOptions, Store,
};
use snapsync::{Error, Result};

use super::s3::{s3_env, s3_options, S3Env};

/// A store for one test, on the backend the test runs with.
pub struct StoreUnderTest {
    pub store: DynStore,
    /// The file store's directory (`None` on S3).
    pub dir: Option<tempfile::TempDir>,
    /// `"file"` or `"s3"`.
    pub kind: &'static str,
}

/// `kind` is "file" or "s3"; `None` only when S3 tests are explicitly skipped. On S3 the store
/// works under a fresh prefix `NAME-<random>`, so tests can share the bucket.
pub async fn under_test(kind: &str, name: &str) -> Option<StoreUnderTest> {
    match kind {
        "file" => Some(file()),
        "s3" => s3(name).await,
        other => panic!("no store kind {other:?} (file or s3)"),
    }
}

/// A file store in a new temporary directory.
pub fn file() -> StoreUnderTest {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FileStore::open(dir.path()).expect("open file store");
    StoreUnderTest {
        store: Arc::new(store),
        dir: Some(dir),
        kind: "file",
    }
}

/// The S3 server under a fresh prefix `NAME-<random>`; `None` only when explicitly skipped.
pub async fn s3(name: &str) -> Option<StoreUnderTest> {
    let env = s3_env()?;
    let prefix = format!("{name}-{:016x}", rand::random::<u64>());
    let store = connect_s3(&env, &prefix, &s3_options(&env)).await;
    Some(StoreUnderTest {
        store: Arc::new(store),
        dir: None,
        kind: "s3",
    })
}

/// The S3 server with these options; a failure to connect fails the test, naming the endpoint.
pub async fn connect_s3(env: &S3Env, prefix: &str, opts: &S3Options) -> S3Store {
    S3Store::connect(&env.bucket, prefix, opts)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", env.endpoint))
}

/// Runs each `async fn CASE(StoreUnderTest)` of the calling module twice, as `file::CASE` and
/// `s3::CASE` (the S3 half returns early only when S3 tests are explicitly skipped). With
/// `map = FN`, each case receives `FN(store)`, `FN` being a function of the calling module:
///
/// ```ignore
/// on_both_stores!(name = "history", worker_threads = 2; case_a, case_b);
/// on_both_stores!(name = "suite", worker_threads = 4, map = fixture; case_c);
/// ```
#[macro_export]
macro_rules! on_both_stores {
    (name = $name:literal, worker_threads = $n:tt; $($case:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
                async fn $case() {
                    super::$case($crate::common::store::file()).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
                async fn $case() {
                    if let Some(b) = $crate::common::store::s3($name).await {
                        super::$case(b).await;
                    }
                }
            )*
        }
    };
    (name = $name:literal, worker_threads = $n:tt, map = $map:ident; $($case:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
                async fn $case() {
                    super::$case(super::$map($crate::common::store::file())).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $n)]
                async fn $case() {
                    if let Some(b) = $crate::common::store::s3($name).await {
                        super::$case(super::$map(b)).await;
                    }
                }
            )*
        }
    };
}

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store in front of another that records what passes through and can be told to fail, to
/// wait, or to run something else first (another writer's run) when a put arrives:
///
/// - counting: [`puts`](Self::puts), [`put_bytes`](Self::put_bytes), [`gets`](Self::gets)
///   (the keys, in order), [`reset`](Self::reset);
/// - failing: [`fail_next_put`](Self::fail_next_put) (once, like a crash),
///   [`fail_gets_after`](Self::fail_gets_after) (like a connection lost mid-way),
///   [`ignore_conditions`](Self::ignore_conditions) (a server that ignores If-None-Match and
///   If-Match);
/// - slow: [`delay_puts`](Self::delay_puts); [`before_put`](Self::before_put) runs a future
///   before the first put of a key.
///
/// `clock_skew`, `answered` and `housekeeping` are the trait's defaults, not the inner store's.
pub struct Intercept {
    inner: DynStore,
    puts: AtomicUsize,
    put_bytes: AtomicUsize,
    gets: Mutex<Vec<String>>,
    fail_put: Mutex<Option<String>>,
    fail_gets_after: Mutex<Option<usize>>,
    put_delay: Mutex<Duration>,
    /// Runs once, before the first put of a key ending so is passed on.
    before_put: Mutex<Option<(String, Hook)>>,
    ignore_conditions: AtomicBool,
}

impl Intercept {
    pub fn new(inner: DynStore) -> Arc<Self> {
        Arc::new(Intercept {
            inner,
            puts: AtomicUsize::new(0),
            put_bytes: AtomicUsize::new(0),
            gets: Mutex::new(Vec::new()),
            fail_put: Mutex::new(None),
            fail_gets_after: Mutex::new(None),
            put_delay: Mutex::new(Duration::ZERO),
            before_put: Mutex::new(None),
            ignore_conditions: AtomicBool::new(false),
        })
    }

    /// Puts passed on since the start or the last [`reset`](Self::reset).
    pub fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }
    pub fn put_bytes(&self) -> usize {
        self.put_bytes.load(Ordering::SeqCst)
    }
    /// The key of every get, in order (failed ones included).
    pub fn gets(&self) -> Vec<String> {
        self.gets.lock().unwrap().clone()
    }
    pub fn gets_of(&self, suffix: &str) -> usize {
        self.gets
            .lock()
            .unwrap()
            .iter()
            .filter(|k| k.ends_with(suffix))
            .count()
    }
    /// Zeroes the counts (not what is set to fail).
    pub fn reset(&self) {
        self.puts.store(0, Ordering::SeqCst);
        self.put_bytes.store(0, Ordering::SeqCst);
        self.gets.lock().unwrap().clear();
    }

    /// The next put of a key ending in `suffix` fails ("injected crash", not retryable) without
    /// reaching the store; later puts go through.
    pub fn fail_next_put(&self, suffix: &str) {
        *self.fail_put.lock().unwrap() = Some(suffix.to_string());
    }
    /// Every get after the first `ok` ones (counted from the start) fails ("connection reset",
    /// retryable).
    pub fn fail_gets_after(&self, ok: usize) {
        *self.fail_gets_after.lock().unwrap() = Some(ok);
    }
    /// Every put waits this long (tokio time) before it is passed on.
    pub fn delay_puts(&self, delay: Duration) {
        *self.put_delay.lock().unwrap() = delay;
    }
    /// Conditional puts become plain overwrites, and the store says it does not know whether
    /// it honours conditions.
    pub fn ignore_conditions(&self) {
        self.ignore_conditions.store(true, Ordering::SeqCst);
    }
    /// `hook` runs (and is awaited) before the first put of a key ending in `suffix`.
    pub fn before_put(&self, suffix: &str, hook: impl Future<Output = ()> + Send + 'static) {
        *self.before_put.lock().unwrap() = Some((suffix.to_string(), Box::pin(hook)));
    }
}

#[async_trait::async_trait]
impl Store for Intercept {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn prefix(&self) -> &str {
        self.inner.prefix()
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>> {
        let seen = {
            let mut gets = self.gets.lock().unwrap();
            gets.push(key.to_string());
            gets.len() - 1
        };
        if self
            .fail_gets_after
            .lock()
            .unwrap()
            .is_some_and(|ok| seen >= ok)
        {
            return Err(Error::Store {
                store: self.url().into(),
                key: key.into(),
                reason: "connection reset".into(),
                retryable: true,
            });
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, body: Bytes, mut opts: PutOptions) -> Result<String> {
        let fail = {
            let mut slot = self.fail_put.lock().unwrap();
            let hit = slot.as_deref().is_some_and(|k| key.ends_with(k));
            if hit {
                *slot = None;
            }
            hit
        };
        if fail {
            return Err(Error::Store {
                store: self.url().into(),
                key: key.into(),
                reason: "injected crash".into(),
                retryable: false,
            });
        }
        let hook = {
            let mut slot = self.before_put.lock().unwrap();
            match slot.take() {
                Some((suffix, hook)) if key.ends_with(&suffix) => Some(hook),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(hook) = hook {
            hook.await;
        }
        let delay = *self.put_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.put_bytes.fetch_add(body.len(), Ordering::SeqCst);
        if self.ignore_conditions.load(Ordering::SeqCst) {
            opts.mode = PutMode::Overwrite;
        }
        self.inner.put(key, body, opts).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        self.inner.list(prefix).await
    }
    fn conditional_writes(&self) -> ConditionalWrites {
        if self.ignore_conditions.load(Ordering::SeqCst) {
            ConditionalWrites::Unknown
        } else {
            self.inner.conditional_writes()
        }
    }
}
