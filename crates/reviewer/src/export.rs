//! `reviewer export`: the questionnaire answers as CSV or JSON, one row per
//! archived submission, for spreadsheets and analysis tools.
//!
//! Columns, in this order:
//!
//! | column | value |
//! |---|---|
//! | `id` | the submission id |
//! | `received_day` | `YYYY-MM-DD` |
//! | `relay` | the relay's short fingerprint ([`relay_fingerprint`]) |
//! | `batch_sequence` | the batch it was archived from |
//! | `thread` | the follow-up thread id, or empty |
//! | `status` | new, reviewing, verified, published or discarded |
//! | `tags` | the tags, separated by spaces (a JSON array in JSON) |
//! | `language` | `en`, `ru` or `kk` |
//! | `<key>`, `<key>_label` | for each questionnaire key found in any submission, in key order: the raw answer and the English label of a chosen answer (empty for free text) |
//! | `attachments` | how many files |
//! | `text` | the testimony text, only with `--with-text` |
//!
//! A questionnaire key that would collide with another column is named
//! `answer_<key>`. Attachments are never exported, and the text only when
//! asked for: an export is meant to travel further than the archive.
//!
//! CSV cells are made safe for spreadsheets: a cell that starts with `=`,
//! `+`, `-`, `@`, a tab or a carriage return gets a leading apostrophe, so
//! that Excel, LibreOffice and Google Sheets show it as text instead of
//! running it as a formula (CSV injection). JSON values are exact.
//!
//! A plain CSV export is UTF-8 without a byte-order mark, with `\n` line
//! ends, which is what scripts and LibreOffice expect. Excel guesses a
//! CSV's encoding from its first bytes: without the UTF-8 byte-order mark
//! (`EF BB BF`) it reads the file in the Windows code page, and Cyrillic
//! comes out as mojibake. [`CsvStyle::excel`] writes the mark, and RFC 4180
//! `\r\n` line ends as Excel writes them itself. Excel also splits a
//! double-clicked CSV on the list separator of the Windows region, which is
//! `;` wherever the decimal separator is a comma (Russian and Kazakh
//! settings among them): [`Delimiter::Semicolon`] is for those. A `sep=`
//! first line would name the separator, but Excel then ignores the
//! byte-order mark, so it is not used.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

use crate::archive::relay_fingerprint;
use crate::workbench::Record;

/// The `format` value of a JSON export.
pub const EXPORT_FORMAT: &str = "relay-export/1";

/// The fixed columns before the answers.
const LEADING: [&str; 8] = [
    "id",
    "received_day",
    "relay",
    "batch_sequence",
    "thread",
    "status",
    "tags",
    "language",
];

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Comma-separated values (RFC 4180 quoting), UTF-8, spreadsheet-safe
    /// cells, in this style.
    Csv(CsvStyle),
    /// A JSON document: `{"format", "columns", "submissions": [{column: value}]}`.
    Json,
}

/// How a CSV export is written. The default is plain UTF-8, commas, `\n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CsvStyle {
    /// For Excel: a UTF-8 byte-order mark first, and `\r\n` line ends.
    pub excel: bool,
    /// The character between cells.
    pub delimiter: Delimiter,
}

/// The character between CSV cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delimiter {
    /// `,`: RFC 4180, and Excel with English settings.
    #[default]
    Comma,
    /// `;`: Excel where the decimal separator is a comma (Russian,
    /// Kazakh, most of Europe).
    Semicolon,
}

/// The UTF-8 byte-order mark, which tells Excel the file is UTF-8.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One cell before formatting.
enum Cell<'a> {
    Text(&'a str),
    Owned(String),
    Number(u64),
    Tags(&'a BTreeSet<String>),
    Empty,
}

/// The column names and, per answer key, its value and label columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// Every column name, in order.
    pub names: Vec<String>,
    keys: Vec<String>,
    with_text: bool,
}

impl Columns {
    /// The columns for these records.
    pub fn for_records(records: &[Record], with_text: bool) -> Self {
        let keys: BTreeSet<&str> = records
            .iter()
            .flat_map(|r| r.fields.keys().map(String::as_str))
            .collect();
        let mut names: Vec<String> = LEADING.iter().map(|s| (*s).to_owned()).collect();
        let mut used: HashSet<String> = names.iter().cloned().collect();
        for k in &keys {
            let mut base = (*k).to_owned();
            if LEADING.contains(k) || *k == "attachments" || *k == "text" {
                base = format!("answer_{k}");
            }
            // A key that still collides (e.g. keys `x_label` and `x`) gets
            // a numbered name: every column name is unique.
            let mut n = 2;
            let mut name = base.clone();
            while used.contains(&name) || used.contains(&format!("{name}_label")) {
                name = format!("{base}_{n}");
                n += 1;
            }
            used.insert(name.clone());
            used.insert(format!("{name}_label"));
            names.push(name.clone());
            names.push(format!("{name}_label"));
        }
        names.push("attachments".into());
        if with_text {
            names.push("text".into());
        }
        Self {
            names,
            keys: keys.into_iter().map(str::to_owned).collect(),
            with_text,
        }
    }

