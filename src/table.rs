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

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use calamine::{Data, DataRef, Reader};
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

fn csv_grid(bytes: &[u8]) -> Result<Grid, String> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(hint) = crate::canonical::utf16_hint(&text[..text.len().min(64)]) {
        return Err(format!("CSV must be UTF-8; the file {hint}"));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let mut rows = Vec::new();
    for (i, rec) in reader.byte_records().enumerate() {
        let rec = rec.map_err(|e| format!("CSV line {}: {e}", i + 1))?;
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        let mut cells = Vec::with_capacity(rec.len());
        for (c, field) in rec.iter().enumerate() {
            let s = std::str::from_utf8(field).map_err(|e| {
                format!(
                    "CSV line {line} column {}: not UTF-8 (byte 0x{:02X}); save the file as UTF-8",
                    c + 1,
                    field[e.valid_up_to()]
                )
            })?;
            if !s.trim().is_empty() {
                cells.push((c as u32, Cell::Text(s.to_string())));
            }
        }
        rows.push((line.saturating_sub(1) as u32, cells));
    }
    Ok(Grid { sheet: None, rows })
}

fn json_table(bytes: &[u8], opts: &ReadOptions) -> Result<Table, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Array(items) = v else {
        return Err("a JSON table must be an array of objects".into());
    };
    // Columns in order of first appearance; cells typed as JSON types them.
    let mut columns: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(format!("item {i} of the JSON table is not an object"));
        };
        let mut cells = Vec::with_capacity(m.len());
        for (k, v) in m {
            let c = *index.entry(k.clone()).or_insert_with(|| {
                columns.push(k);
                (columns.len() - 1) as u32
            });
            let cell = match v {
                Value::Null => Cell::Empty,
                Value::String(s) => Cell::Text(s),
                Value::Bool(b) => Cell::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Cell::Int(i),
                    None => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                other => Cell::Json(other),
            };
            cells.push((c, cell));
        }
        rows.push((i as u32 + 1, cells));
    }
    // A header row made of the member names, so one path types every format.
    let header = columns
        .into_iter()
        .enumerate()
        .map(|(c, name)| (c as u32, Cell::Text(name)))
        .collect();
    rows.insert(0, (0, header));
    let grid = Grid { sheet: None, rows };
    let opts = ReadOptions {
        header_row: Some(1),
        ..opts.clone()
    };
    typed(grid, &opts, false)
}

/// Opens a workbook of a known format from bytes, with the password check's message.
fn sheet_names_and<T>(
    name: &str,
    available: Vec<String>,
    want: Option<&SheetRef>,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let chosen = match want {
        None => available
            .first()
            .cloned()
            .ok_or("the workbook has no sheets")?,
        Some(SheetRef::Name(n)) => available
            .iter()
            .find(|s| *s == n)
            .or_else(|| available.iter().find(|s| s.eq_ignore_ascii_case(n)))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{name} has no sheet {n:?}; its sheets: {}",
                    quoted_list(&available)
                )
            })?,
        Some(SheetRef::Index(i)) => available.get(i - 1).cloned().ok_or_else(|| {
            format!(
                "{name} has {} sheet(s), so no sheet {i}; its sheets: {}",
                available.len(),
                quoted_list(&available)
            )
        })?,
    };
    f(&chosen)
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// calamine's error reading one sheet, on one line.
fn sheet_error(sheet: &str, e: &dyn std::fmt::Display) -> String {
    format!(
        "sheet {sheet:?}: {}",
        crate::source::one_line(&e.to_string())
    )
}

fn too_many_cells(sheet: &str) -> String {
    format!("sheet {sheet:?} has more than {MAX_CELLS} cells; a joined table must be smaller")
}

