//! Which country a name means: the built-in alias table (`countries.tsv`, one line per
//! country with its ISO 3166-1 codes and the spellings in use — ISO 3166 short names, World
//! Bank WDI names, UN M49 names, and the ones coviddata/JHU CSSE use), for joins whose two
//! sides spell countries differently ("Korea, Rep." in a World Bank table, `south-korea` in
//! the covid data).
//!
//! The decision to know: names are compared in [`normalize`]d form only (case, accents,
//! punctuation and `&`/`and` folded), and no normalized name may belong to two countries —
//! a test checks the table — so an alias can never join one country's figures to another.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("countries.tsv");

/// One line of the table.
#[derive(Debug, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-3 (the World Bank's code where ISO has none: `XKX`, `CHI`).
    pub iso3: &'static str,
    pub iso2: Option<&'static str>,
    /// Every spelling, as written in the table; the first is the table's main name.
    pub names: Vec<&'static str>,
}

struct Index {
    countries: Vec<Country>,
    by_name: HashMap<String, usize>,
    by_code: HashMap<String, usize>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let (countries, problems) = parse(TABLE);
        debug_assert!(problems.is_empty(), "countries.tsv: {problems:?}");
        let mut by_name = HashMap::new();
        let mut by_code = HashMap::new();
        for (i, c) in countries.iter().enumerate() {
            for n in &c.names {
                by_name.entry(normalize(n)).or_insert(i);
            }
            by_code.entry(c.iso3.to_ascii_lowercase()).or_insert(i);
            if let Some(two) = c.iso2 {
                by_code.entry(two.to_ascii_lowercase()).or_insert(i);
            }
        }
        Index {
            countries,
            by_name,
            by_code,
        }
    })
}

/// The table's lines, and what is wrong with it (for the test that keeps it sound: a name on
/// two lines, a duplicate code, a malformed line).
pub fn parse(text: &'static str) -> (Vec<Country>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut names: HashMap<String, &str> = HashMap::new();
    let mut codes: HashMap<&str, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [iso3, iso2, list] = cols[..] else {
            problems.push(format!("line {}: {} columns, not 3", n + 1, cols.len()));
            continue;
        };
        let iso2 = (iso2 != "-").then_some(iso2);
        for code in std::iter::once(iso3).chain(iso2) {
            if let Some(prev) = codes.insert(code, n + 1) {
                problems.push(format!(
                    "line {}: code {code} is also on line {prev}",
                    n + 1
                ));
            }
        }
        let list: Vec<&str> = list.split('|').map(str::trim).collect();
        for name in &list {
            let norm = normalize(name);
            if norm.is_empty() {
                problems.push(format!("line {}: an empty name", n + 1));
            }
            match names.get(&norm) {
                Some(other) if *other != iso3 => problems.push(format!(
                    "line {}: {name:?} ({norm}) is also a name of {other}",
                    n + 1
                )),
                _ => {
                    names.insert(norm, iso3);
                }
            }
        }
        out.push(Country {
            iso3,
            iso2,
            names: list,
        });
    }
    (out, problems)
}

/// The country a name means, if the table knows it; the name already [`normalize`]d (a join
/// normalizes each key once).
pub fn by_normalized(norm: &str) -> Option<&'static Country> {
    let ix = index();
    ix.by_name.get(norm).map(|&i| &ix.countries[i])
}

/// The country of an ISO 3166-1 alpha-2 or alpha-3 code (any case).
pub fn by_code(code: &str) -> Option<&'static Country> {
    let ix = index();
    ix.by_code
        .get(&code.trim().to_ascii_lowercase())
        .map(|&i| &ix.countries[i])
}

