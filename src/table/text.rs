//! CSV and JSON tables: a CSV file as a grid of text cells, a JSON array of objects as a table.

use std::collections::HashMap;

use serde_json::Value;

use super::typed::typed;
use super::{Cell, Grid, ReadOptions, Table};

pub(super) fn csv_grid(bytes: &[u8]) -> Result<Grid, String> {
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

pub(super) fn json_table(bytes: &[u8], opts: &ReadOptions) -> Result<Table, String> {
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