/// calamine's error, in a user's words where we know them.
fn workbook_error(format: TableFormat, e: impl std::fmt::Display, bytes: &[u8]) -> String {
    let text = e.to_string();
    if text.contains("password") || text.contains("Password") || encrypted(bytes) {
        return "the workbook is password protected (encrypted); save a copy without a password"
            .into();
    }
    let what = match format {
        TableFormat::Xlsx if !bytes.starts_with(b"PK") => {
            return format!(
                "not an .xlsx workbook (an .xlsx is a zip file; this one starts with {:?})",
                String::from_utf8_lossy(&bytes[..bytes.len().min(8)])
            )
        }
        TableFormat::Xls if !bytes.starts_with(CFB_MAGIC) => {
            return "not an .xls workbook (it does not start with the OLE2 signature)".into()
        }
        TableFormat::Ods if !bytes.starts_with(b"PK") => {
            return "not an .ods spreadsheet (an .ods is a zip file)".into()
        }
        _ => format!("unreadable .{} workbook", format.name()),
    };
    format!("{what}: {}", crate::source::one_line(&text))
}

/// An OOXML file encrypted with a password is an OLE2 compound file holding an
/// `EncryptedPackage` stream (its directory names are UTF-16LE).
fn encrypted(bytes: &[u8]) -> bool {
    const NAME: &[u8] = b"E\0n\0c\0r\0y\0p\0t\0e\0d\0P\0a\0c\0k\0a\0g\0e\0";
    bytes.starts_with(CFB_MAGIC) && bytes.windows(NAME.len()).any(|w| w == NAME)
}

/// Refuses a zip whose members, as its directory declares them, unpack to more than
/// [`MAX_UNPACKED`]; a file that is no zip is left to calamine's message.
fn check_unpacked(bytes: &[u8]) -> Result<(), String> {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(());
    };
    let mut total = 0u64;
    for i in 0..zip.len() {
        if let Ok(f) = zip.by_index_raw(i) {
            total = total.saturating_add(f.size());
        }
    }
    if total > MAX_UNPACKED {
        return Err(format!(
            "the workbook unpacks to {total} bytes, over the {MAX_UNPACKED}-byte limit for a joined table"
        ));
    }
    Ok(())
}

fn xlsx_grid(bytes: &[u8], want: Option<&SheetRef>) -> Result<Grid, String> {
    check_unpacked(bytes)?;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| workbook_error(TableFormat::Xlsx, e, bytes))?;
    let names = wb.sheet_names();
    sheet_names_and("the workbook", names, want, |sheet| {
        let mut reader = wb
            .worksheet_cells_reader(sheet)
            .map_err(|e| sheet_error(sheet, &e))?;
        let mut rows: Vec<(u32, Vec<(u32, Cell)>)> = Vec::new();
        let mut count = 0usize;
        loop {
            let cell = reader.next_cell().map_err(|e| sheet_error(sheet, &e))?;
            let Some(cell) = cell else { break };
            let (r, c) = cell.get_position();
            let value = from_data_ref(cell.get_value().clone());
            if value == Cell::Empty {
                continue;
            }
            count += 1;
            if count > MAX_CELLS {
                return Err(too_many_cells(sheet));
            }
            match rows.last_mut() {
                Some((row, cells)) if *row == r => cells.push((c, value)),
                _ => rows.push((r, vec![(c, value)])),
            }
        }
        // Cells come in file order, which is row order in every writer we know; sort anyway.
        rows.sort_by_key(|(r, _)| *r);
        let mut merged: Vec<(u32, Vec<(u32, Cell)>)> = Vec::with_capacity(rows.len());
        for (r, cells) in rows {
            match merged.last_mut() {
                Some((last, prev)) if *last == r => prev.extend(cells),
                _ => merged.push((r, cells)),
            }
        }
        Ok(Grid {
            sheet: Some(sheet.to_string()),
            rows: merged,
        })
    })
}

/// `.xls` and `.ods`: calamine's dense range of the sheet, then its non-empty cells.
fn range_grid(bytes: &[u8], format: TableFormat, want: Option<&SheetRef>) -> Result<Grid, String> {
    match format {
        TableFormat::Xls => dense::<calamine::Xls<_>>(bytes, format, want, "the workbook"),
        _ => {
            check_unpacked(bytes)?;
            dense::<calamine::Ods<_>>(bytes, format, want, "the spreadsheet")
        }
    }
}

