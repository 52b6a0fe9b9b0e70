//! One machine of a library-level test: its own database in a temporary directory, a store,
//! a source and a clock ([`Deps`]), and the dataset it runs ([`DatasetConfig`]). What the
//! tests vary is named; the rest is what `snapsync run` would use.

use std::path::Path;
use std::sync::Arc;

use snapsync::canonical::KeyPointer;
use snapsync::clock::{Clock, SystemClock};
use snapsync::db::Db;
use snapsync::source::{HttpSource, Source, SourceOptions};
use snapsync::store::DynStore;
use snapsync::sync::{self, DatasetConfig, Deps, Report, RunOptions};
use snapsync::validate::Guards;

/// The covid file's key, `/country/key`: the key of every dataset here.
pub fn country_key() -> KeyPointer {
    KeyPointer::parse("/country/key").unwrap()
}

/// Dataset `name` from `url`, keyed by [`country_key`], gzip level 3, the default guards and
/// schedule, no transforms.
pub fn dataset(name: &str, url: &str) -> DatasetConfig {
    DatasetConfig {
        name: name.into(),
        url: url.into(),
        key: country_key(),
        guards: Guards::default(),
        gzip_level: 3,
        schedule: Default::default(),
        transforms: Vec::new(),
        derived: Vec::new(),
    }
}

/// Guards that let a version drop any number of records (test data shrinks on purpose).
pub fn any_shrink() -> Guards {
    Guards {
        max_shrink: 1.0,
        ..Guards::default()
    }
}

/// The HTTP source, retrying `retries` times (`None`: its default).
pub fn http_source(retries: Option<u32>) -> Arc<dyn Source> {
    let opts = match retries {
        Some(retries) => SourceOptions {
            retries,
            ..SourceOptions::default()
        },
        None => SourceOptions::default(),
    };
    Arc::new(HttpSource::new(opts).unwrap())
}

/// [`Deps`] with a new database `DIR/state.db`.
pub async fn deps(
    store: DynStore,
    source: Arc<dyn Source>,
    clock: Arc<dyn Clock>,
    dir: &Path,
) -> Deps {
    let (db, _) = Db::open(&dir.join("state.db")).await.unwrap();
    Deps {
        store,
        db,
        source,
        clock,
    }
}

/// One machine: its own database, the shared store, one dataset.
pub struct Machine {
    pub deps: Deps,
    pub ds: DatasetConfig,
    _db_dir: tempfile::TempDir,
}

impl Machine {
    /// A machine with the HTTP source (no retries) and `clock`.
    pub async fn new(store: DynStore, ds: DatasetConfig, clock: Arc<dyn Clock>) -> Machine {
        let db_dir = tempfile::tempdir().unwrap();
        Machine {
            deps: deps(store, http_source(Some(0)), clock, db_dir.path()).await,
            ds,
            _db_dir: db_dir,
        }
    }

    /// [`Machine::new`] with the system clock.
    pub async fn system(store: DynStore, ds: DatasetConfig) -> Machine {
        Machine::new(store, ds, Arc::new(SystemClock)).await
    }

    pub async fn run(&self) -> Report {
        sync::run_dataset(&self.deps, &self.ds, RunOptions::default()).await
    }
}
