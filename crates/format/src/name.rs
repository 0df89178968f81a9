//! Attachment names: hostile input on the relay, hostile again on the
//! reviewer's machine.
//!
//! The relay sanitises the name a browser sent before it goes into the
//! sealed tar; the reviewer runs the same function again on every name it
//! reads back, because a sealed file can come from anyone who knows the
//! reviewers' public keys, not only from this relay.

use unicode_normalization::UnicodeNormalization;

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
    shorten_to(name, MAX_NAME_BYTES)
}

/// Cuts `name` to at most `max` bytes, keeping a short extension when
/// there is one.
fn shorten_to(name: &str, max: usize) -> String {
    let ext = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= MAX_EXTENSION_BYTES + 1 => &name[i..],
        _ => "",
    };
    let stem = &name[..name.len() - ext.len()];
    let budget = max - ext.len();
    let mut cut = budget.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = trim(&stem[..cut]).to_owned();
    out.push_str(ext);
    out
}

/// The key under which two names are one name on some reviewer's file
/// system: the canonical caseless form of Unicode 15 §3.13 (D145),
/// `NFD(toCasefold(NFD(name)))`, with full case folding.
///
/// Reviewers use macOS and Windows laptops. APFS (by default) and HFS+
/// compare names without case and without normalization: `é` written as
/// one character (NFC) and as `e` plus a combining accent (NFD) are one
/// file, and so are `σ.jpg` and `ς.jpg` (final sigma folds to sigma), or
/// `STRASSE` and `straße` (full folding turns `ß` into `ss`). NTFS compares
/// without case too. `to_lowercase` alone tells all of these apart, so
/// both sides use this key: the relay to keep names unique
/// ([`unique_names`]), the reviewer to check what it writes.
pub fn fold_key(name: &str) -> String {
    let nfd: String = name.nfd().collect();
    caseless::default_case_fold_str(&nfd).nfd().collect()
}

/// Longest name [`disk_name`] returns, in bytes of UTF-8. APFS and ext4
/// allow 255 bytes, NTFS 255 UTF-16 units: 200 bytes leaves room for the
/// reviewer's own suffixes on every one of them.
pub const MAX_DISK_NAME_BYTES: usize = 200;

/// The name the reviewer writes attachment `index` (from 0) of `count`
/// under: `NN-<name>`, the 1-based index zero-padded to at least two
/// digits, then the sanitised `name` in NFC (the form macOS shows and
/// Windows stores as typed).
///
/// The index prefix makes the names of one submission distinct on every
/// file system, whatever the source sent: no two results for different
/// indexes have the same [`fold_key`], because their prefixes differ and
/// neither case folding nor normalization touches ASCII digits or `-`.
/// The prefix also keeps a name that is reserved on Windows (`CON`, `nul.txt`)
/// from being one (`01-CON`). The source's own name is kept in
/// `testimony.json`; this is only where the bytes go.
pub fn disk_name(index: usize, count: usize, name: &str) -> String {
    let width = count.max(1).to_string().len().max(2);
    let clean = sanitize_file_name(name);
    let nfc: String = clean.nfc().collect();
    let mut out = format!("{:0width$}-{nfc}", index + 1);
    if out.len() > MAX_DISK_NAME_BYTES {
        out = shorten_to(&out, MAX_DISK_NAME_BYTES);
    }
    // NFC of a sanitised name never ends in a dot or space, but a cut can.
    out.trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_owned()
}

/// Makes each name in `names` unique under [`fold_key`] (since reviewers'
/// laptops may have case- and normalization-insensitive file systems) by
/// inserting ` (2)`, ` (3)`, ... before the extension. Names must already
/// be sanitised; the results are sanitised too.
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
        while !seen.insert(fold_key(&candidate)) {
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

    /// Pairs that are one file on APFS (case- and normalization-insensitive)
    /// or NTFS (case-insensitive) but differ under `to_lowercase`, or byte
    /// for byte.
    const ONE_NAME_ON_A_LAPTOP: &[(&str, &str)] = &[
        ("σ.jpg", "ς.jpg"),
        ("Σ.jpg", "ς.jpg"),
        ("caf\u{e9}.txt", "cafe\u{301}.txt"),
        ("CAF\u{c9}.txt", "cafe\u{301}.txt"),
        ("STRASSE.pdf", "straße.pdf"),
        ("Photo.JPG", "photo.jpg"),
        ("Қазақ.txt", "қазақ.txt"),
        ("\u{212b}.txt", "\u{e5}.txt"),
    ];

    #[test]
    fn folding_joins_what_laptops_join() {
        for (a, b) in ONE_NAME_ON_A_LAPTOP {
            assert_eq!(fold_key(a), fold_key(b), "{a:?} / {b:?}");
        }
        assert_ne!(fold_key("a.jpg"), fold_key("b.jpg"));
        // What the relay's check missed before: to_lowercase keeps these apart.
        assert_ne!("σ.jpg".to_lowercase(), "ς.jpg".to_lowercase());
    }

    #[test]
    fn unique_names_fold_case_and_normalization() {
        let names: Vec<&str> = ONE_NAME_ON_A_LAPTOP
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .collect();
        let out = unique_names(&names);
        let keys: std::collections::HashSet<String> = out.iter().map(|n| fold_key(n)).collect();
        assert_eq!(keys.len(), out.len(), "{out:?}");
        assert_eq!(out[0], "σ.jpg");
        assert_eq!(out[1], "ς (2).jpg");
    }

    #[test]
    fn disk_names() {
        assert_eq!(disk_name(0, 1, "photo.jpg"), "01-photo.jpg");
        assert_eq!(disk_name(9, 10, "a"), "10-a");
        assert_eq!(disk_name(41, 1000, "a"), "0042-a");
        // NFD in, NFC out.
        assert_eq!(disk_name(0, 2, "cafe\u{301}.txt"), "01-caf\u{e9}.txt");
        // Sanitised again on the way (a Windows device name gets its `_`).
        assert_eq!(disk_name(0, 2, "CON"), "01-_CON");
        let long = "я".repeat(60) + ".jpg";
        let d = disk_name(0, 2, &long);
        assert!(d.len() <= MAX_DISK_NAME_BYTES && d.ends_with(".jpg"), "{d}");
    }

    proptest! {
        #[test]
        fn disk_names_never_fold_together(
            raw in proptest::collection::vec(any::<String>(), 0..40),
        ) {
            // Whatever the source sends, even names that fold together.
            let mut raw = raw;
            raw.extend(["σ.jpg", "ς.jpg", "É", "e\u{301}"].map(String::from));
            let written: Vec<String> =
                raw.iter().enumerate().map(|(i, n)| disk_name(i, raw.len(), n)).collect();
            let keys: std::collections::HashSet<String> =
                written.iter().map(|n| fold_key(n)).collect();
            prop_assert_eq!(keys.len(), written.len());
            for w in &written {
                prop_assert!(w.len() <= MAX_DISK_NAME_BYTES);
                prop_assert!(!w.ends_with('.') && !w.ends_with(' '));
                prop_assert!(!w.contains('/') && !w.contains('\\') && !w.contains(':'));
            }
        }

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
            let folded: std::collections::HashSet<String> =
                out.iter().map(|s| fold_key(s)).collect();
            prop_assert_eq!(folded.len(), out.len());
            for s in &out {
                prop_assert_eq!(&sanitize_file_name(s), s);
            }
        }
    }
}
