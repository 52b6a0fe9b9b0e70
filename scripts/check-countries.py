#!/usr/bin/env python3
"""Check the built-in country alias table (src/countries.tsv) and the example join table.

Usage: scripts/check-countries.py [countries.tsv] [coviddata-countries.tsv] [countries-info.csv]
(defaults: src/countries.tsv, tests/fixtures/coviddata-countries.tsv, examples/countries-info.csv,
relative to the repository root = this script's parent's parent). Python 3 standard library only.

Checks (any failure -> exit status 1):
  * every non-comment line has exactly 3 tab-separated columns, ISO3 is 3 upper-case letters, ISO2 is
    2 upper-case letters or "-", no empty name;
  * ISO3 and ISO2 values are unique;
  * no normalized name appears on two lines;
  * '#' comment lines only at the top;
  * every "current" and "earlier" key of the coviddata fixture (except the non-countries) is the
    normalized form of some name in the table;
  * every COUNTRY of the example table resolves to a table line, and no two rows resolve to the same line.
Then prints the coverage of the example table against the "current" coviddata keys: matched count,
unmatched keys, and unused table rows (rows whose line has no current coviddata key).
"""
import csv
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# coviddata keys that are not countries (never matched) and "North Ireland" (coviddata's name for
# Northern Ireland, deliberately not mapped to the United Kingdom).
NON_COUNTRY_KEYS = {"cruise-ship", "diamond-princess", "ms-zaandam", "others", "north-ireland"}

# Letters that Unicode does not decompose into base letter + combining mark.
EXTRA_FOLD = {
    "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ß": "ss", "đ": "d", "Đ": "D",
    "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D", "ı": "i", "ħ": "h", "Ħ": "H",
}


def normalize(name):
    """Fold diacritics, lowercase, '&' -> ' and ', keep [a-z0-9], every other run -> '-', trim '-'."""
    s = "".join(EXTRA_FOLD.get(ch, ch) for ch in name)
    s = unicodedata.normalize("NFKD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = s.lower().replace("&", " and ")
    out = []
    dash = False
    for ch in s:
        if ("a" <= ch <= "z") or ("0" <= ch <= "9"):
            if dash and out:
                out.append("-")
            dash = False
            out.append(ch)
        else:
            dash = True
    return "".join(out)


def load_table(path, errors):
    lines = []  # (lineno, iso3, iso2, [names])
    seen3, seen2 = {}, {}
    owner = {}  # normalized name -> index into lines
    body_started = False
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.startswith("#"):
            if body_started:
                errors.append(f"{path.name}:{lineno}: comment line after the first data line")
            continue
        if not raw.strip():
            errors.append(f"{path.name}:{lineno}: empty line")
            continue
        body_started = True
        if raw != raw.strip():
            errors.append(f"{path.name}:{lineno}: leading/trailing whitespace")
        cols = raw.split("\t")
        if len(cols) != 3:
            errors.append(f"{path.name}:{lineno}: {len(cols)} columns, expected 3")
            continue
        iso3, iso2, names = cols
        if not (len(iso3) == 3 and iso3.isascii() and iso3.isalpha() and iso3.isupper()):
            errors.append(f"{path.name}:{lineno}: bad ISO3 {iso3!r}")
        if iso2 != "-" and not (len(iso2) == 2 and iso2.isascii() and iso2.isalpha() and iso2.isupper()):
            errors.append(f"{path.name}:{lineno}: bad ISO2 {iso2!r}")
        if iso3 in seen3:
            errors.append(f"{path.name}:{lineno}: ISO3 {iso3} also on line {seen3[iso3]}")
        seen3[iso3] = lineno
        if iso2 != "-":
            if iso2 in seen2:
                errors.append(f"{path.name}:{lineno}: ISO2 {iso2} also on line {seen2[iso2]}")
            seen2[iso2] = lineno
        name_list = names.split("|")
        idx = len(lines)
        for n in name_list:
            if n != n.strip() or not n:
                errors.append(f"{path.name}:{lineno}: empty name or name with outer spaces: {n!r}")
            key = normalize(n)
            if not key:
                errors.append(f"{path.name}:{lineno}: name {n!r} normalizes to nothing")
                continue
            if key in owner and owner[key] != idx:
                other = lines[owner[key]]
                errors.append(f"{path.name}:{lineno}: normalized name {key!r} ({n!r}) also on line "
                              f"{other[0]} ({other[1]})")
            else:
                owner[key] = idx
        lines.append((lineno, iso3, iso2, name_list))
    return lines, owner


def load_coviddata(path):
    keys = []  # (name, key, status)
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#") or not raw.strip():
            continue
        name, key, status = raw.split("\t")
        keys.append((name, key, status))
    return keys


def main(argv):
    table_path = Path(argv[1]) if len(argv) > 1 else ROOT / "src" / "countries.tsv"
    covid_path = Path(argv[2]) if len(argv) > 2 else ROOT / "tests" / "fixtures" / "coviddata-countries.tsv"
    csv_path = Path(argv[3]) if len(argv) > 3 else ROOT / "examples" / "countries-info.csv"
    errors = []

    lines, owner = load_table(table_path, errors)
    iso_lines = [l for l in lines if l[1] not in ("XKX", "CHI")]
    print(f"table: {len(lines)} lines ({len(iso_lines)} ISO 3166-1 + {len(lines) - len(iso_lines)} others), "
          f"{sum(len(l[3]) for l in lines)} names, {len(owner)} distinct normalized names")

    covid = load_coviddata(covid_path)
    for name, key, status in covid:
        if normalize(name) != key:
            print(f"note: fixture key {key!r} differs from normalize({name!r}) = {normalize(name)!r}")
        if key in NON_COUNTRY_KEYS:
            if key in owner:
                errors.append(f"non-country coviddata key {key!r} is a table name")
            continue
        if key not in owner:
            errors.append(f"coviddata {status} key {key!r} ({name}) is not a table name")
    current = [key for _, key, status in covid if status == "current"]
    print(f"coviddata fixture: {len(covid)} names, {len(current)} current")

    # Example table coverage.
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, data = rows[0], rows[1:]
    col = header.index("COUNTRY")
    row_line = {}  # row index -> table line index
    line_rows = {}
    for i, r in enumerate(data):
        line = owner.get(normalize(r[col]))
        if line is None:
            errors.append(f"{csv_path.name}: row {r[col]!r} matches no table line")
            continue
        if line in line_rows:
            errors.append(f"{csv_path.name}: rows {data[line_rows[line]][col]!r} and {r[col]!r} "
                          f"are the same country ({lines[line][1]})")
        row_line[i] = line
        line_rows[line] = i
    matched, unmatched = [], []
    used_lines = set()
    for key in current:
        line = owner.get(key)
        if line is not None and line in line_rows:
            matched.append(key)
            used_lines.add(line)
        else:
            unmatched.append(key)
    unused = [data[i][col] for i, line in row_line.items() if line not in used_lines]
    print(f"example table: {len(data)} rows")
    print(f"current coviddata keys matched: {len(matched)} of {len(current)}")
    print(f"unmatched current keys ({len(unmatched)}): {', '.join(unmatched)}")
    print(f"unused example rows ({len(unused)}): {'; '.join(unused)}")

    for e in errors:
        print("ERROR: " + e)
    if errors:
        print(f"{len(errors)} error(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
