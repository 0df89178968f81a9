//! How strong a new passphrase is: what `reviewer keygen` refuses unless
//! `--allow-weak-passphrase`.
//!
//! A reviewer identity file is encrypted with age's scrypt passphrase
//! mode. Whoever copies the file (a stolen laptop, a backup stick) can try
//! passphrases offline for as long as they like: scrypt makes each guess
//! cost about a second of one core, so a passphrase from a list of common
//! ones, or one word with a year after it, falls in days. Six words chosen
//! at random (diceware: 77 bits) do not fall at all.
//!
//! No rule here can tell a random passphrase from a guessable one; they
//! catch what is surely weak, and [`SUGGESTION`] says what is strong. A
//! passphrase is refused when it is
//!
//! 1. shorter than [`MIN_CHARS`] characters (Unicode scalar values: a
//!    Kazakh or Russian passphrase counts its letters, not its bytes);
//! 2. made of fewer than [`MIN_DISTINCT`] different characters
//!    (`aaaaaaaaaaaa`, `121212121212`);
//! 3. one run of letters shorter than [`LONG_WORD`] letters, with at most
//!    digits and symbols around it (`Almaty2026!`, `passwordpassword`,
//!    `йцукенгшщзхъ`), or digits and symbols only, shorter than
//!    [`LONG_WORD`] (a phone number, a date);
//! 4. on a small embedded list of common passwords, phrases and keyboard
//!    patterns, compared without case, spaces or punctuation and with any
//!    digits after them (`Correct-Horse-Battery-Staple 2026`, `pass word
//!    1234`, `1qaz2wsx3edc`).
//!
//! The passphrase is only read here; every copy made to compare it
//! (lowercased, without separators) is zeroized when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// The fewest characters a passphrase may have.
pub const MIN_CHARS: usize = 12;

/// The fewest different characters a passphrase may have.
pub const MIN_DISTINCT: usize = 5;

/// A run of letters (or of digits and symbols) at least this long is not
/// taken for a single word (or number): dictionary words this long are
/// rare, and so many random letters are strong.
pub const LONG_WORD: usize = 20;

/// What a weak passphrase should be replaced with, for error messages.
pub const SUGGESTION: &str = "six words chosen at random, with dice and a printed word list (the EFF large list, eff.org/dice), separated by spaces";

/// Common passwords, phrases and keyboard patterns that the rules above
/// miss when they are written with spaces or punctuation, or mix letters
/// and digits: compared as lowercase letters and digits only, with any
/// digits after the entry ignored (`pass word 123` is `password`).
/// Written as compared.
const COMMON: &[&str] = &[
    // The most common passwords, and the same in Russian and Kazakh.
    "password",
    "passw0rd",
    "qwerty",
    "iloveyou",
    "letmein",
    "welcome",
    "admin",
    "dragon",
    "monkey",
    "sunshine",
    "princess",
    "football",
    "пароль",
    "привет",
    "ялюблютебя",
    "менсенісүйемін",
    // Famous phrases and passphrases.
    "correcthorsebatterystaple",
    "thequickbrownfoxjumpsoverthelazydog",
    "thequickbrownfox",
    "tobeornottobe",
    "iloveyousomuch",
    "iloveyouforever",
    "letmeinplease",
    "maytheforcebewithyou",
    "helloworld",
    "thisismypassword",
    "changemeplease",
    "opensesame",
    // Keyboard patterns that mix letters and digits.
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "1q2w3e4r5t6y7u",
    "1q2w3e4r5t6y7u8i",
    "q1w2e3r4t5y6",
    "q1w2e3r4t5y6u7",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "zaq12wsxcde3",
    "zaq1xsw2cde3",
    "abc123abc",
    "abcd1234abcd",
    "a1b2c3d4e5f6",
    "1a2b3c4d5e6f",
];

/// Why a passphrase is weak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weakness {
    /// Fewer than [`MIN_CHARS`] characters.
    Short {
        /// How many it has.
        chars: usize,
    },
    /// Fewer than [`MIN_DISTINCT`] different characters.
    Repetitive,
    /// One word or number, with at most digits or symbols around it.
    OneWord,
    /// On the list of common passwords and phrases.
    Common,
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weakness::Short { chars: 1 } => {
                write!(f, "it is 1 character long; at least {MIN_CHARS} are needed")
            }
            Weakness::Short { chars } => write!(
                f,
                "it is {chars} characters long; at least {MIN_CHARS} are needed"
            ),
            Weakness::Repetitive => {
                write!(f, "it has fewer than {MIN_DISTINCT} different characters")
            }
            Weakness::OneWord => f.write_str(
                "it is a single word or number, with at most digits or symbols around it",
            ),
            Weakness::Common => {
                f.write_str("it is on the list of the most common passwords and phrases")
            }
        }
    }
}

