//! `testimony.txt`: a readable rendering of one testimony.
//!
//! The text a source wrote is hostile input like everything else in a
//! submission: it can hold terminal escape sequences that would run when a
//! reviewer `cat`s the file, or bidirectional overrides that make text read
//! differently from what it is. The rendering escapes those as `\u{..}`;
//! the exact bytes stay in `testimony.json` next to it.

use std::fmt::Write as _;

use format::{SubmissionId, Testimony, ThreadId};
use zeroize::Zeroizing;

use crate::workbench::{FileKind, Finding, Origin, Record, ScrubOutcome};

/// Appends `s` to `out`, escaping control and deceptive characters. With
/// `multiline`, newlines and tabs are kept (and `\r\n` becomes `\n`).
fn push_clean(out: &mut String, s: &str, multiline: bool) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if multiline && c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if multiline && (c == '\n' || c == '\t') {
            out.push(c);
        } else if c.is_control() || format::is_deceptive(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}

/// One answer and its line end: the form's English wording when the
/// testimony carries it ("What is it about?: Health care and medical
/// workers (health)"), else the stable key and the value. With `show_key`,
/// a labelled answer also names its key, in brackets.
fn push_answer(
    o: &mut String,
    key: &str,
    value: &str,
    label: Option<&format::FieldLabel>,
    show_key: bool,
) {
    match label {
        Some(label) => {
            push_clean(o, &label.question, false);
            o.push_str(": ");
            match &label.answer {
                Some(answer) => {
                    push_clean(o, answer, false);
                    o.push_str(" (");
                    push_clean(o, value, false);
                    o.push(')');
                }
                None => push_clean(o, value, false),
            }
            if show_key {
                o.push_str("  [");
                push_clean(o, key, false);
                o.push(']');
            }
        }
        None => {
            push_clean(o, key, false);
            o.push_str(": ");
            push_clean(o, value, false);
        }
    }
    o.push('\n');
}

/// The source's text under its heading, with its lines kept, then a blank
/// line.
fn push_text(o: &mut String, text: &str) {
    o.push_str("Text:\n");
    push_clean(o, text, true);
    if !text.ends_with('\n') {
        o.push('\n');
    }
    o.push('\n');
}

/// The content of `testimony.txt` for one submission; `epoch` is the key
/// epoch the signed manifest says it was sealed to, `thread` the follow-up
/// thread it names (if its source took a codename).
pub(crate) fn render(
    id: &SubmissionId,
    epoch: u32,
    thread: Option<&ThreadId>,
    t: &Testimony,
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(512 + t.text.len()));
    let o = &mut *out;
    // Writing to a String cannot fail; results are ignored below.
    let _ = writeln!(o, "Submission {id}");
    let _ = writeln!(o, "Received: {}", t.received_day);
    let _ = writeln!(o, "Key epoch: {epoch}");
    if let Some(thread) = thread {
        // Reply with `reviewer reply --thread <id>`.
        let _ = writeln!(o, "Thread: {thread}");
    }
    o.push_str("Language: ");
    push_clean(o, &t.language, false);
    o.push('\n');
    let _ = writeln!(o, "Form version: {}", t.form_version);
    o.push('\n');
    if !t.fields.is_empty() {
        for (key, value) in &t.fields {
            push_answer(o, key, value, t.labels.get(key), false);
        }
        o.push('\n');
    }
    push_text(o, &t.text);
    if t.attachments.is_empty() {
        o.push_str("Attachments: none\n");
    } else {
        let n = t.attachments.len();
        let _ = writeln!(
            o,
            "Attachments ({n}), in files/ (the source's name in brackets):"
        );
        for (i, a) in t.attachments.iter().enumerate() {
            o.push_str("  ");
            push_clean(o, &format::disk_name(i, n, &a.name), false);
            o.push_str("  [");
            push_clean(o, &a.name, false);
            let _ = writeln!(o, "]  {} bytes  sha256 {}", a.size, a.sha256);
        }
    }
    out
}

