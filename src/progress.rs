//! Progress of the long operations (fetching, replaying, verifying, restoring, pulling,
//! pruning), for whoever shows it. The library only reports; the binary installs a [`Sink`]
//! (a bar on a terminal, a log line every few seconds elsewhere). With nothing installed, a
//! task costs one atomic load.

use std::sync::OnceLock;
use std::time::Duration;

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Versions,
    Files,
    Deltas,
    Objects,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Versions => "versions",
            Unit::Files => "files",
            Unit::Deltas => "deltas",
            Unit::Objects => "objects",
        }
    }
}

/// Shows tasks.
pub trait Sink: Send + Sync + 'static {
    /// A task begins: `label` ("verifying covid-countries"), how many `unit`s it has (when
    /// known), and how long it runs before it is worth showing (a fast fetch shows nothing).
    fn start(
        &self,
        label: String,
        total: Option<u64>,
        unit: Unit,
        show_after: Duration,
    ) -> Box<dyn Task>;
}

/// One running task, as its sink shows it.
pub trait Task: Send + Sync {
    fn inc(&self, n: u64);
    /// Called once, when the task's [`Progress`] is dropped.
    fn finish(&self);
}

static SINK: OnceLock<Box<dyn Sink>> = OnceLock::new();

/// Installs the process's sink; later calls are ignored.
pub fn install(sink: Box<dyn Sink>) {
    let _ = SINK.set(sink);
}

/// A task's handle: counts with [`Progress::inc`], finishes when dropped.
pub struct Progress(Option<Box<dyn Task>>);

/// Starts a task shown at once.
pub fn start(label: impl Into<String>, total: Option<u64>, unit: Unit) -> Progress {
    start_after(label, total, unit, Duration::ZERO)
}

/// Starts a task shown only once it has run for `show_after`.
pub fn start_after(
    label: impl Into<String>,
    total: Option<u64>,
    unit: Unit,
    show_after: Duration,
) -> Progress {
    Progress(
        SINK.get()
            .map(|s| s.start(label.into(), total, unit, show_after)),
    )
}

impl Progress {
    pub fn inc(&self, n: u64) {
        if let Some(t) = &self.0 {
            t.inc(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.finish();
        }
    }
}
