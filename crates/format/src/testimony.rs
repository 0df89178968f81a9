//! `testimony.json`: the first entry of every sealed submission.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{Day, Digest, Error, MAX_NAME_BYTES, sanitize_file_name};

/// Name of the first tar entry of a submission's plaintext.
pub const TESTIMONY_ENTRY: &str = "testimony.json";
/// Name of the last tar entry of a submission's plaintext (zeros).
pub const PADDING_ENTRY: &str = "padding";
/// The `format` value this build writes and reads.
pub const TESTIMONY_FORMAT: &str = "relay-testimony/1";
/// The largest `testimony.json` a reader accepts (4 MiB). The relay's own
/// limit on text is far smaller; this only bounds a hostile file.
pub const MAX_TESTIMONY_JSON_BYTES: usize = 4 * 1024 * 1024;

/// Directory of attachment entries inside the submission tar.
const FILES_DIR: &str = "files/";

/// The tar path of an attachment with an already sanitised name.
pub fn attachment_entry_path(name: &str) -> String {
    format!("{FILES_DIR}{name}")
}

/// The attachment name in a tar path `files/<name>`, if the path has that
/// shape and the name is already in sanitised form. Anything else (other
/// directories, nested paths, `..`, names that sanitising would change) is
/// `None`: a reader must treat such an entry as hostile.
pub fn parse_attachment_entry_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix(FILES_DIR)?;
    (name.len() <= MAX_NAME_BYTES && sanitize_file_name(name) == name).then_some(name)
}

/// One attachment as listed in `testimony.json`.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Sanitised file name; the tar entry is `files/<name>`.
    pub name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the attachment's bytes.
    pub sha256: Digest,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // File names can identify a source: never print them.
        f.debug_struct("Attachment")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The English wording of one answered question, so an offline reviewer
/// can show answers labelled without the relay's configuration.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FieldLabel {
    /// The question, as the form asked it (in English).
    pub question: String,
    /// The answer's label, for answers chosen from a list (in English).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl fmt::Debug for FieldLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The answer's label can say what the testimony is about.
        f.debug_struct("FieldLabel").finish_non_exhaustive()
    }
}

/// The testimony a source submitted: form answers, free text and the list
/// of attached files.
///
/// This is plaintext: it exists only in memory on the relay, is zeroized on
/// drop, has no `Clone`, and its `Debug` prints nothing a source wrote.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Testimony {
    /// Always [`TESTIMONY_FORMAT`].
    pub format: String,
    /// Version of the questionnaire the source saw (operator's config).
    pub form_version: u32,
    /// Language of the form the source used (`en`, `ru`, `kk`).
    pub language: String,
    /// UTC day the relay received it; never a finer time.
    pub received_day: Day,
    /// Questionnaire answers by stable key (`category`, `region`,
    /// `events_month`, ...). Empty answers are omitted.
    pub fields: BTreeMap<String, String>,
    /// English labels of the answered questions, by the same keys as
    /// `fields`. Optional: absent in testimonies from forms without labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, FieldLabel>,
    /// The free-text testimony.
    pub text: String,
    /// The attached files, in tar order.
    pub attachments: Vec<Attachment>,
}

impl fmt::Debug for Testimony {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Testimony")
            .field("form_version", &self.form_version)
            .field("received_day", &self.received_day)
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

/// Zeroizes answers and their labels in place (keys are fixed field names,
/// not what a source wrote). Shared by every type that holds answers.
pub fn zeroize_answers(
    fields: &mut BTreeMap<String, String>,
    labels: &mut BTreeMap<String, FieldLabel>,
) {
    for v in fields.values_mut() {
        v.zeroize();
    }
    for l in labels.values_mut() {
        l.question.zeroize();
        if let Some(a) = l.answer.as_mut() {
            a.zeroize();
        }
    }
}

impl Drop for Testimony {
    fn drop(&mut self) {
        self.text.zeroize();
        self.language.zeroize();
        zeroize_answers(&mut self.fields, &mut self.labels);
        for a in &mut self.attachments {
            a.name.zeroize();
        }
    }
}

impl Testimony {
    /// Serialises to the bytes of `testimony.json` (pretty JSON, one
    /// trailing newline), in a buffer that is zeroized on drop.
    ///
    /// The buffer is allocated once at its final size (the JSON is counted
    /// first), so no reallocation leaves a partial copy of the testimony
    /// in freed memory.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        /// Counts what would be written.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        // Serialising plain strings, integers and maps cannot fail (no
        // I/O, no non-string map keys).
        let _ = serde_json::to_writer_pretty(&mut count, self);
        let mut out = Zeroizing::new(Vec::with_capacity(count.0 + 1));
        if serde_json::to_writer_pretty(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
        out
    }

