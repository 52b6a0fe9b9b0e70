//! A delta file written and applied as a stream. [`write_delta`] serializes a [`Planned`] diff,
//! making each changed record's operations only as it writes them; [`apply_delta`] parses a
//! delta file and applies each operation as it is parsed. Between them, a run that revises
//! millions of values never holds its patch: the delta exists as compressed bytes only, and
//! the check that it reproduces the new version reads those very bytes.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::canonical::Document;

use super::apply::{apply_records_into, Compare, Stream};
use super::diff::Planned;
use super::{AppliedRecord, ApplyError, Change, Delta, PatchOp, Summary, VersionRef};

/// Writes the delta file `header` describes, its patch being `header.patch` followed by the
/// operations of each of `planned`'s changed records: byte for byte what serializing the
/// [`Delta`] with the whole patch gives.
pub fn write_delta(
    header: &Delta<'_>,
    planned: Option<&Planned<'_>>,
    out: &mut impl Write,
) -> io::Result<()> {
    /// The fields of [`Delta`], in its order, with a patch made as it is written.
    #[derive(Serialize)]
    struct Written<'a> {
        format: &'a str,
        dataset: &'a str,
        from: &'a VersionRef,
        to: &'a VersionRef,
        created_at: &'a str,
        summary: &'a Summary,
        changes: &'a [Change],
        patch: Patch<'a>,
    }
    struct Patch<'a>(&'a [PatchOp], Option<&'a Planned<'a>>);
    impl Serialize for Patch<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(None)?;
            for op in self.0 {
                seq.serialize_element(op)?;
            }
            let mut ops = Vec::new();
            for k in 0..self.1.map_or(0, Planned::record_count) {
                ops.clear();
                self.1.expect("counted above").record_ops(k, &mut ops);
                for op in &ops {
                    seq.serialize_element(op)?;
                }
            }
            seq.end()
        }
    }
    let written = Written {
        format: &header.format,
        dataset: &header.dataset,
        from: &header.from,
        to: &header.to,
        created_at: &header.created_at,
        summary: &header.summary,
        changes: &header.changes,
        patch: Patch(&header.patch, planned),
    };
    let mut w = io::BufWriter::with_capacity(1 << 16, out);
    serde_json::to_writer(&mut w, &written).map_err(io::Error::other)?;
    w.flush()
}

/// A delta file's bytes, as stored or as text.
#[derive(Clone, Copy)]
pub enum DeltaBytes<'b> {
    Json(&'b [u8]),
    Gzip(&'b [u8]),
}

/// Why [`apply_delta`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The bytes are no delta file (or no gzip of one).
    #[error("not a valid delta: {0}")]
    Format(String),
    /// The file says it goes between other versions than the caller expects.
    #[error("it goes from {} to {}", from.sha256, to.sha256)]
    Versions { from: VersionRef, to: VersionRef },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The patch is not in record-wise order, and the file came from a reader that cannot be
    /// read again ([`check_delta_read`]).
    #[error("the patch is not in record-wise order")]
    Unordered,
}

/// The hashes a delta file must say it goes between, checked before its patch is applied.
#[derive(Clone, Copy)]
pub struct Between<'a> {
    pub from: &'a str,
    pub to: &'a str,
}

impl Between<'_> {
    fn check(&self, from: &VersionRef, to: &VersionRef) -> Result<(), DeltaError> {
        if from.sha256 == self.from && to.sha256 == self.to {
            Ok(())
        } else {
            Err(DeltaError::Versions {
                from: from.clone(),
                to: to.clone(),
            })
        }
    }
}

/// Where [`apply_delta`] writes the result: a writer that can start over (when the patch turns
/// out not to be in record-wise order, it is applied again to the whole document).
pub trait Rewind: Write {
    fn rewind(&mut self);
}

impl Rewind for Vec<u8> {
    fn rewind(&mut self) {
        self.clear();
    }
}

/// What was kept is dropped, and the pipe's reader (a hasher) is cut off: its hash is not the
/// result's.
impl Rewind for crate::pipe::Tee {
    fn rewind(&mut self) {
        self.restart();
    }
}