/// The form names are compared in: accents folded, lowercase, `&` read as "and", every run
/// of other characters one `-`. `"Côte d’Ivoire"` -> `cote-d-ivoire`, `"Korea, Rep."` ->
/// `korea-rep`; a coviddata key is already in this form.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        let mut buf = [0u8; 4];
        let piece: &str = if c.is_ascii_alphanumeric() {
            c.encode_utf8(&mut buf)
        } else if c == '&' {
            gap = true;
            "and"
        } else if let Some(s) = fold(c) {
            s
        } else if c.is_alphanumeric() {
            c.encode_utf8(&mut buf)
        } else {
            gap = true;
            continue;
        };
        if gap && !out.is_empty() {
            out.push('-');
        }
        gap = c == '&';
        out.push_str(piece);
    }
    out
}

/// Latin letters with diacritics (lowercase) as ASCII.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' | 'ĕ' => "e",
        'ğ' | 'ĝ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' | 'ĩ' | 'ĭ' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ł' => "l",
        'ñ' | 'ń' | 'ň' | 'ņ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' | 'ŏ' => "o",
        'œ' => "oe",
        'ŕ' | 'ř' | 'ŗ' => "r",
        'ś' | 'š' | 'ş' | 'ŝ' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ț' | 'ŧ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' | 'ũ' | 'ŭ' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn by_name(name: &str) -> Option<&'static Country> {
        by_normalized(&normalize(name))
    }

    #[rstest]
    #[case("Korea, Rep.", "korea-rep")]
    #[case("Côte d’Ivoire", "cote-d-ivoire")]
    #[case("Antigua & Barbuda", "antigua-and-barbuda")]
    #[case("  St. Kitts and Nevis ", "st-kitts-and-nevis")]
    #[case("Congo (Kinshasa)", "congo-kinshasa")]
    #[case("São Tomé and Príncipe", "sao-tome-and-principe")]
    #[case("Curaçao", "curacao")]
    #[case("Taiwan*", "taiwan")]
    fn names_normalize(#[case] name: &str, #[case] norm: &str) {
        assert_eq!(normalize(name), norm);
    }

    #[test]
    fn the_table_is_sound() {
        let (countries, problems) = parse(TABLE);
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(countries.len() >= 249, "{} lines", countries.len());
    }

    #[rstest]
    #[case("Korea, Rep.", "KOR")]
    #[case("south-korea", "KOR")]
    #[case("Egypt, Arab Rep.", "EGY")]
    #[case("Viet Nam", "VNM")]
    #[case("West Bank and Gaza", "PSE")]
    #[case("palestine", "PSE")]
    #[case("Congo, Dem. Rep.", "COD")]
    #[case("congo-kinshasa", "COD")]
    #[case("congo-brazzaville", "COG")]
    #[case("Gambia, The", "GMB")]
    #[case("burma", "MMR")]
    fn names_resolve(#[case] name: &str, #[case] iso3: &str) {
        assert_eq!(by_name(name).map(|c| c.iso3), Some(iso3), "{name}");
    }

    /// Every country key coviddata has used, renamed ones too (`uk` then `united-kingdom`,
    /// `czech-republic` then `czechia`): a join keeps matching across upstream's renames.
    #[test]
    fn every_coviddata_country_key_ever_used_resolves() {
        let fixture = include_str!("../tests/fixtures/coviddata-countries.tsv");
        let not_countries = [
            "cruise-ship",
            "diamond-princess",
            "ms-zaandam",
            "others",
            "north-ireland",
        ];
        let mut unknown = Vec::new();
        for line in fixture.lines().filter(|l| !l.starts_with('#')) {
            let key = line.split('\t').nth(1).unwrap();
            if !not_countries.contains(&key) && by_name(key).is_none() {
                unknown.push(key);
            }
        }
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            by_name("uk").map(|c| c.iso3),
            by_name("united-kingdom").map(|c| c.iso3)
        );
    }

    #[test]
    fn codes_resolve_in_any_case() {
        assert_eq!(by_code("kr").map(|c| c.iso3), Some("KOR"));
        assert_eq!(by_code("ESP").map(|c| c.iso3), Some("ESP"));
        assert_eq!(by_code("XX"), None);
    }
}
