//! `[[dataset.transform]]` entries validated into transform specs: patterns, filters, renames,
//! and joins with their table source, sheet, types and names.

use std::collections::BTreeMap;
use std::path::Path;

use super::{file_inside, FileSheet, FileTransform, OneOrMany};
use crate::error::{Error, Result};
use crate::join::JoinSpec;
use crate::source::check_url;
use crate::table::{ColumnType, NameStyle, ReadOptions, SheetRef, TableFormat};
use crate::transform::{Condition, Pattern, Transform, TransformSpec};

/// Validates `[[dataset.transform]]` entries into transform specs.
///
/// `files_inside`: the directory a joined file must lie in (`None` when files anywhere are
/// allowed).
pub(super) fn transforms(
    list: &[FileTransform],
    base: &Path,
    files_inside: Option<&Path>,
    allow_insecure_http: bool,
    where_: &str,
) -> Result<Vec<TransformSpec>> {
    let mut out = Vec::new();
    for (j, t) in list.iter().enumerate() {
        let at = format!("{where_} transform #{}", j + 1);
        let err = |what: &str, m: String| Error::Config(format!("{at} ({what}): {m}"));
        let set = [
            t.drop.is_some(),
            t.keep.is_some(),
            t.filter.is_some(),
            t.rename.is_some(),
            t.join.is_some(),
        ];
        if set.iter().filter(|&&b| b).count() != 1 {
            return Err(Error::Config(format!(
                "{at}: needs exactly one of drop, keep, filter, rename, join"
            )));
        }
        let patterns = |what: &str, list: &[String]| -> Result<Vec<Pattern>> {
            if list.is_empty() {
                return Err(err(what, "lists no path".into()));
            }
            list.iter()
                .map(|p| {
                    let pat = Pattern::parse(p).map_err(|m| err(what, m))?;
                    Ok(pat)
                })
                .collect()
        };
        let spec = if let Some(list) = &t.drop {
            TransformSpec::Ready(Transform::Drop(patterns("drop", list)?))
        } else if let Some(list) = &t.keep {
            TransformSpec::Ready(Transform::Keep(patterns("keep", list)?))
        } else if let Some(f) = &t.filter {
            let field = crate::canonical::parse_pointer(&f.field).map_err(|m| err("filter", m))?;
            let json =
                |v: &toml::Value| serde_json::to_value(v).map_err(|e| err("filter", e.to_string()));
            let condition = match (&f.equals, &f.one_of, f.min, f.max) {
                (Some(v), None, None, None) => Condition::Equals(json(v)?),
                (None, Some(vs), None, None) => {
                    Condition::In(vs.iter().map(json).collect::<Result<_>>()?)
                }
                (None, None, min, max) if min.is_some() || max.is_some() => {
                    Condition::Range { min, max }
                }
                _ => return Err(err("filter", "needs one of equals, in, or min/max".into())),
            };
            TransformSpec::Ready(Transform::Filter { field, condition })
        } else if let Some(map) = &t.rename {
            let mut renames = Vec::new();
            for (from, to) in map {
                if to.is_empty() || to.contains('/') {
                    return Err(err(
                        "rename",
                        format!("{to:?} must be a member name, not a path"),
                    ));
                }
                renames.push((
                    Pattern::parse(from).map_err(|m| err("rename", m))?,
                    to.clone(),
                ));
            }
            TransformSpec::Ready(Transform::Rename(renames))
        } else {
            let j = t.join.as_ref().expect("one is set");
            let format = match j.format.as_deref() {
                None => None,
                Some(name) => Some(TableFormat::parse(name).ok_or_else(|| {
                    err(
                        "join",
                        format!("format {name:?}: use {}", TableFormat::NAMES),
                    )
                })?),
            };
            let source = if j.source.contains("://") {
                match j.source.strip_prefix("file://") {
                    Some(path) => {
                        if let Some(dir) = files_inside {
                            file_inside(dir, Path::new(path)).map_err(|m| err("join", m))?;
                        }
                    }
                    None => check_url(&j.source, allow_insecure_http)
                        .map_err(|e| err("join", e.to_string()))?,
                }
                j.source.clone()
            } else {
                let path = base.join(&j.source);
                let abs = std::fs::canonicalize(&path)
                    .map_err(|e| err("join", format!("source {}: {e}", path.display())))?;
                if let Some(dir) = files_inside {
                    file_inside(dir, &abs).map_err(|m| err("join", m))?;
                }
                format!("file://{}", abs.display())
            };
            let pointer = |p: &str| crate::canonical::parse_pointer(p).map_err(|m| err("join", m));
            if j.fields.as_ref().is_some_and(BTreeMap::is_empty) {
                return Err(err("join", "fields maps no column".into()));
            }
            let sheet = match &j.sheet {
                None => None,
                Some(FileSheet::Name(n)) => Some(SheetRef::Name(n.clone())),
                Some(FileSheet::Index(i)) if *i >= 1 => Some(SheetRef::Index(*i as usize)),
                Some(FileSheet::Index(i)) => {
                    return Err(err(
                        "join",
                        format!("sheet {i}: sheets are numbered from 1 (or give the sheet's name)"),
                    ))
                }
            };
            if sheet.is_some() && format.is_some_and(|f| !f.is_spreadsheet()) {
                return Err(err(
                    "join",
                    "sheet is set, but the format has no sheets".into(),
                ));
            }
            if j.header_row == Some(0) {
                return Err(err(
                    "join",
                    "header_row is 1-based (the first row is 1)".into(),
                ));
            }
            let mut types = BTreeMap::new();
            for (column, ty) in &j.types {
                let ty = ColumnType::parse(ty).ok_or_else(|| {
                    err(
                        "join",
                        format!(
                            "types.{column} = {ty:?}: use \"integer\", \"number\", \"boolean\" or \"string\""
                        ),
                    )
                })?;
                types.insert(column.clone(), ty);
            }
            let column_names = match j.column_names.as_deref() {
                None | Some("as-is") => NameStyle::AsIs,
                Some("snake_case") => NameStyle::SnakeCase,
                Some(other) => {
                    return Err(err(
                        "join",
                        format!("column_names {other:?}: use \"as-is\" or \"snake_case\""),
                    ))
                }
            };
            let mut names = BTreeMap::new();
            for (row, keys) in &j.names {
                let keys = match keys {
                    OneOrMany::One(k) => vec![k.clone()],
                    OneOrMany::Many(ks) if !ks.is_empty() => ks.clone(),
                    OneOrMany::Many(_) => {
                        return Err(err("join", format!("names.{row:?} lists no key")))
                    }
                };
                names.insert(row.clone(), keys);
            }
            TransformSpec::Join(Box::new(JoinSpec {
                source,
                format,
                read: ReadOptions {
                    sheet,
                    header_row: j.header_row,
                    missing: j.missing.clone().unwrap_or_else(|| {
                        crate::table::DEFAULT_MISSING
                            .iter()
                            .map(|s| s.to_string())
                            .collect()
                    }),
                    types,
                    column_names,
                    rename: j.columns.clone(),
                    literal: Vec::new(),
                },
                max_bytes: j.max_bytes.unwrap_or(crate::table::DEFAULT_MAX_BYTES),
                key_column: j.key.clone(),
                iso_column: j.iso.clone(),
                names,
                aliases: j.aliases.unwrap_or(true),
                on: pointer(&j.on)?,
                on_iso: j.on_iso.as_deref().map(pointer).transpose()?,
                into: pointer(&j.into)?,
                fields: j.fields.clone(),
            }))
        };
        out.push(spec);
    }
    Ok(out)
}