/// The output of `reviewer show`: one archived submission with its
/// answers (English labels and keys), text, attachments with what the
/// metadata check found and whether a scrubbed copy exists, its triage
/// state, thread and chain of custody. `thread_mates` are the other
/// archived submissions of its thread; `also_received` the other batches
/// that carried it.
pub(crate) fn render_record(
    r: &Record,
    thread_mates: &[SubmissionId],
    also_received: &[Origin],
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(1024 + r.text.len()));
    let o = &mut *out;
    // Writing to a String cannot fail; results are ignored below.
    let _ = writeln!(o, "Submission {}", r.id);
    let _ = writeln!(o, "Status: {}", r.status);
    if r.tags.is_empty() {
        o.push_str("Tags: none\n");
    } else {
        let tags: Vec<&str> = r.tags.iter().map(String::as_str).collect();
        o.push_str("Tags: ");
        push_clean(o, &tags.join(", "), false);
        o.push('\n');
    }
    let _ = writeln!(o, "Received: {}", r.received_day);
    if let Some(thread) = r.thread {
        let _ = write!(o, "Thread: {thread}");
        if thread_mates.is_empty() {
            o.push_str(" (no other submission of it in this archive)\n");
        } else {
            let mates: Vec<String> = thread_mates.iter().map(ToString::to_string).collect();
            let _ = writeln!(o, " (also in this archive: {})", mates.join(", "));
        }
    }
    o.push_str("Language: ");
    push_clean(o, &r.language, false);
    let _ = writeln!(o, "\nForm version: {}", r.form_version);
    o.push('\n');
    if !r.fields.is_empty() {
        o.push_str("Answers:\n");
        for (key, value) in &r.fields {
            o.push_str("  ");
            push_answer(o, key, value, r.labels.get(key), true);
        }
        o.push('\n');
    }
    push_text(o, &r.text);
    if r.attachments.is_empty() {
        o.push_str("Attachments: none\n");
    } else {
        let _ = writeln!(o, "Attachments ({}):", r.attachments.len());
        for a in &r.attachments {
            o.push_str("  ");
            push_clean(o, &a.name, false);
            let _ = writeln!(o, "  {} bytes  sha256 {}", a.size, a.sha256);
            o.push_str("    original (never share as is): ");
            push_clean(o, &a.original.display().to_string(), false);
            let _ = writeln!(o, "\n    kind: {}", kind_name(a.metadata.kind));
            match (&a.metadata.scrub, &a.scrubbed) {
                (ScrubOutcome::Scrubbed, Some(copy)) if a.metadata.kind == FileKind::Text => {
                    o.push_str(
                        "    copy for sharing (plain text, nothing to remove: the file as sent): ",
                    );
                    push_clean(o, &copy.display().to_string(), false);
                    o.push('\n');
                }
                (ScrubOutcome::Scrubbed, Some(copy)) => {
                    o.push_str("    scrubbed copy for sharing: ");
                    push_clean(o, &copy.display().to_string(), false);
                    o.push('\n');
                }
                (ScrubOutcome::Unsupported { reason }, _) => {
                    o.push_str("    FLAG: no scrubbed copy: this type cannot be scrubbed (");
                    push_clean(o, reason, false);
                    o.push_str(")\n");
                }
                (ScrubOutcome::Failed { reason }, _) => {
                    o.push_str("    FLAG: no scrubbed copy: scrubbing failed (");
                    push_clean(o, reason, false);
                    o.push_str(")\n");
                }
                (ScrubOutcome::Scrubbed, None) => {
                    o.push_str(
                        "    FLAG: no scrubbed copy: it is missing from the archive; do not share the original\n",
                    );
                }
            }
            if a.metadata.findings.is_empty() {
                o.push_str("    metadata found in the original: none\n");
            }
            for f in &a.metadata.findings {
                o.push_str("    ");
                push_finding(o, f);
                o.push('\n');
            }
        }
    }
    o.push('\n');
    let origin = &r.origin;
    o.push_str("Chain of custody:\n");
    let _ = writeln!(
        o,
        "  relay {} (key {})",
        crate::archive::relay_fingerprint(&origin.relay_key),
        origin.relay_key
    );
    let _ = writeln!(
        o,
        "  batch {} ({}), manifest sha256 {}",
        origin.batch_sequence, origin.batch_id, origin.manifest_sha256
    );
    let _ = writeln!(
        o,
        "  ciphertext sha256 {}, key epoch {}",
        origin.ciphertext_sha256, origin.epoch
    );
    for other in also_received {
        let _ = writeln!(
            o,
            "  also received in relay {} batch {} ({}): same ciphertext, nothing added",
            crate::archive::relay_fingerprint(&other.relay_key),
            other.batch_sequence,
            other.batch_id
        );
    }
    out
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::Jpeg => "JPEG image",
        FileKind::Png => "PNG image",
        FileKind::Webp => "WebP image",
        FileKind::Heic => "HEIC image",
        FileKind::Pdf => "PDF document",
        FileKind::Text => "plain text",
        FileKind::Other => "other (not an image, PDF or plain text)",
    }
}

