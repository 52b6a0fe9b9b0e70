//! Tables a join reads: CSV, JSON, and spreadsheets (`.xlsx`, `.xls`, `.ods`, through
//! `calamine`), as users receive them — a title above the header row, `NA` in empty cells,
//! numbers typed as text, dates as Excel serials — turned into typed rows.
//!
//! The decision to know: a column's type comes from the *whole* column, never from one cell.
//! A column of numbers with `NA` in it is a column of numbers with nulls; a column where one
//! cell is `"1,234"` is a column of strings, every value of it. Per-cell guessing (what a CSV
//! reader does) makes joined values change type from one record to the next. Cells that are
//! missing-value markers (`NA`, `#N/A`, …, configurable) become `null` first; an explicit
//! `types` entry wins over inference and a value it cannot take is an error naming the cell.
//!
//! What enters the pipeline fingerprint is [`Table::content_sha256`], a hash of the typed rows,
//! not of the file: re-saving a workbook (new zip timestamps, new styles) changes nothing.
//!
//! An `.xlsx` is read cell by cell (`worksheet_cells_reader`), so a sheet whose cells span a
//! huge area costs what its cells cost; `.xls` and `.ods` go through calamine's dense range.
//!
//! The code is cut by the steps of a read: `text` turns CSV and JSON into a grid of cells,
//! `sheets` does the same for workbooks (with their limits and password check), and `typed`
//! types the grid's columns into a [`Table`] (with [`cell_name`] and [`snake_case`]). This file
//! holds the options and the types, and [`read`], which picks the reader.

use std::collections::BTreeMap;

use serde_json::Value;

/// The markers a cell may hold to say "no value" (after trimming), unless configured.
pub const DEFAULT_MISSING: &[&str] = &["", "NA", "N/A", "n/a", "#N/A", "null"];

/// A joined table's file is refused above this many bytes unless `max_bytes` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// ... and above this many non-empty cells (a small zip can hold a great many).
pub const MAX_CELLS: usize = 5_000_000;

/// A zipped workbook (`.xlsx`, `.ods`) may unpack to this many bytes at most: calamine reads
/// the shared strings whole, so a small file of repeated text could fill the memory.
pub const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableFormat {
    Csv,
    Json,
    Xlsx,
    Xls,
    Ods,
}

impl TableFormat {
    pub const NAMES: &'static str = "\"csv\", \"json\", \"xlsx\", \"xls\" or \"ods\"";

    /// The `format = "…"` of a configuration.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "csv" => TableFormat::Csv,
            "json" => TableFormat::Json,
            "xlsx" | "xlsm" => TableFormat::Xlsx,
            "xls" => TableFormat::Xls,
            "ods" => TableFormat::Ods,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Json => "json",
            TableFormat::Xlsx => "xlsx",
            TableFormat::Xls => "xls",
            TableFormat::Ods => "ods",
        }
    }

    pub fn is_spreadsheet(self) -> bool {
        matches!(
            self,
            TableFormat::Xlsx | TableFormat::Xls | TableFormat::Ods
        )
    }

    /// From the extension of a path or of a URL's path (query and fragment ignored).
    pub fn from_name(source: &str) -> Option<Self> {
        let path = source.split(['?', '#']).next().unwrap_or(source);
        let file = path.rsplit('/').next().unwrap_or(path);
        let (_, ext) = file.rsplit_once('.')?;
        Self::parse(ext)
    }

    /// From a `Content-Type` (parameters ignored); `None` for the generic ones
    /// (`application/octet-stream`, `text/plain`) that say nothing.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let t = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(match t.as_str() {
            "text/csv" | "application/csv" => TableFormat::Csv,
            "application/json" | "text/json" => TableFormat::Json,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.ms-excel.sheet.macroenabled.12" => TableFormat::Xlsx,
            "application/vnd.ms-excel" => TableFormat::Xls,
            "application/vnd.oasis.opendocument.spreadsheet" => TableFormat::Ods,
            _ => return None,
        })
    }

    /// From the first bytes, for the binary containers only (a zip is `.ods` when its
    /// `mimetype` entry says so, else `.xlsx`; an OLE compound file is `.xls`). Text formats
    /// are never guessed.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"PK\x03\x04") {
            // ODF puts an uncompressed `mimetype` entry first (header: 30 bytes + name).
            let ods = bytes.get(30..38) == Some(b"mimetype")
                && bytes.get(38..38 + 46).is_some_and(|t| {
                    t.starts_with(b"application/vnd.oasis.opendocument.spreadsheet")
                });
            Some(if ods {
                TableFormat::Ods
            } else {
                TableFormat::Xlsx
            })
        } else if bytes.starts_with(CFB_MAGIC) {
            Some(TableFormat::Xls)
        } else {
            None
        }
    }
}

