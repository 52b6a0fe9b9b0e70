//! `replay`: recorded files fed through the normal pipeline, each with the clock at its recorded
//! date, resuming where the store's history ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::clock::FixedClock;
use crate::error::{Error, Result};
use crate::keys::{self};
use crate::source::{Fetched, Source, Validators};
use crate::sync::{self, DatasetConfig, Deps, Report, RunOptions};

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
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
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
