//! The change table: one Parquet file per version (`changes/version=N/part-0.parquet`, Hive
//! style), one row per changed value, so DuckDB, Polars, Spark or Athena query the whole
//! history with `read_parquet('…/changes/*/*.parquet', hive_partitioning = true)`.
//!
//! Columns: `version`, `created_at`, `key`, `path` (a JSON Pointer inside the record), `op`
//! (`added`, `removed`, `appended`, `deleted`, `revised`, `derived`; [`crate::changes`]),
//! `old` and `new` as JSON text (null when absent), and `old_number`/`new_number`, the same
//! values as doubles when they are numbers. Written with parquet's own column writer (no
//! arrow), gzip-compressed.

use std::sync::Arc;

use parquet::basic::{Compression, GzipLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;

use crate::changes::ValueChange;

pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

const SCHEMA: &str = "message changes {
    REQUIRED INT64 version;
    REQUIRED BYTE_ARRAY created_at (UTF8);
    REQUIRED BYTE_ARRAY key (UTF8);
    REQUIRED BYTE_ARRAY path (UTF8);
    REQUIRED BYTE_ARRAY op (UTF8);
    OPTIONAL BYTE_ARRAY old (JSON);
    OPTIONAL BYTE_ARRAY new (JSON);
    OPTIONAL DOUBLE old_number;
    OPTIONAL DOUBLE new_number;
}";

/// Rows per row group: a version's rows are encoded a group at a time as they are told, so
/// the encoder holds one group of them, never the version's list (hundreds of thousands of
/// rows on a day that revises history).
const GROUP_ROWS: usize = 16_384;

/// One version's changes as a Parquet file (no row group when there are no rows).
pub fn encode(
    version: u64,
    created_at: &str,
    rows: &[ValueChange],
) -> Result<Vec<u8>, ParquetError> {
    let mut e = Encoder::new(version, created_at)?;
    for r in rows {
        e.push(r.clone())?;
    }
    e.finish()
}

/// [`encode`] one row at a time: [`Encoder::push`] each, then [`Encoder::finish`].
pub struct Encoder {
    version: u64,
    created_at: String,
    writer: SerializedFileWriter<Vec<u8>>,
    rows: Vec<ValueChange>,
}

