//! The grid typed: the header row, the column names, each column's type inferred from the whole
//! column (or configured), and every cell converted to it.

use std::collections::HashMap;

use serde_json::Value;

use super::{quoted_list, Cell, ColumnType, Grid, NameStyle, ReadOptions, Table};

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
pub(super) fn typed(grid: Grid, opts: &ReadOptions, csv: bool) -> Result<Table, String> {
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
pub(super) fn number_text(f: f64) -> String {
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
pub(super) fn number_of_text(s: &str) -> Option<f64> {
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