/// Applies the delta file `bytes` to `base` into `out` and returns the file's other fields (its
/// `patch` empty) and whether the result was written record by record. Then `records`, when
/// asked for, has where each record of the result is (as [`super::apply_document_records`]);
/// else it is left empty. With `between`, a file that says it goes between other versions is
/// refused before its patch is applied.
///
/// A patch in the record-wise order the diff writes is applied as it is parsed: neither the
/// patch nor the file's text is ever held whole (a gzip file is decompressed as it is read).
/// Any other patch is parsed whole and applied to the whole document.
pub fn apply_delta<'d>(
    base: &'d Document,
    bytes: DeltaBytes<'_>,
    between: Option<Between<'_>>,
    out: &mut impl Rewind,
    mut records: Option<&mut Vec<AppliedRecord<'d>>>,
) -> Result<(Delta<'static>, bool), DeltaError> {
    if base.records().is_some() {
        let mut on_record = |r| {
            if let Some(records) = records.as_deref_mut() {
                records.push(r);
            }
        };
        let mut stream = Stream::new(base, out, &mut on_record);
        let parsed = match bytes {
            DeltaBytes::Json(json) => parse(
                &mut serde_json::Deserializer::from_slice(json),
                between,
                &mut stream,
            ),
            DeltaBytes::Gzip(gz) => {
                let reader =
                    io::BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(gz));
                parse(
                    &mut serde_json::Deserializer::from_reader(reader),
                    between,
                    &mut stream,
                )
            }
        };
        let out_of_order = stream.out_of_order;
        match parsed {
            Ok(header) => {
                stream.finish()?;
                return Ok((header, true));
            }
            Err(_) if out_of_order => {
                drop(stream);
                out.rewind();
                if let Some(records) = records.as_deref_mut() {
                    records.clear();
                }
            }
            Err(e) => return Err(e),
        }
    }
    // Not record by record: parsed whole, applied whole.
    let text = match bytes {
        DeltaBytes::Json(json) => Cow::Borrowed(json),
        DeltaBytes::Gzip(gz) => {
            let mut text = Vec::new();
            flate2::read::MultiGzDecoder::new(gz)
                .read_to_end(&mut text)
                .map_err(|e| DeltaError::Format(format!("not gzip: {e}")))?;
            Cow::Owned(text)
        }
    };
    let mut delta: Delta<'static> =
        serde_json::from_slice(&text).map_err(|e| DeltaError::Format(e.to_string()))?;
    if let Some(between) = between {
        between.check(&delta.from, &delta.to)?;
    }
    let patch = std::mem::take(&mut delta.patch);
    let mut on_record = |r| {
        if let Some(records) = records.as_deref_mut() {
            records.push(r);
        }
    };
    let by_record = apply_records_into(base, &patch, out, &mut on_record)?;
    if let Some(records) = records.filter(|_| !by_record) {
        records.clear();
    }
    Ok((delta, by_record))
}

/// [`apply_delta`], comparing the result with `expected` as it streams (no copy, no hash):
/// the file's other fields, and `None` when the result is `expected`, else the offset of the
/// first difference. A publishing run checks the delta it is about to upload this way, from
/// its compressed bytes, against the new version's own bytes.
pub fn check_delta(
    base: &Document,
    bytes: DeltaBytes<'_>,
    expected: &[u8],
) -> Result<(Delta<'static>, Option<usize>), DeltaError> {
    let mut c = Compare::new(expected);
    let (header, _) = apply_delta(base, bytes, None, &mut c, None)?;
    Ok((header, c.differs()))
}

/// [`check_delta`] of a gzip delta file read from `gz` as it comes: a run checks the file it is
/// compressing on another thread this way. A patch out of record-wise order (or a base that is
/// no array of records) cannot be applied in one pass, and a reader cannot be read twice:
/// that is [`DeltaError::Unordered`], for the caller to check the whole file with
/// [`check_delta`] once it is written.
pub fn check_delta_read(
    base: &Document,
    gz: impl Read,
    expected: &[u8],
) -> Result<(Delta<'static>, Option<usize>), DeltaError> {
    if base.records().is_none() {
        return Err(DeltaError::Unordered);
    }
    let mut c = Compare::new(expected);
    let mut stream = Stream::new(base, &mut c, |_| {});
    let reader = io::BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(gz));
    let parsed = parse(
        &mut serde_json::Deserializer::from_reader(reader),
        None,
        &mut stream,
    );
    match parsed {
        Ok(header) => {
            stream.finish()?;
            Ok((header, c.differs()))
        }
        Err(_) if stream.out_of_order => Err(DeltaError::Unordered),
        Err(e) => Err(e),
    }
}