fn dense<'b, W>(
    bytes: &'b [u8],
    format: TableFormat,
    want: Option<&SheetRef>,
    what: &str,
) -> Result<Grid, String>
where
    W: Reader<Cursor<&'b [u8]>>,
    W::Error: std::fmt::Display,
{
    let mut wb: W = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| workbook_error(format, e, bytes))?;
    let names = wb.sheet_names();
    sheet_names_and(what, names, want, |sheet| {
        let range = wb
            .worksheet_range(sheet)
            .map_err(|e| sheet_error(sheet, &e))?;
        let (r0, c0) = range.start().unwrap_or((0, 0));
        let mut rows = Vec::new();
        let mut count = 0usize;
        for (i, row) in range.rows().enumerate() {
            let mut cells = Vec::new();
            for (j, d) in row.iter().enumerate() {
                let v = from_data(d);
                if v != Cell::Empty {
                    count += 1;
                    cells.push((c0 + j as u32, v));
                }
            }
            if count > MAX_CELLS {
                return Err(too_many_cells(sheet));
            }
            if !cells.is_empty() {
                rows.push((r0 + i as u32, cells));
            }
        }
        Ok(Grid {
            sheet: Some(sheet.to_string()),
            rows,
        })
    })
}

fn from_data(d: &Data) -> Cell {
    match d {
        Data::Empty => Cell::Empty,
        Data::String(s) => text_cell(s),
        Data::Int(i) => Cell::Int(*i),
        Data::Float(f) => Cell::Float(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) => Cell::Date(excel_datetime(dt)),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Date(s.clone()),
        Data::Error(e) => Cell::Error(e.to_string()),
    }
}

fn from_data_ref(d: DataRef<'_>) -> Cell {
    match d {
        DataRef::Empty => Cell::Empty,
        DataRef::String(s) => text_cell(&s),
        DataRef::SharedString(s) => text_cell(s),
        DataRef::Int(i) => Cell::Int(i),
        DataRef::Float(f) => Cell::Float(f),
        DataRef::Bool(b) => Cell::Bool(b),
        DataRef::DateTime(dt) => Cell::Date(excel_datetime(&dt)),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::Date(s),
        DataRef::Error(e) => Cell::Error(e.to_string()),
    }
}

fn text_cell(s: &str) -> Cell {
    if s.is_empty() {
        Cell::Empty
    } else {
        Cell::Text(s.to_string())
    }
}

/// An Excel serial date as ISO 8601: a date when it has no time of day, a time when it has
/// no date (serial below 1), a duration for `[h]:mm` formats, else a date-time.
fn excel_datetime(dt: &calamine::ExcelDateTime) -> String {
    if dt.is_duration() {
        let ms = (dt.as_f64() * 86_400_000.0).round() as i64;
        let (sign, ms) = if ms < 0 { ("-", -ms) } else { ("", ms) };
        let (s, milli) = (ms / 1000, ms % 1000);
        let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
        let frac = if milli > 0 {
            format!(".{milli:03}")
        } else {
            String::new()
        };
        return format!("{sign}PT{h}H{m}M{s}{frac}S");
    }
    let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
    let time = if ms > 0 {
        format!("{h:02}:{mi:02}:{s:02}.{ms:03}")
    } else {
        format!("{h:02}:{mi:02}:{s:02}")
    };
    if dt.as_f64() >= 0.0 && dt.as_f64() < 1.0 {
        time
    } else if (h, mi, s, ms) == (0, 0, 0, 0) {
        format!("{y:04}-{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{time}")
    }
}

/// `B17`, as a spreadsheet names the cell at 0-based `(row, col)`.
pub fn cell_name(row: u32, col: u32) -> String {
    let mut letters = Vec::new();
    let mut c = col + 1;
    while c > 0 {
        c -= 1;
        letters.push(b'A' + (c % 26) as u8);
        c /= 26;
    }
    letters.reverse();
    format!(
        "{}{}",
        String::from_utf8(letters).unwrap_or_default(),
        row + 1
    )
}

