//! `replay`: recorded files fed through the normal pipeline, each with the clock at its recorded
//! date, resuming where the store's history ends.
//!
//! [`replay_files`] is a pipeline: while one file uploads and commits, the next ones are read,
//! canonicalized, compressed, and diffed from the file before them, on the other core(s); and
//! each run's document is the next run's previous version, never read back from the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::canonical::Document;
use crate::clock::FixedClock;
use crate::error::{Error, Result};
use crate::keys::{self};
use crate::source::{Fetched, Source, Validators};
use crate::sync::{self, DatasetConfig, Deps, Outcome, Report, RunOptions};

/// One recorded dataset file and the date it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    pub path: PathBuf,
    pub date: OffsetDateTime,
}

/// Parses `2021-03-04` (midnight UTC) or an RFC 3339 time.
pub fn parse_date(text: &str) -> Option<OffsetDateTime> {
    if let Some(t) = keys::parse_rfc3339(text) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &fmt)
        .ok()
        .map(|d| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc())
}

/// The first `YYYY-MM-DD` in a file name.
pub fn date_in_name(path: &Path) -> Option<OffsetDateTime> {
    let name = path.file_name()?.to_str()?;
    let b = name.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let s = name.get(i..i + 10)?;
        let shape = s.bytes().enumerate().all(|(j, c)| match j {
            4 | 7 => c == b'-',
            _ => c.is_ascii_digit(),
        });
        if shape {
            parse_date(s)
        } else {
            None
        }
    })
}

/// Dates the files (from `dates`, in the order given, or from their names) and sorts them.
/// Two files of one date are an error: the history could not say which came first.
pub fn date_files(
    paths: &[PathBuf],
    dates: Option<&[String]>,
) -> std::result::Result<Vec<RecordedFile>, String> {
    let mut files = Vec::with_capacity(paths.len());
    if let Some(dates) = dates {
        if dates.len() != paths.len() {
            return Err(format!(
                "--dates gives {} dates for {} files",
                dates.len(),
                paths.len()
            ));
        }
        for (p, d) in paths.iter().zip(dates) {
            let date = parse_date(d)
                .ok_or_else(|| format!("--dates: {d:?} is not a date (YYYY-MM-DD or RFC 3339)"))?;
            files.push(RecordedFile {
                path: p.clone(),
                date,
            });
        }
    } else {
        for p in paths {
            let date = date_in_name(p).ok_or_else(|| {
                format!(
                    "{}: no date (YYYY-MM-DD) in its name; name the files like 2021-03-04.json or pass --dates",
                    p.display()
                )
            })?;
            files.push(RecordedFile {
                path: p.clone(),
                date,
            });
        }
    }
    files.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.path.cmp(&b.path)));
    if let Some(w) = files.windows(2).find(|w| w[0].date == w[1].date) {
        return Err(format!(
            "{} and {} are both dated {}",
            w[0].path.display(),
            w[1].path.display(),
            keys::rfc3339(w[0].date)
        ));
    }
    Ok(files)
}

/// The files of the arguments: a directory gives its `*.json` files (not recursively).
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        // A path that is not there is a mistake on the command line (exit 2), not a failure.
        let meta = std::fs::metadata(input).map_err(|e| {
            Error::Config(format!(
                "{}: {}; expected recorded dataset files or directories of them",
                input.display(),
                match e.kind() {
                    std::io::ErrorKind::NotFound => "does not exist".to_string(),
                    _ => e.to_string(),
                }
            ))
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|e| Error::io(input, e))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

/// A `Source` that serves one recorded file as the dataset's body and passes every other URL
/// (a joined table) to the real source.
struct RecordedSource {
    path: PathBuf,
    url: String,
    max_bytes: u64,
    others: Arc<dyn Source>,
}

#[async_trait::async_trait]
impl Source for RecordedSource {
    async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        if url != self.url {
            return self.others.fetch(url, validators).await;
        }
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| Error::io(&self.path, e))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(Error::TooLarge {
                url: self.path.display().to_string(),
                limit: self.max_bytes,
            });
        }
        Ok(Fetched::Body {
            bytes,
            validators: Validators::default(),
            content_type: None,
        })
    }

    async fn fetch_file(&self, url: &str, validators: &Validators) -> Result<Fetched> {
        if url != self.url {
            return self.others.fetch_file(url, validators).await;
        }
        self.fetch(url, validators).await
    }
}

/// Files dated after `after` (the store's newest version): replaying again resumes where the
/// history ends instead of appending old data as new versions.
pub fn files_after(
    files: Vec<RecordedFile>,
    after: Option<OffsetDateTime>,
) -> (Vec<RecordedFile>, usize) {
    let total = files.len();
    let kept: Vec<RecordedFile> = files
        .into_iter()
        // At created_at's precision: a file dated within a millisecond of the newest version
        // made that version.
        .filter(|f| after.is_none_or(|a| keys::to_millis(f.date) > a))
        .collect();
    let skipped = total - kept.len();
    (kept, skipped)
}

/// Files prepared ahead of the one running: two keep both cores of a small machine busy while a
/// run waits for the disk (each in flight holds about three times the file's size in memory).
const LOOKAHEAD: usize = 2;