    fn cells<'a>(&self, r: &'a Record) -> Vec<Cell<'a>> {
        let mut out = vec![
            Cell::Owned(r.id.to_string()),
            Cell::Owned(r.received_day.to_string()),
            Cell::Owned(relay_fingerprint(&r.origin.relay_key)),
            Cell::Number(r.origin.batch_sequence),
            r.thread.map_or(Cell::Empty, |t| Cell::Owned(t.to_string())),
            Cell::Text(r.status.as_str()),
            Cell::Tags(&r.tags),
            Cell::Text(&r.language),
        ];
        for k in &self.keys {
            out.push(r.fields.get(k).map_or(Cell::Empty, |v| Cell::Text(v)));
            out.push(
                r.labels
                    .get(k)
                    .and_then(|l| l.answer.as_deref())
                    .filter(|_| r.fields.contains_key(k))
                    .map_or(Cell::Empty, Cell::Text),
            );
        }
        out.push(Cell::Number(r.attachments.len() as u64));
        if self.with_text {
            out.push(Cell::Text(&r.text));
        }
        out
    }
}

/// Makes a CSV cell safe to open in a spreadsheet: a leading `=`, `+`,
/// `-`, `@`, tab or carriage return would make it a formula (or hide
/// one), so such a cell gets a leading apostrophe.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Writes the records in `format` to `out`.
pub fn export(
    records: &[Record],
    format: ExportFormat,
    with_text: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let columns = Columns::for_records(records, with_text);
    match format {
        ExportFormat::Csv(style) => write_csv(records, &columns, style, out),
        ExportFormat::Json => write_json(records, &columns, out),
    }
}

fn write_csv(
    records: &[Record],
    columns: &Columns,
    style: CsvStyle,
    out: &mut dyn Write,
) -> io::Result<()> {
    if style.excel {
        out.write_all(UTF8_BOM)?;
    }
    let mut w = csv::WriterBuilder::new()
        .delimiter(match style.delimiter {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
        })
        .terminator(if style.excel {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(out);
    w.write_record(&columns.names)?;
    for r in records {
        let row: Vec<String> = columns
            .cells(r)
            .into_iter()
            .map(|c| match c {
                Cell::Text(s) => spreadsheet_safe(s).into_owned(),
                Cell::Owned(s) => spreadsheet_safe(&s).into_owned(),
                Cell::Number(n) => n.to_string(),
                Cell::Tags(t) => t.iter().cloned().collect::<Vec<_>>().join(" "),
                Cell::Empty => String::new(),
            })
            .collect();
        w.write_record(&row)?;
        // The row held testimony text: wipe it.
        for mut cell in row {
            zeroize::Zeroize::zeroize(&mut cell);
        }
    }
    w.flush()?;
    Ok(())
}

/// A JSON row: the columns and their cells, serialised as one object
/// without copying the text.
struct Row<'a> {
    names: &'a [String],
    cells: Vec<Cell<'a>>,
}

impl Serialize for Cell<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(t) => s.serialize_str(t),
            Cell::Owned(t) => s.serialize_str(t),
            Cell::Number(n) => s.serialize_u64(*n),
            Cell::Tags(tags) => {
                let mut seq = s.serialize_seq(Some(tags.len()))?;
                for t in tags.iter() {
                    seq.serialize_element(t)?;
                }
                seq.end()
            }
            Cell::Empty => s.serialize_none(),
        }
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.names.len()))?;
        for (name, cell) in self.names.iter().zip(&self.cells) {
            map.serialize_entry(name, cell)?;
        }
        map.end()
    }
}

struct Rows<'a> {
    records: &'a [Record],
    columns: &'a Columns,
}

impl Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.records.len()))?;
        for r in self.records {
            seq.serialize_element(&Row {
                names: &self.columns.names,
                cells: self.columns.cells(r),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    columns: &'a [String],
    submissions: Rows<'a>,
}

fn write_json(records: &[Record], columns: &Columns, out: &mut dyn Write) -> io::Result<()> {
    let doc = Document {
        format: EXPORT_FORMAT,
        columns: &columns.names,
        submissions: Rows { records, columns },
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        for bad in [
            "=1+1",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "=HYPERLINK(\"http://x\")",
        ] {
            let safe = spreadsheet_safe(bad);
            assert!(safe.starts_with('\''), "{bad:?}");
            assert_eq!(&safe[1..], bad);
        }
        for ok in ["", "plain", "1+1", " =x", "'quoted", "ä="] {
            assert_eq!(spreadsheet_safe(ok), ok);
        }
    }
}