/// One metadata finding, as `show` prints it.
fn push_finding(o: &mut String, f: &Finding) {
    match f {
        Finding::Gps {
            latitude,
            longitude,
        } => {
            o.push_str("FLAG: GPS position in the original");
            if let (Some(lat), Some(lon)) = (latitude, longitude) {
                let _ = write!(o, ": {lat:.5}, {lon:.5}");
            }
        }
        Finding::Author { value } => {
            o.push_str("FLAG: author name in the original: ");
            push_clean(o, value, false);
        }
        Finding::Device { field, value } => {
            o.push_str("FLAG: device ");
            push_clean(o, field, false);
            o.push_str(" in the original: ");
            push_clean(o, value, false);
        }
        Finding::Other { field, value } => {
            o.push_str("metadata in the original: ");
            push_clean(o, field, false);
            o.push_str(": ");
            push_clean(o, value, false);
        }
    }
}

/// `s` with control and deceptive characters escaped (one line).
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_clean(&mut out, s, false);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use format::{Attachment, Digest, TESTIMONY_FORMAT};
    use proptest::prelude::*;

    fn testimony(text: &str, value: &str) -> Testimony {
        Testimony {
            format: TESTIMONY_FORMAT.into(),
            form_version: 1,
            language: "ru".into(),
            received_day: "2026-11-27".parse().unwrap(),
            fields: [("region".to_owned(), value.to_owned())].into(),
            labels: Default::default(),
            text: text.into(),
            attachments: vec![Attachment {
                name: "photo.jpg".into(),
                size: 3,
                sha256: Digest::of(b"abc"),
            }],
        }
    }

    #[test]
    fn renders_fields_text_and_attachments() {
        let id = SubmissionId::from_bytes([1; 16]);
        let out = render(&id, 3, None, &testimony("Строка 1\r\nСтрока 2", "Aktobe"));
        assert!(out.contains("Received: 2026-11-27\nKey epoch: 3\n"));
        assert!(out.contains("region: Aktobe\n"));
        assert!(out.contains("Text:\nСтрока 1\nСтрока 2\n"));
        assert!(out.contains(&format!(
            "  01-photo.jpg  [photo.jpg]  3 bytes  sha256 {}",
            Digest::of(b"abc")
        )));
    }

    #[test]
    fn names_the_thread_when_there_is_one() {
        let id = SubmissionId::from_bytes([1; 16]);
        let thread = ThreadId::from_bytes([0xab; 16]);
        let out = render(&id, 2, Some(&thread), &testimony("t", "x"));
        assert!(
            out.contains(&format!("Key epoch: 2\nThread: {thread}\nLanguage: ru\n")),
            "{}",
            *out
        );
        let out = render(&id, 2, None, &testimony("t", "x"));
        assert!(!out.contains("Thread"), "{}", *out);
    }

    #[test]
    fn labelled_answers_show_the_question_and_the_answer() {
        let id = SubmissionId::from_bytes([1; 16]);
        let mut t = testimony("text", "almaty-city");
        t.labels.insert(
            "region".to_owned(),
            format::FieldLabel {
                question: "Region or city".to_owned(),
                answer: Some("Almaty (city)".to_owned()),
            },
        );
        let out = render(&id, 1, None, &t);
        assert!(
            out.contains("Region or city: Almaty (city) (almaty-city)\n"),
            "{}",
            *out
        );
        t.labels.get_mut("region").unwrap().answer = None;
        let out = render(&id, 1, None, &t);
        assert!(out.contains("Region or city: almaty-city\n"), "{}", *out);
    }

    #[test]
    fn escapes_terminal_sequences() {
        let id = SubmissionId::from_bytes([1; 16]);
        let out = render(&id, 1, None, &testimony("a\x1b]0;pwned\x07b", "x\ny: z"));
        assert!(!out.contains('\x1b'));
        assert!(!out.contains('\x07'));
        assert!(out.contains("region: x\\u{000a}y: z\n"));
    }

    proptest! {
        #[test]
        fn output_has_no_control_characters(text in any::<String>(), value in any::<String>()) {
            let id = SubmissionId::from_bytes([2; 16]);
            let out = render(&id, 1, None, &testimony(&text, &value));
            prop_assert!(out.chars().all(|c| c == '\n' || c == '\t'
                || !(c.is_control() || format::is_deceptive(c))));
            // Each field stays on its own line.
            let field_lines = out.lines().filter(|l| l.starts_with("region: ")).count();
            prop_assert!(field_lines >= 1);
        }
    }
}