/// Where [`replay_files`] is, for the caller's progress and output.
pub enum Progress<'a> {
    /// This file's run starts.
    Starting(&'a RecordedFile),
    /// This file's run is over.
    Finished(&'a RecordedFile, &'a Report),
}

/// What [`replay_files`] did; files after a failed one are not run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub changed: usize,
    pub unchanged: usize,
    pub failed: usize,
}

/// Replays `files` in order (each as [`replay_file`] would), stopping after the first that
/// fails: going on would publish the next day's data as if that day had not happened. `each`
/// hears of every file as it starts and ends; its error stops the replay and is returned.
///
/// Each prepared file hands its document to the next one's task, which diffs from it: the run
/// uses that diff when the store's newest version is indeed the file before (it is, unless
/// another writer got in between), and diffs again otherwise. The first file has no document
/// before it in memory: its run diffs from the store's newest version.
pub async fn replay_files<E>(
    deps: &Deps,
    ds: &DatasetConfig,
    files: &[RecordedFile],
    max_bytes: u64,
    force: bool,
    mut each: impl FnMut(Progress<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<Replayed, E> {
    let mut handoff: Option<tokio::sync::oneshot::Receiver<Arc<Document>>> = None;
    let mut prepare = |f: &RecordedFile| {
        let (deps, ds, f) = (deps.clone(), ds.clone(), f.clone());
        let (give, next) = tokio::sync::oneshot::channel();
        let base = handoff.replace(next);
        tokio::spawn(async move {
            let mut prepared = prepare_file(&deps, &ds, &f, max_bytes).await?;
            // Nobody is waiting when this is the last file, or when the replay stopped.
            let _ = give.send(prepared.document().clone());
            if let Some(rx) = base {
                // No document when the file before failed to prepare: its run reports why.
                if let Ok(base) = rx.await {
                    prepared.diff_against(&ds, base).await;
                }
            }
            Ok::<_, Error>(prepared)
        })
    };
    let mut ahead: std::collections::VecDeque<_> =
        files.iter().take(LOOKAHEAD).map(&mut prepare).collect();
    let stop = |ahead: &std::collections::VecDeque<tokio::task::JoinHandle<_>>| {
        ahead.iter().for_each(tokio::task::JoinHandle::abort);
    };
    let mut previous = None;
    let mut done = Replayed::default();
    for (i, f) in files.iter().enumerate() {
        if let Err(e) = each(Progress::Starting(f)) {
            stop(&ahead);
            return Err(e);
        }
        // A file that failed to prepare runs the ordinary way, which reports why.
        let prepared = match ahead.pop_front() {
            Some(task) => task.await.ok().and_then(Result::ok).map(Arc::new),
            None => None,
        };
        ahead.extend(files.get(i + LOOKAHEAD).map(&mut prepare));
        let opts = RunOptions {
            force,
            prepared,
            previous: previous.clone(),
            skip_body_cache: i + 1 < files.len(),
            ..RunOptions::default()
        };
        let r = replay_file(deps, ds, f, max_bytes, opts).await;
        if r.document.is_some() {
            previous = r.document.clone();
        }
        if let Err(e) = each(Progress::Finished(f, &r)) {
            stop(&ahead);
            return Err(e);
        }
        match r.outcome {
            Outcome::Changed => done.changed += 1,
            Outcome::Unchanged | Outcome::NotModified => done.unchanged += 1,
            Outcome::Failed | Outcome::Abandoned => {
                done.failed += 1;
                stop(&ahead);
                break;
            }
        }
    }
    Ok(done)
}

/// Feeds one recorded file through the normal pipeline, with the clock at its recorded date.
pub async fn replay_file(
    deps: &Deps,
    ds: &DatasetConfig,
    file: &RecordedFile,
    max_bytes: u64,
    opts: RunOptions,
) -> Report {
    let (deps, ds) = replay_setup(deps, ds, file, max_bytes);
    sync::run_dataset(&deps, &ds, opts).await
}

/// Reads and canonicalizes a recorded file ahead of its [`replay_file`] (see
/// [`sync::prepare`]).
pub async fn prepare_file(
    deps: &Deps,
    ds: &DatasetConfig,
    file: &RecordedFile,
    max_bytes: u64,
) -> Result<sync::Prepared> {
    let (deps, ds) = replay_setup(deps, ds, file, max_bytes);
    sync::prepare(&deps, &ds).await
}

/// A recorded file's run: its date is the clock and the file is the dataset's body.
fn replay_setup(
    deps: &Deps,
    ds: &DatasetConfig,
    file: &RecordedFile,
    max_bytes: u64,
) -> (Deps, DatasetConfig) {
    let url = format!("file://{}", file.path.display());
    let deps = Deps {
        store: deps.store.clone(),
        db: deps.db.clone(),
        source: Arc::new(RecordedSource {
            path: file.path.clone(),
            url: url.clone(),
            max_bytes,
            others: deps.source.clone(),
        }),
        clock: Arc::new(FixedClock(file.date)),
    };
    let ds = DatasetConfig { url, ..ds.clone() };
    (deps, ds)
}