/// Parses a delta file, handing each operation of its patch to `stream`; an operation that
/// does not apply stops the parse with its error, and so does a file that says it goes
/// between other versions than `between`.
fn parse<'de, 'd, R, W, F>(
    de: &mut serde_json::Deserializer<R>,
    between: Option<Between<'_>>,
    stream: &mut Stream<'d, '_, W, F>,
) -> Result<Delta<'static>, DeltaError>
where
    R: serde_json::de::Read<'de>,
    W: Write,
    F: FnMut(AppliedRecord<'d>),
{
    let mut failed = None;
    let header = de::Deserializer::deserialize_map(
        &mut *de,
        DeltaVisitor {
            between,
            failed: &mut failed,
            on_op: &mut |op: PatchOp| stream.op(&op),
        },
    )
    .and_then(|header| de.end().map(|()| header));
    match (header, failed) {
        (_, Some(e)) => Err(e),
        (Ok(header), None) => Ok(header),
        (Err(e), None) => Err(DeltaError::Format(e.to_string())),
    }
}

/// The fields of a delta file, its patch handed to `on_op` one operation at a time. What stops
/// the parse other than a syntax error is left in `failed`.
struct DeltaVisitor<'f, 'b> {
    between: Option<Between<'b>>,
    failed: &'f mut Option<DeltaError>,
    on_op: &'f mut dyn FnMut(PatchOp) -> Result<(), ApplyError>,
}

impl<'de> Visitor<'de> for DeltaVisitor<'_, '_> {
    type Value = Delta<'static>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a delta file (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        fn once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, v: T) -> Result<(), E> {
            match slot.replace(v) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let (mut format, mut dataset, mut from, mut to) = (None, None, None, None);
        let (mut created_at, mut summary, mut changes, mut patch) = (None, None, None, None);
        let stop = |failed: &mut Option<DeltaError>, e: DeltaError| {
            *failed = Some(e);
            <A::Error as de::Error>::custom("stopped")
        };
        while let Some(key) = map.next_key::<Cow<'_, str>>()? {
            match key.as_ref() {
                "format" => once(&mut format, "format", map.next_value()?)?,
                "dataset" => once(&mut dataset, "dataset", map.next_value()?)?,
                "from" => once(&mut from, "from", map.next_value()?)?,
                "to" => once(&mut to, "to", map.next_value()?)?,
                "created_at" => once(&mut created_at, "created_at", map.next_value()?)?,
                "summary" => once(&mut summary, "summary", map.next_value()?)?,
                "changes" => {
                    let list: Vec<Change> = map.next_value()?;
                    once(&mut changes, "changes", list)?
                }
                "patch" => {
                    if patch.is_some() {
                        return Err(de::Error::duplicate_field("patch"));
                    }
                    // The versions go before the patch in every file snapsync writes.
                    if let (Some(between), Some(from), Some(to)) = (self.between, &from, &to) {
                        between.check(from, to).map_err(|e| stop(self.failed, e))?;
                    }
                    let mut failed = None;
                    let parsed = map.next_value_seed(PatchSeed {
                        on_op: &mut |op| (self.on_op)(op).map_err(|e| failed = Some(e)),
                    });
                    if let Some(e) = failed {
                        return Err(stop(self.failed, e.into()));
                    }
                    parsed?;
                    patch = Some(());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = de::Error::missing_field;
        patch.ok_or_else(|| missing("patch"))?;
        let (from, to) = (
            from.ok_or_else(|| missing("from"))?,
            to.ok_or_else(|| missing("to"))?,
        );
        if let Some(between) = self.between {
            between
                .check(&from, &to)
                .map_err(|e| stop(self.failed, e))?;
        }
        Ok(Delta {
            format: format.ok_or_else(|| missing("format"))?,
            dataset: dataset.ok_or_else(|| missing("dataset"))?,
            from,
            to,
            created_at: created_at.ok_or_else(|| missing("created_at"))?,
            summary: summary.ok_or_else(|| missing("summary"))?,
            changes: Cow::Owned(changes.ok_or_else(|| missing("changes"))?),
            patch: Cow::Owned(Vec::new()),
        })
    }
}

/// A patch array, each operation handed on as it is parsed.
struct PatchSeed<'f> {
    on_op: &'f mut dyn FnMut(PatchOp) -> Result<(), ()>,
}

impl<'de> DeserializeSeed<'de> for PatchSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PatchSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON Patch (an array of operations)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(op) = seq.next_element::<PatchOp>()? {
            (self.on_op)(op).map_err(|()| <A::Error as de::Error>::custom("stopped"))?;
        }
        Ok(())
    }
}
