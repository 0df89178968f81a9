//! Attachment names: hostile input on the relay, hostile again on the
//! reviewer's machine.
//!
//! The relay sanitises the name a browser sent before it goes into the
//! sealed tar; the reviewer runs the same function again on every name it
//! reads back, because a sealed file can come from anyone who knows the
//! reviewers' public keys, not only from this relay.

/// The longest sanitised name, in bytes of UTF-8.
///
/// 100 bytes is the ustar `name` field: with `files` in the ustar `prefix`
/// field, every attachment entry fits a plain ustar header, no GNU or pax
/// extension needed, which keeps the plaintext length exactly computable
/// (see [`crate::unpadded_tar_len`]). It is 100 ASCII or 50 Cyrillic
/// characters; longer names are cut, keeping a short extension.
pub const MAX_NAME_BYTES: usize = 100;

/// Longest extension (after the last dot) kept whole when a name is cut.
const MAX_EXTENSION_BYTES: usize = 16;

/// What an empty or entirely unusable name becomes.
const FALLBACK_NAME: &str = "attachment";

/// Device names Windows reserves in any directory, with any extension.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Characters that make text look like something it is not: bidirectional
/// overrides and isolates (`evil\u{202E}gpj.exe` displays as `evilexe.jpg`),
/// zero-width characters, the byte-order mark and the Arabic letter mark.
/// Names lose them; a reader showing untrusted text should escape them.
pub fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

/// Characters that are not allowed in names on Windows or that shells and
/// file managers treat specially; replaced by `_`.
fn is_reserved(c: char) -> bool {
    matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Turns an untrusted file name into one that is safe to store and to create
/// on Linux, macOS or Windows.
///
/// Rules (`docs/format.md`, "Attachment names"):
/// 1. keep only the last path component (after the last `/` or `\`);
/// 2. drop control characters, bidirectional overrides and zero-width
///    characters; replace `< > : " | ? *` with `_`;
/// 3. trim white space, leading dots (no hidden files, no `..`) and trailing
///    dots and spaces (Windows drops them);
/// 4. prefix `_` to Windows device names (`CON`, `nul.txt`, `COM1`, ...);
/// 5. cut to [`MAX_NAME_BYTES`] at a character boundary, keeping an
///    extension of up to 16 bytes;
/// 6. an empty result becomes `attachment`.
///
/// The function is idempotent: sanitising a sanitised name changes nothing.
pub fn sanitize_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_deceptive(*c))
        .map(|c| if is_reserved(c) { '_' } else { c })
        .collect();
    let mut name = trim(&cleaned).to_owned();
    if name.len() > MAX_NAME_BYTES {
        name = shorten(&name);
    }
    let mut name = trim(&name).to_owned();
    if name.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    // After cutting, not before: cutting can turn `CON   …x.ext` into
    // `CON.ext` (a regression case found by fuzzing). The `_` cannot make a
    // reserved name again, and if it makes the name too long, cutting keeps
    // it in front.
    if is_windows_reserved(&name) {
        name.insert(0, '_');
        if name.len() > MAX_NAME_BYTES {
            name = trim(&shorten(&name)).to_owned();
        }
    }
    name
}

/// Whether `name`'s stem (before the first dot, trailing spaces ignored) is
/// a Windows device name.
fn is_windows_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem))
}

/// Trims what rule 3 removes, repeatedly until stable.
fn trim(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
}

/// Cuts `name` to at most [`MAX_NAME_BYTES`] bytes, keeping a short
/// extension when there is one.
fn shorten(name: &str) -> String {
    let ext = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= MAX_EXTENSION_BYTES + 1 => &name[i..],
        _ => "",
    };
    let stem = &name[..name.len() - ext.len()];
    let budget = MAX_NAME_BYTES - ext.len();
    let mut cut = budget.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = trim(&stem[..cut]).to_owned();
    out.push_str(ext);
    out
}