/// The header, the rows under it, and every column typed.
fn typed(grid: Grid, opts: &ReadOptions, csv: bool) -> Result<Table, String> {
    let at = grid.at();
    let missing = |s: &str| opts.missing.iter().any(|m| m == s.trim());
    let position = match opts.header_row {
        Some(n) => grid
            .rows
            .iter()
            .position(|(r, _)| *r + 1 == n)
            .ok_or_else(|| {
                format!(
                    "{at}row {n} (header_row) is empty{}",
                    grid.rows
                        .first()
                        .map(|(r, _)| format!("; the first row with cells is {}", r + 1))
                        .unwrap_or_default()
                )
            })?,
        None => {
            if grid.rows.is_empty() {
                return Err(format!("{at}is empty: no header row, no rows"));
            }
            0
        }
    };
    let (header_r, header_cells) = &grid.rows[position];
    let mut names: Vec<(u32, String)> = Vec::new();
    for (c, cell) in header_cells {
        let name = match cell {
            Cell::Text(s) => s.trim().to_string(),
            other => {
                return Err(format!(
                    "{at}row {} is not a header row: cell {} holds {}, not a column name; the sheet needs a row of column names (set header_row to the row that has them)",
                    header_r + 1,
                    cell_name(*header_r, *c),
                    describe(other)
                ))
            }
        };
        if name.is_empty() {
            continue;
        }
        let name = match opts.rename.get(&name) {
            Some(to) => to.clone(),
            None => match opts.column_names {
                NameStyle::AsIs => name,
                NameStyle::SnakeCase => snake_case(&name),
            },
        };
        if let Some((c0, _)) = names.iter().find(|(_, n)| *n == name) {
            return Err(format!(
                "{at}row {}: columns {} and {} are both named {name:?}",
                header_r + 1,
                cell_name(*header_r, *c0),
                cell_name(*header_r, *c)
            ));
        }
        names.push((*c, name));
    }
    if names.is_empty() {
        return Err(format!("{at}row {} has no column names", header_r + 1));
    }
    for name in opts.types.keys() {
        if !names.iter().any(|(_, n)| n == name) {
            return Err(format!(
                "types names a column {name:?} the table does not have; its columns: {}",
                quoted_list(&names.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>())
            ));
        }
    }
    let col_of: HashMap<u32, usize> = names
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (*c, i))
        .collect();
    // Cells of the data rows by column, missing markers made empty.
    let data = &grid.rows[position + 1..];
    let mut columns: Vec<Vec<Cell>> = vec![Vec::with_capacity(data.len()); names.len()];
    let mut row_numbers = Vec::with_capacity(data.len());
    for (r, cells) in data {
        let mut row: Vec<Cell> = vec![Cell::Empty; names.len()];
        let mut any = false;
        for (c, cell) in cells {
            let literal = col_of
                .get(c)
                .is_some_and(|&i| opts.literal.contains(&names[i].1));
            let is_missing = match cell {
                Cell::Text(s) if literal => s.trim().is_empty(),
                Cell::Text(s) => missing(s),
                Cell::Error(e) => missing(e),
                _ => false,
            };
            let Some(&i) = col_of.get(c) else {
                if is_missing || matches!(cell, Cell::Text(s) if s.trim().is_empty()) {
                    continue;
                }
                return Err(format!(
                    "{at}cell {} has a value but its column has no name in the header row {}",
                    cell_name(*r, *c),
                    header_r + 1
                ));
            };
            if is_missing {
                continue;
            }
            if let Cell::Error(e) = cell {
                return Err(format!(
                    "{at}cell {} is the spreadsheet error {e}; fix the cell or list {e:?} in missing",
                    cell_name(*r, *c)
                ));
            }
            any = true;
            row[i] = cell.clone();
        }
        if !any {
            continue;
        }
        row_numbers.push(r + 1);
        for (i, cell) in row.into_iter().enumerate() {
            columns[i].push(cell);
        }
    }
    // Type each column, then transpose into rows.
    let mut typed_columns = Vec::with_capacity(names.len());
    for (i, (c, name)) in names.iter().enumerate() {
        let cells = &columns[i];
        let ty = match opts.types.get(name) {
            Some(t) => *t,
            None => infer(cells, csv),
        };
        let mut values = Vec::with_capacity(cells.len());
        for (k, cell) in cells.iter().enumerate() {
            let v = convert(cell, ty).ok_or_else(|| {
                format!(
                    "{at}cell {}: {} is not {} {} (column {name:?}{})",
                    cell_name(row_numbers[k] - 1, *c),
                    describe(cell),
                    if ty == ColumnType::Integer { "an" } else { "a" },
                    ty.name(),
                    if opts.types.contains_key(name) {
                        ", as types says"
                    } else {
                        ""
                    }
                )
            })?;
            values.push(v);
        }
        typed_columns.push(values);
    }
    let rows = (0..row_numbers.len())
        .map(|k| {
            typed_columns
                .iter_mut()
                .map(|col| std::mem::take(&mut col[k]))
                .collect()
        })
        .collect();
    Ok(Table {
        sheet: grid.sheet,
        columns: names.into_iter().map(|(_, n)| n).collect(),
        rows,
        row_numbers,
    })
}