/// Why `pass` is weak, or `None` when none of the rules above applies.
pub fn weakness(pass: &str) -> Option<Weakness> {
    let chars = pass.chars().count();
    if chars < MIN_CHARS {
        return Some(Weakness::Short { chars });
    }
    let mut distinct: Zeroizing<Vec<char>> = Zeroizing::new(pass.chars().collect());
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT {
        return Some(Weakness::Repetitive);
    }
    if is_one_word(pass) {
        return Some(Weakness::OneWord);
    }
    // Lowercase letters and digits only: "Correct Horse-Battery staple!"
    // is the list's "correcthorsebatterystaple".
    let mut folded = Zeroizing::new(String::with_capacity(pass.len()));
    for c in pass.chars().filter(|c| c.is_alphanumeric()) {
        folded.extend(c.to_lowercase());
    }
    // A common entry with digits after it is as common.
    let listed = COMMON.iter().any(|entry| {
        folded
            .strip_prefix(entry)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
    });
    listed.then_some(Weakness::Common)
}

/// One run of letters shorter than [`LONG_WORD`], with at most digits
/// and symbols before and after it; or no letter at all, shorter than
/// [`LONG_WORD`].
fn is_one_word(pass: &str) -> bool {
    let core = pass.trim_matches(|c: char| !c.is_alphabetic());
    if core.is_empty() {
        return pass.chars().count() < LONG_WORD;
    }
    core.chars().all(char::is_alphabetic) && core.chars().count() < LONG_WORD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused_with_their_reason() {
        let cases: &[(&str, Weakness)] = &[
            ("a", Weakness::Short { chars: 1 }),
            ("", Weakness::Short { chars: 0 }),
            ("password", Weakness::Short { chars: 8 }),
            ("Tr0ub4dor&3", Weakness::Short { chars: 11 }),
            // Eleven letters in 22 bytes: still too short.
            ("Қазақстаным", Weakness::Short { chars: 11 }),
            ("aaaaaaaaaaaaaaaaaaaaaaaa", Weakness::Repetitive),
            ("121212121212", Weakness::Repetitive),
            ("abababababab", Weakness::Repetitive),
            ("passwordpassword", Weakness::OneWord),
            ("Almaty2026!!", Weakness::OneWord),
            ("!!Kazakhstan2026", Weakness::OneWord),
            ("Kazakhstan 2026", Weakness::OneWord),
            ("йцукенгшщзхъ", Weakness::OneWord),
            ("+7 701 234 56 78", Weakness::OneWord),
            ("2026-11-27 12:00", Weakness::OneWord),
            ("correct horse battery staple", Weakness::Common),
            ("Correct-Horse-Battery-Staple!", Weakness::Common),
            ("correct horse battery staple 2026", Weakness::Common),
            ("1q2w3e4r5t6y", Weakness::Common),
            ("1qaz2wsx3edc", Weakness::Common),
            ("pass word 1234", Weakness::Common),
            ("Я люблю тебя!!", Weakness::Common),
        ];
        for (pass, want) in cases {
            assert_eq!(weakness(pass), Some(*want), "{pass:?}");
        }
    }

    #[test]
    fn every_listed_entry_is_refused_however_written() {
        for entry in COMMON {
            assert!(
                entry
                    .chars()
                    .all(|c| c.is_alphanumeric() && !c.is_uppercase()),
                "{entry:?} is not written as compared"
            );
            for pass in [
                (*entry).to_owned(),
                format!("{entry} 2026 !"),
                format!("{} 1234", entry.to_uppercase()),
            ] {
                assert!(weakness(&pass).is_some(), "{pass:?}");
            }
        }
    }

    #[test]
    fn random_words_pass() {
        for pass in [
            "cement tulip grudge ransack omen fiddle",
            "Мен таңертең үйден шықтым да жаңбыр жауды",
            "ugly-piano-7-lunar-brisk",
            "correct horse battery stapler",
            // Long enough that no rule here calls it one word.
            "достопримечательность",
        ] {
            assert_eq!(weakness(pass), None, "{pass:?}");
        }
    }
}
