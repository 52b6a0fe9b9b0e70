//! Output: the data as compact JSON in the source's key order, written to a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::dates::format_date;
use super::Data;

pub(super) fn write_data(data: &Data, path: &Path) -> Result<(), String> {
    // Write next to the target and rename, so a server never sees a half-written file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        write_json(data, &mut w)?;
        w.flush()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_json(data: &Data, w: &mut impl Write) -> std::io::Result<()> {
    let dates: Vec<String> = {
        (0..data.days() as i64)
            .map(|d| format_date(data.first_day + d))
            .collect()
    };
    w.write_all(b"[")?;
    for (i, c) in data.countries.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let key = serde_json::to_string(&c.key).map_err(std::io::Error::other)?;
        let name = serde_json::to_string(&c.name).map_err(std::io::Error::other)?;
        write!(
            w,
            "{{\"country\":{{\"key\":{key},\"name\":{name}}},\"dates\":{{"
        )?;
        let mut cum = [0u64; 3];
        for (d, v) in c.new.iter().enumerate() {
            for f in 0..3 {
                cum[f] += v[f];
            }
            if d > 0 {
                w.write_all(b",")?;
            }
            write!(
                w,
                "\"{}\":{{\"new\":{{\"cases\":{},\"deaths\":{},\"recoveries\":{}}},\
                 \"cumulative\":{{\"cases\":{},\"deaths\":{},\"recoveries\":{}}}}}",
                dates[d], v[0], v[1], v[2], cum[0], cum[1], cum[2]
            )?;
        }
        w.write_all(b"}}")?;
    }
    w.write_all(b"]\n")?;
    Ok(())
}