impl Encoder {
    pub fn new(version: u64, created_at: &str) -> Result<Self, ParquetError> {
        let schema = Arc::new(parse_message_type(SCHEMA)?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::GZIP(GzipLevel::try_new(1)?))
                .set_created_by(format!("snapsync {}", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(Encoder {
            version,
            created_at: created_at.to_string(),
            writer: SerializedFileWriter::new(Vec::new(), schema, props)?,
            rows: Vec::new(),
        })
    }

    pub fn push(&mut self, row: ValueChange) -> Result<(), ParquetError> {
        self.rows.push(row);
        if self.rows.len() >= GROUP_ROWS {
            self.write_group()?;
        }
        Ok(())
    }

    /// The file: the rows still held as its last row group, then the footer.
    pub fn finish(mut self) -> Result<Vec<u8>, ParquetError> {
        if !self.rows.is_empty() {
            self.write_group()?;
        }
        self.writer.into_inner()
    }

    fn write_group(&mut self) -> Result<(), ParquetError> {
        let (rows, version) = (&self.rows, self.version);
        let text = |s: &str| ByteArray::from(s.as_bytes().to_vec());
        let json = |v: &Option<Value>| v.as_ref().map(|v| text(&v.to_string()));
        let number = |v: &Option<Value>| v.as_ref().and_then(Value::as_f64);
        let mut group = self.writer.next_row_group()?;
        let mut column = 0;
        while let Some(mut col) = group.next_column()? {
            match column {
                0 => {
                    let v = vec![version as i64; rows.len()];
                    col.typed::<Int64Type>().write_batch(&v, None, None)?;
                }
                1..=4 => {
                    let v: Vec<ByteArray> = rows
                        .iter()
                        .map(|r| match column {
                            1 => text(&self.created_at),
                            2 => text(&r.key),
                            3 => text(&r.path),
                            _ => text(r.op.as_str()),
                        })
                        .collect();
                    col.typed::<ByteArrayType>().write_batch(&v, None, None)?;
                }
                5 | 6 => {
                    let side = |r: &ValueChange| {
                        if column == 5 {
                            json(&r.old)
                        } else {
                            json(&r.new)
                        }
                    };
                    write_optional::<ByteArrayType>(&mut col, rows.iter().map(side))?;
                }
                _ => {
                    let side = |r: &ValueChange| {
                        if column == 7 {
                            number(&r.old)
                        } else {
                            number(&r.new)
                        }
                    };
                    write_optional::<DoubleType>(&mut col, rows.iter().map(side))?;
                }
            }
            col.close()?;
            column += 1;
        }
        group.close()?;
        self.rows.clear();
        Ok(())
    }
}

/// An optional column: the present values, and a definition level per row (1 present, 0 null).
fn write_optional<T: parquet::data_type::DataType>(
    col: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: impl Iterator<Item = Option<T::T>>,
) -> Result<(), ParquetError> {
    let (mut present, mut levels) = (Vec::new(), Vec::new());
    for v in values {
        levels.push(i16::from(v.is_some()));
        present.extend(v);
    }
    col.typed::<T>()
        .write_batch(&present, Some(&levels), None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ValueOp;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    use serde_json::json;

    #[test]
    fn rows_read_back_with_their_nulls_and_numbers() {
        let rows = vec![
            ValueChange {
                key: "spain".into(),
                path: "/dates/2020-03-14/new/cases".into(),
                op: ValueOp::Revised,
                old: Some(json!(120)),
                new: Some(json!(131)),
            },
            ValueChange {
                key: "uk".into(),
                path: String::new(),
                op: ValueOp::Removed,
                old: Some(json!({"id": "uk"})),
                new: None,
            },
        ];
        let bytes = encode(7, "2026-01-07T06:00:00.000Z", &rows).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let got: Vec<Vec<(String, Field)>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(n, f)| (n.clone(), f.clone()))
                    .collect()
            })
            .collect();
        let field =
            |row: usize, name: &str| got[row].iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(field(0, "version"), Field::Long(7));
        assert_eq!(field(0, "op"), Field::Str("revised".into()));
        assert_eq!(field(0, "old_number"), Field::Double(120.0));
        assert_eq!(field(0, "new"), Field::Str("131".into()));
        assert_eq!(field(1, "new"), Field::Null);
        assert_eq!(field(1, "old"), Field::Str(r#"{"id":"uk"}"#.into()));
        assert_eq!(field(1, "old_number"), Field::Null);
        let empty = encode(8, "2026-01-08T06:00:00.000Z", &[]).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(empty)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }

    /// Rows pushed one at a time past a row group's size come back all, in order, from a
    /// file of several row groups.
    #[test]
    fn rows_pushed_one_at_a_time_fill_several_row_groups() {
        let n = 2 * GROUP_ROWS + 5;
        let mut e = Encoder::new(3, "2026-01-03T06:00:00.000Z").unwrap();
        for i in 0..n {
            e.push(ValueChange {
                key: format!("k{i}"),
                path: "/n".into(),
                op: ValueOp::Derived,
                old: Some(json!(i)),
                new: (i % 2 == 0).then(|| json!(i + 1)),
            })
            .unwrap();
        }
        let reader = SerializedFileReader::new(bytes::Bytes::from(e.finish().unwrap())).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        assert_eq!(reader.metadata().file_metadata().num_rows(), n as i64);
        let keys: Vec<(String, Field)> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                let get = |name: &str| {
                    let (_, f) = r.get_column_iter().find(|(c, _)| *c == name).unwrap();
                    f.clone()
                };
                let Field::Str(key) = get("key") else {
                    panic!("key is a string")
                };
                (key, get("new_number"))
            })
            .collect();
        for (i, (key, new)) in keys.iter().enumerate() {
            assert_eq!(key, &format!("k{i}"));
            let want = if i % 2 == 0 {
                Field::Double((i + 1) as f64)
            } else {
                Field::Null
            };
            assert_eq!(new, &want, "row {i}");
        }
    }
}
