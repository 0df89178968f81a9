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
        // With the form's English wording when the testimony carries it:
        // "What is it about?: Health care and medical workers (health)".
        for (key, value) in &t.fields {
            match t.labels.get(key) {
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
                }
                None => {
                    push_clean(o, key, false);
                    o.push_str(": ");
                    push_clean(o, value, false);
                }
            }
            o.push('\n');
        }
        o.push('\n');
    }
    o.push_str("Text:\n");
    push_clean(o, &t.text, true);
    if !t.text.ends_with('\n') {
        o.push('\n');
    }
    o.push('\n');
    if t.attachments.is_empty() {
        o.push_str("Attachments: none\n");
    } else {
        let _ = writeln!(o, "Attachments ({}), in files/:", t.attachments.len());
        for a in &t.attachments {
            o.push_str("  ");
            push_clean(o, &a.name, false);
            let _ = writeln!(o, "  {} bytes  sha256 {}", a.size, a.sha256);
        }
    }
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
            "photo.jpg  3 bytes  sha256 {}",
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
