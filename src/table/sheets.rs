//! Workbooks (`.xlsx` cell by cell, `.xls` and `.ods` through calamine's dense range) as grids
//! of cells, with the sheet choice, the size limits, the password check and calamine's errors
//! in a user's words.

use std::io::Cursor;

use calamine::{Data, DataRef, Reader};

use super::{quoted_list, Cell, Grid, SheetRef, TableFormat, CFB_MAGIC, MAX_CELLS, MAX_UNPACKED};

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

pub(super) fn xlsx_grid(bytes: &[u8], want: Option<&SheetRef>) -> Result<Grid, String> {
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
pub(super) fn range_grid(
    bytes: &[u8],
    format: TableFormat,
    want: Option<&SheetRef>,
) -> Result<Grid, String> {
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