    /// Parses `testimony.json` and checks the rules a reader relies on.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "testimony.json";
        let t: Testimony = crate::read_json(WHAT, bytes, MAX_TESTIMONY_JSON_BYTES)?;
        if t.format != TESTIMONY_FORMAT {
            return Err(Error::UnsupportedFormat {
                what: WHAT,
                found: t.format.clone(),
                expected: TESTIMONY_FORMAT,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for a in &t.attachments {
            // Spec: "names are sanitised and unique ignoring case".
            if sanitize_file_name(&a.name) != a.name {
                return Err(Error::invalid(WHAT, "an attachment name is not sanitised"));
            }
            if !seen.insert(a.name.to_lowercase()) {
                return Err(Error::invalid(WHAT, "two attachments share a name"));
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Testimony {
        Testimony {
            format: TESTIMONY_FORMAT.into(),
            form_version: 1,
            language: "ru".into(),
            received_day: "2026-11-28".parse().unwrap(),
            fields: [("category".to_owned(), "health".to_owned())].into(),
            labels: Default::default(),
            text: "Врачей не хватает.".into(),
            attachments: vec![Attachment {
                name: "photo.jpg".into(),
                size: 3,
                sha256: Digest::of(b"abc"),
            }],
        }
    }

    /// A text of quotes, line breaks and control characters grows up to six
    /// times when escaped, and forty attachments' names pass any fixed
    /// allowance: the buffer is still allocated once, at its final size.
    #[test]
    fn to_json_never_outgrows_its_buffer() {
        let mut t = sample();
        t.text = "\"\n\u{1}".repeat(5000);
        t.attachments = (0..40)
            .map(|i| Attachment {
                name: format!("долгое-имя-файла-номер-{i}.jpg"),
                size: 3,
                sha256: Digest::of(b"abc"),
            })
            .collect();
        let json = t.to_json();
        assert!(json.len() > 1024 + t.text.len() * 3, "{}", json.len());
        assert_eq!(json.capacity(), json.len(), "reallocated");
        assert_eq!(Testimony::from_json(&json).unwrap().text, t.text);
    }

    #[test]
    fn debug_hides_content() {
        let dbg = format!("{:?}", sample());
        assert!(!dbg.contains("Врачей"));
        assert!(!dbg.contains("photo"));
        assert!(!dbg.contains("health"));
    }

    #[test]
    fn refuses_hostile_names_and_versions() {
        let mut t = sample();
        t.attachments[0].name = "../x".into();
        assert!(Testimony::from_json(&t.to_json()).is_err());
        let mut t = sample();
        t.format = "relay-testimony/9".into();
        assert!(matches!(
            Testimony::from_json(&t.to_json()),
            Err(Error::UnsupportedFormat { .. })
        ));
        let json = String::from_utf8(sample().to_json().to_vec()).unwrap();
        let extra = json.replacen('{', "{\"ip\": \"1.2.3.4\",", 1);
        assert!(Testimony::from_json(extra.as_bytes()).is_err());
    }

    #[test]
    fn entry_paths() {
        assert_eq!(parse_attachment_entry_path("files/a.jpg"), Some("a.jpg"));
        for bad in [
            "files/../a",
            "files/a/b",
            "other/a",
            "files/.x",
            "files/",
            "/files/a",
        ] {
            assert_eq!(parse_attachment_entry_path(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            text in any::<String>(),
            lang in "[a-z]{2}",
            fields in proptest::collection::btree_map("[a-z_]{1,12}", any::<String>(), 0..5),
            sizes in proptest::collection::vec(any::<u64>(), 0..5),
            labels in proptest::collection::btree_map(
                "[a-z_]{1,12}",
                (any::<String>(), proptest::option::of(any::<String>())),
                0..5,
            ),
        ) {
            let t = Testimony {
                format: TESTIMONY_FORMAT.into(),
                form_version: 3,
                language: lang,
                received_day: "2026-01-31".parse().unwrap(),
                fields,
                labels: labels
                    .into_iter()
                    .map(|(k, (question, answer))| (k, FieldLabel { question, answer }))
                    .collect(),
                text,
                attachments: sizes.iter().enumerate().map(|(i, s)| Attachment {
                    name: format!("f{i}.bin"),
                    size: *s,
                    sha256: Digest::of(&s.to_le_bytes()),
                }).collect(),
            };
            let json = t.to_json();
            let back = Testimony::from_json(&json).unwrap();
            prop_assert!(back == t);
            prop_assert_eq!(&*back.to_json(), &*json);
        }
    }
}