fn describe(cell: &Cell) -> String {
    match cell {
        Cell::Empty => "nothing".into(),
        Cell::Text(s) => format!("the text {:?}", truncate(s)),
        Cell::Int(i) => format!("the number {i}"),
        Cell::Float(f) => format!("the number {}", number_text(*f)),
        Cell::Bool(b) => format!("the boolean {b}"),
        Cell::Date(d) => format!("the date {d}"),
        Cell::Json(v) => format!("the JSON {}", truncate(&v.to_string())),
        Cell::Error(e) => format!("the error {e}"),
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The type a column's cells all fit, narrowest first: integer, number, boolean, else string.
/// Text that reads as a number (or boolean) counts as one in CSV, where everything is text, and
/// in a column that also has real number (boolean) cells — Excel's "number stored as text" —
/// but a column of nothing but text stays text: codes typed as text are meant as text.
fn infer(cells: &[Cell], csv: bool) -> ColumnType {
    let present = || cells.iter().filter(|c| **c != Cell::Empty);
    let numbers_as_text = csv || present().any(|c| matches!(c, Cell::Int(_) | Cell::Float(_)));
    let bools_as_text = csv || present().any(|c| matches!(c, Cell::Bool(_)));
    let int = |c: &Cell| match c {
        Cell::Int(_) => true,
        Cell::Float(f) => as_int(*f).is_some(),
        Cell::Text(s) if numbers_as_text => int_text(s).is_some(),
        _ => false,
    };
    let num = |c: &Cell| match c {
        Cell::Int(_) | Cell::Float(_) => true,
        Cell::Text(s) if numbers_as_text => number_of_text(s).is_some(),
        _ => false,
    };
    let boolean = |c: &Cell| match c {
        Cell::Bool(_) => true,
        Cell::Text(s) if bools_as_text => bool_text(s).is_some(),
        _ => false,
    };
    if present().next().is_none() {
        ColumnType::String
    } else if present().all(int) {
        ColumnType::Integer
    } else if present().all(num) {
        ColumnType::Number
    } else if present().all(boolean) {
        ColumnType::Boolean
    } else {
        ColumnType::String
    }
}

/// The cell as a value of type `ty`; `None` when it cannot be one.
fn convert(cell: &Cell, ty: ColumnType) -> Option<Value> {
    if *cell == Cell::Empty {
        return Some(Value::Null);
    }
    Some(match ty {
        ColumnType::Integer => Value::from(match cell {
            Cell::Int(i) => *i,
            Cell::Float(f) => as_int(*f)?,
            Cell::Text(s) => int_text(s)?,
            _ => return None,
        }),
        ColumnType::Number => number_value(match cell {
            Cell::Int(i) => return Some(Value::from(*i)),
            Cell::Float(f) => *f,
            Cell::Text(s) => number_of_text(s)?,
            _ => return None,
        })?,
        ColumnType::Boolean => Value::Bool(match cell {
            Cell::Bool(b) => *b,
            Cell::Text(s) => bool_text(s)?,
            _ => return None,
        }),
        ColumnType::String => match cell {
            Cell::Text(s) => Value::String(s.trim().to_string()),
            Cell::Int(i) => Value::String(i.to_string()),
            Cell::Float(f) => Value::String(number_text(*f)),
            Cell::Bool(b) => Value::String(b.to_string()),
            Cell::Date(d) => Value::String(d.clone()),
            Cell::Json(v) => v.clone(),
            Cell::Empty | Cell::Error(_) => return None,
        },
    })
}

/// Integral values within ±2^53 (exact in a double) are integers: Excel stores every number
/// as a double, so a population of 38928346 arrives as 38928346.0.
fn as_int(f: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// A number as JSON: integral doubles as integers, others exactly (shortest round-trip form).
fn number_value(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    Some(match as_int(f) {
        Some(i) => Value::from(i),
        None => Value::from(f),
    })
}

/// The shortest text that reads back as `f` (`80.506`, not `80.50599999999999`).
fn number_text(f: f64) -> String {
    match as_int(f) {
        Some(i) => i.to_string(),
        None => {
            let mut buf = ryu_js::Buffer::new();
            buf.format(f).to_string()
        }
    }
}

/// `-12`, `+7`, `0` — but not `007` (a code whose zeros matter) nor `1,234`.
fn int_text(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    t.parse().ok()
}

/// A plain decimal or exponent number (`80.506`, `-1.5e3`, `.5`), never `inf`/`NaN`/hex, and
/// not with leading zeros (`0012`).
fn number_of_text(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
    if unsigned.len() > 1
        && unsigned.starts_with('0')
        && !unsigned[1..].starts_with(['.', 'e', 'E'])
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn bool_text(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `"Urban_population_PC_of_total"` -> `urban_population_pc_of_total`, `"CountryName"` ->
/// `country_name`, `"GDP per capita (US$)"` -> `gdp_per_capita_us`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // a word starts at "aB" and at the "B" of "ABc" (an acronym then a word)
            if (prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower))
                && !out.is_empty()
                && !out.ends_with('_')
            {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn csv(text: &str) -> Table {
        read(text.as_bytes(), TableFormat::Csv, &ReadOptions::default()).unwrap()
    }

    #[test]
    fn csv_columns_are_typed_as_a_whole_with_na_as_null() {
        let t = csv("COUNTRY,pop,urban,code,flag,mixed\nSpain,47076781,80.8,007,true,1\nChad,NA,23.5,012,false,\"1,234\"\nPeru,N/A,,100,TRUE,x\n");
        assert_eq!(
            t.columns,
            ["COUNTRY", "pop", "urban", "code", "flag", "mixed"]
        );
        assert_eq!(
            t.rows[0],
            vec![
                json!("Spain"),
                json!(47076781),
                json!(80.8),
                json!("007"),
                json!(true),
                json!("1")
            ]
        );
        assert_eq!(t.rows[1][1], Value::Null);
        assert_eq!(t.rows[2][1], Value::Null);
        assert_eq!(t.rows[2][2], Value::Null);
        assert_eq!(t.rows[2][4], json!(true));
        assert_eq!(t.row_numbers, [2, 3, 4]);
    }

    #[test]
    fn explicit_types_win_and_refuse_what_they_cannot_hold() {
        let mut opts = ReadOptions::default();
        opts.types.insert("pop".into(), ColumnType::String);
        let t = read(b"c,pop\na,12\n", TableFormat::Csv, &opts).unwrap();
        assert_eq!(t.rows[0][1], json!("12"));
        opts.types.insert("pop".into(), ColumnType::Integer);
        let e = read(b"c,pop\na,12\nb,1.5\n", TableFormat::Csv, &opts).unwrap_err();
        assert_eq!(
            e,
            "cell B3: the text \"1.5\" is not an integer (column \"pop\", as types says)"
        );
        opts.types.insert("nope".into(), ColumnType::Integer);
        let e = read(b"c,pop\na,12\n", TableFormat::Csv, &opts).unwrap_err();
        assert!(e.contains("\"nope\""), "{e}");
    }

    #[test]
    fn header_row_skips_titles_and_names_are_normalised() {
        let mut opts = ReadOptions {
            header_row: Some(3),
            column_names: NameStyle::SnakeCase,
            ..ReadOptions::default()
        };
        opts.rename.insert("COUNTRY".into(), "name".into());
        let t = read(
            b"Country table,,\n,,\nCOUNTRY,Population_total,GDPPerCapita\nSpain,1,2\n",
            TableFormat::Csv,
            &opts,
        )
        .unwrap();
        assert_eq!(t.columns, ["name", "population_total", "gdp_per_capita"]);
        assert_eq!(t.row_numbers, [4]);
    }

    #[rstest]
    #[case::duplicate("a,a\n1,2\n", "row 1: columns A1 and B1 are both named \"a\"")]
    #[case::value_without_header(
        "a,\n1,2\n",
        "cell B2 has a value but its column has no name in the header row 1"
    )]
    #[case::empty("", "is empty: no header row, no rows")]
    fn bad_csv_tables(#[case] text: &str, #[case] expect: &str) {
        let e = read(text.as_bytes(), TableFormat::Csv, &ReadOptions::default()).unwrap_err();
        assert_eq!(e, expect);
    }

    #[test]
    fn json_tables_keep_their_types_and_missing_markers_apply() {
        let t = read(
            br#"[{"k":"a","n":1,"s":"7"},{"k":"b","n":"NA","x":[1]}]"#,
            TableFormat::Json,
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(t.columns, ["k", "n", "s", "x"]);
        assert_eq!(
            t.rows[0],
            vec![json!("a"), json!(1), json!("7"), Value::Null]
        );
        assert_eq!(
            t.rows[1],
            vec![json!("b"), Value::Null, Value::Null, json!([1])]
        );
    }

    #[test]
    fn content_hash_is_of_values_not_bytes() {
        let a = csv("k,v\nx,1\n");
        let b = csv("\u{feff}k , v\r\n x ,1.0\r\n");
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.content_sha256(), b.content_sha256());
        assert_ne!(a.content_sha256(), csv("k,v\nx,2\n").content_sha256());
    }

    #[rstest]
    #[case("Population_total", "population_total")]
    #[case(
        "Urban_population_PC_of_total_population",
        "urban_population_pc_of_total_population"
    )]
    #[case("CountryName", "country_name")]
    #[case("GDPPerCapita", "gdp_per_capita")]
    #[case("GDP per capita (US$)", "gdp_per_capita_us")]
    #[case("COUNTRY", "country")]
    fn snake_case_names(#[case] from: &str, #[case] to: &str) {
        assert_eq!(snake_case(from), to);
    }

    #[rstest]
    #[case(0, 0, "A1")]
    #[case(16, 1, "B17")]
    #[case(0, 25, "Z1")]
    #[case(9, 26, "AA10")]
    #[case(0, 701, "ZZ1")]
    #[case(0, 702, "AAA1")]
    fn cell_names(#[case] r: u32, #[case] c: u32, #[case] name: &str) {
        assert_eq!(cell_name(r, c), name);
    }

    #[rstest]
    #[case("x.xlsx", Some(TableFormat::Xlsx))]
    #[case("https://h/t.ODS?x=1", Some(TableFormat::Ods))]
    #[case("file:///a/b.xls", Some(TableFormat::Xls))]
    #[case("https://h/table", None)]
    #[case("https://h.example/dir.csv/table", None)]
    fn formats_from_names(#[case] source: &str, #[case] f: Option<TableFormat>) {
        assert_eq!(TableFormat::from_name(source), f);
    }

    #[test]
    fn numbers_from_text_are_plain_decimals_only() {
        for bad in ["inf", "NaN", "0x10", "1,5", "007", "1e999", "--1"] {
            assert_eq!(number_of_text(bad), None, "{bad}");
        }
        assert_eq!(number_of_text("0.5"), Some(0.5));
        assert_eq!(number_of_text("-1.5e3"), Some(-1500.0));
        assert_eq!(number_text(80.506), "80.506");
        assert_eq!(number_text(0.1 + 0.2), "0.30000000000000004");
    }
}