const CFB_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// Which sheet of a workbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetRef {
    Name(String),
    /// 1-based, as a person counts tabs.
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Number,
    Boolean,
    String,
}

impl ColumnType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "integer" | "int" => ColumnType::Integer,
            "number" | "float" => ColumnType::Number,
            "boolean" | "bool" => ColumnType::Boolean,
            "string" | "text" => ColumnType::String,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::String => "string",
        }
    }
}

/// How column names are written on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameStyle {
    #[default]
    AsIs,
    /// `"Population_total"` -> `population_total`, `"GDP per capita"` -> `gdp_per_capita`.
    SnakeCase,
}

/// How to read one table.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    pub sheet: Option<SheetRef>,
    /// 1-based row of the column names; `None`: the first row with a non-empty cell.
    pub header_row: Option<u32>,
    pub missing: Vec<String>,
    /// Column (final name) -> type, winning over inference.
    pub types: BTreeMap<String, ColumnType>,
    pub column_names: NameStyle,
    /// Header as written -> name to use.
    pub rename: BTreeMap<String, String>,
    /// Columns read literally: only an empty cell is missing there (an ISO code column, where
    /// `NA` is Namibia).
    pub literal: Vec<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            sheet: None,
            header_row: None,
            missing: DEFAULT_MISSING.iter().map(|s| s.to_string()).collect(),
            types: BTreeMap::new(),
            column_names: NameStyle::AsIs,
            rename: BTreeMap::new(),
            literal: Vec::new(),
        }
    }
}

/// A table read and typed: named columns, rows of JSON values (`null` where missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The sheet read (spreadsheets only).
    pub sheet: Option<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// The row number (1-based, as the file shows it) of each row, for messages.
    pub row_numbers: Vec<u32>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// `"COUNTRY", "Continent", …` for messages (the first 12).
    pub fn column_list(&self) -> String {
        let mut s: Vec<String> = self
            .columns
            .iter()
            .take(12)
            .map(|c| format!("{c:?}"))
            .collect();
        if self.columns.len() > 12 {
            s.push(format!("… ({} in all)", self.columns.len()));
        }
        s.join(", ")
    }

    /// The canonical content hash: the typed columns and rows as canonical JSON.
    pub fn content_sha256(&self) -> String {
        let v = Value::Array(vec![
            Value::from(self.columns.clone()),
            Value::Array(self.rows.iter().map(|r| Value::Array(r.clone())).collect()),
        ]);
        crate::canonical::sha256_hex(&crate::canonical::to_canonical_vec(&v))
    }
}

/// A cell as read, before the column's type is known.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// ISO 8601 (a spreadsheet date, time or duration).
    Date(String),
    /// A JSON table's value that is neither scalar nor string (kept as is).
    Json(Value),
    /// A spreadsheet error value (`#DIV/0!`).
    Error(String),
}

/// Reads `bytes` as a `format` table. Errors are one line and name the sheet and cell; the
/// caller prefixes the table's source.
pub fn read(bytes: &[u8], format: TableFormat, opts: &ReadOptions) -> Result<Table, String> {
    if opts.sheet.is_some() && !format.is_spreadsheet() {
        return Err(format!(
            "sheet is set, but a {} table has no sheets",
            format.name()
        ));
    }
    let grid = match format {
        TableFormat::Csv => csv_grid(bytes)?,
        TableFormat::Json => return json_table(bytes, opts),
        TableFormat::Xlsx => xlsx_grid(bytes, opts.sheet.as_ref())?,
        TableFormat::Xls | TableFormat::Ods => range_grid(bytes, format, opts.sheet.as_ref())?,
    };
    typed(grid, opts, format == TableFormat::Csv)
}

/// Rows of cells by absolute position (row and column 0-based), as read.
struct Grid {
    sheet: Option<String>,
    rows: Vec<(u32, Vec<(u32, Cell)>)>,
}

impl Grid {
    fn at(&self) -> String {
        match &self.sheet {
            Some(s) => format!("sheet {s:?} "),
            None => String::new(),
        }
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

mod sheets;
mod text;
mod typed;

use sheets::{range_grid, xlsx_grid};
use text::{csv_grid, json_table};
use typed::typed;
pub use typed::{cell_name, snake_case};

#[cfg(test)]
mod tests;