/// Makes each name in `names` unique (case-insensitively, since reviewers'
/// laptops may have case-insensitive file systems) by inserting ` (2)`,
/// ` (3)`, ... before the extension. Names must already be sanitised; the
/// results are sanitised too.
pub fn unique_names<I, S>(names: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref();
        let mut candidate = name.to_owned();
        let mut n = 2u32;
        while !seen.insert(candidate.to_lowercase()) {
            let (stem, ext) = match name.rfind('.') {
                Some(i) if i > 0 => name.split_at(i),
                _ => (name, ""),
            };
            let suffix = format!(" ({n}){ext}");
            let mut cut = MAX_NAME_BYTES.saturating_sub(suffix.len()).min(stem.len());
            while !stem.is_char_boundary(cut) {
                cut -= 1;
            }
            candidate = format!("{}{suffix}", &stem[..cut]);
            n += 1;
        }
        out.push(candidate);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names() {
        let cases = [
            ("../../evil", "evil"),
            ("..", "attachment"),
            ("", "attachment"),
            ("/etc/passwd", "passwd"),
            ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
            (".bashrc", "bashrc"),
            ("evil\u{202E}gpj.exe", "evilgpj.exe"),
            ("a\u{0}b\nc.txt", "abc.txt"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("what?.pdf", "what_.pdf"),
            ("report. ", "report"),
            ("Протокол допроса.pdf", "Протокол допроса.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_file_name(raw), want, "for {raw:?}");
        }
    }

    #[test]
    fn cutting_never_leaves_a_windows_device_name() {
        // Found by the file_name fuzz target: the reserved-name check ran
        // before cutting, and cutting produced `CON.x…`.
        let raw = format!("CON{}x..x(t{}t#t0", " ".repeat(100), '\u{fffd}');
        let s = sanitize_file_name(&raw);
        assert!(!is_windows_reserved(&s), "{s:?}");
        assert_eq!(sanitize_file_name(&s), s);
        let raw = std::fs::read("../../fuzz/corpus/file_name/regression-reserved-after-cut")
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if let Ok(raw) = raw {
            let s = sanitize_file_name(&raw);
            assert!(!is_windows_reserved(&s), "{s:?}");
            assert_eq!(sanitize_file_name(&s), s);
        }
    }

    #[test]
    fn long_names_keep_extension() {
        let long = format!("{}.jpeg", "я".repeat(300));
        let s = sanitize_file_name(&long);
        assert!(s.len() <= MAX_NAME_BYTES);
        assert!(s.ends_with(".jpeg"));
        let no_ext = "x".repeat(10_000);
        assert_eq!(sanitize_file_name(&no_ext).len(), MAX_NAME_BYTES);
    }

    #[test]
    fn duplicates_get_numbered() {
        let names = unique_names(["a.jpg", "A.jpg", "a.jpg", "b"]);
        assert_eq!(names, ["a.jpg", "A (2).jpg", "a (3).jpg", "b"]);
    }

    proptest! {
        #[test]
        fn sanitised_names_are_safe(raw in any::<String>()) {
            let s = sanitize_file_name(&raw);
            prop_assert!(!s.is_empty());
            prop_assert!(s.len() <= MAX_NAME_BYTES);
            prop_assert!(!s.contains('/') && !s.contains('\\'));
            prop_assert!(!s.starts_with('.'));
            prop_assert!(s != "..");
            prop_assert!(!s.chars().any(|c| c.is_control() || is_deceptive(c)));
            prop_assert_eq!(sanitize_file_name(&s), s.clone(), "not idempotent");
        }

        #[test]
        fn unique_names_are_unique(raw in proptest::collection::vec("[aA.]{0,3}", 0..20)) {
            let sanitised: Vec<String> = raw.iter().map(|r| sanitize_file_name(r)).collect();
            let out = unique_names(&sanitised);
            let lower: std::collections::HashSet<String> =
                out.iter().map(|s| s.to_lowercase()).collect();
            prop_assert_eq!(lower.len(), out.len());
            for s in &out {
                prop_assert_eq!(&sanitize_file_name(s), s);
            }
        }
    }
}
