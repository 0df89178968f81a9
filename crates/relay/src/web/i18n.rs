//! Languages: every text a source sees comes from the Fluent files in
//! `crates/relay/locales/{en,ru,kk}/relay.ftl`, compiled into the binary.
//!
//! The language is part of the URL (`/en/`, `/ru/`, `/kk/`), never a cookie;
//! `/` redirects by `Accept-Language`. A message missing in Russian or
//! Kazakh falls back to English (a test lists any missing key).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // No Unicode isolation marks around placeables: the pages are
        // plain left-to-right HTML, and invisible bidi characters are what
        // the relay strips from file names elsewhere.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static EN: LazyLock<LanguageIdentifier> = LazyLock::new(|| langid!("en"));
static RU: LazyLock<LanguageIdentifier> = LazyLock::new(|| langid!("ru"));
static KK: LazyLock<LanguageIdentifier> = LazyLock::new(|| langid!("kk"));

/// The `Accept-Language` every Tor Browser sends (it spoofs English so
/// that the header cannot tell its users apart).
const TOR_BROWSER_ACCEPT_LANGUAGE: &str = "en-US,en;q=0.5";

/// A language the pages are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English.
    En,
    /// Russian.
    Ru,
    /// Kazakh (Cyrillic).
    Kk,
}

impl Lang {
    /// Every language, in the order the language links show them.
    pub const ALL: [Lang; 3] = [Lang::Kk, Lang::Ru, Lang::En];

    /// The code used in URLs, `<html lang>` and `testimony.json`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
            Lang::Kk => "kk",
        }
    }

    /// The language for a URL segment or config value.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            "kk" => Some(Lang::Kk),
            _ => None,
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::En => &EN,
            Lang::Ru => &RU,
            Lang::Kk => &KK,
        }
    }

    /// The best language for an `Accept-Language` header, or `default`.
    ///
    /// Takes the highest-weighted tag whose primary subtag is one of ours
    /// (`ru-RU` counts as `ru`); ties keep the header's order.
    ///
    /// Tor Browser sends the same `en-US,en;q=0.5` from every user, whatever
    /// their language, so that header says nothing: it gets `default` (the
    /// operator's language for the relay's sources), not English.
    pub fn negotiate(accept_language: Option<&str>, default: Lang) -> Lang {
        let Some(header) = accept_language else {
            return default;
        };
        let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.eq_ignore_ascii_case(TOR_BROWSER_ACCEPT_LANGUAGE) {
            return default;
        }
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',').take(32) {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim();
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::from_code(&primary)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map_or(default, |(_, l)| l)
    }
}

/// Looks messages up in one language.
#[derive(Clone, Copy, Debug)]
pub struct Tr {
    /// The language.
    pub lang: Lang,
}

impl Tr {
    /// The message `key`, falling back to English.
    pub fn t(&self, key: &str) -> String {
        LOCALES.lookup(self.lang.id(), key)
    }

    /// The message `key` with numeric arguments.
    pub fn t_n(&self, key: &str, args: &[(&'static str, u64)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue<'_>> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), FluentValue::from(*v)))
            .collect();
        LOCALES.lookup_with_args(self.lang.id(), key, &args)
    }

    /// Whether `key` exists in this very language (no fallback).
    pub fn has_own(&self, key: &str) -> bool {
        // Every placeable any message uses, so a message with arguments
        // does not look missing.
        let args: HashMap<&str, FluentValue<'_>> = [("files", 2u64), ("mib", 512), ("n", 3)]
            .into_iter()
            .map(|(k, v)| (k, FluentValue::from(v)))
            .collect();
        LOCALES
            .lookup_single_language(self.lang.id(), key, Some(&args))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message keys of the English file, which is the reference.
    fn english_keys() -> Vec<String> {
        include_str!("../../locales/en/relay.ftl")
            .lines()
            .filter_map(|l| l.split_once(" ="))
            .map(|(k, _)| k.trim().to_owned())
            .filter(|k| !k.starts_with('#') && !k.is_empty() && !k.contains(' '))
            .collect()
    }

    #[test]
    fn kazakh_pages_say_siz_with_a_capital_everywhere() {
        // The Kazakh file's own rule (its first comment): the polite «Сіз»,
        // capitalised, in every form («Сізге», «Сіздің»…). A word that
        // merely ends in -сіз ("without") is not the pronoun.
        let kk = include_str!("../../locales/kk/relay.ftl");
        let mut lower = Vec::new();
        for (n, line) in kk.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            for (i, _) in line.match_indices("сіз") {
                let starts_word = line[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphabetic());
                if starts_word {
                    lower.push(format!("line {}: {line}", n + 1));
                }
            }
        }
        assert!(lower.is_empty(), "lower-case «сіз»:\n{}", lower.join("\n"));
    }

    #[test]
    fn no_message_is_missing_in_russian_or_kazakh() {
        let keys = english_keys();
        assert!(keys.len() > 50, "{}", keys.len());
        let mut missing = Vec::new();
        for lang in [Lang::Ru, Lang::Kk] {
            for k in &keys {
                if !(Tr { lang }).has_own(k) {
                    missing.push(format!("{}: {k}", lang.code()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "missing translations:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn messages_are_translated_and_fall_back() {
        let en = Tr { lang: Lang::En };
        let ru = Tr { lang: Lang::Ru };
        let kk = Tr { lang: Lang::Kk };
        assert_eq!(en.t("language-name"), "English");
        assert_ne!(ru.t("submit-button"), en.t("submit-button"));
        assert_ne!(kk.t("submit-button"), en.t("submit-button"));
        assert_ne!(kk.t("submit-button"), ru.t("submit-button"));
        let help = en.t_n("field-files-help", &[("files", 20), ("mib", 512)]);
        assert!(help.contains("20") && help.contains("512"), "{help}");
        assert!(!help.contains('\u{2068}'), "no isolation marks");
    }

    #[test]
    fn negotiation() {
        let n = |h| Lang::negotiate(Some(h), Lang::Ru);
        assert_eq!(n("kk-KZ,kk;q=0.9,ru;q=0.8"), Lang::Kk);
        assert_eq!(n("en-US,en;q=0.9"), Lang::En);
        assert_eq!(n("de-DE,de;q=0.9"), Lang::Ru);
        assert_eq!(n("de;q=1, en;q=0.5, kk;q=0.7"), Lang::Kk);
        assert_eq!(n("kk;q=0, en;q=0.1"), Lang::En);
        assert_eq!(n(""), Lang::Ru);
        assert_eq!(n(";;;,,,q=x"), Lang::Ru);
        assert_eq!(Lang::negotiate(None, Lang::Kk), Lang::Kk);
        // Tor Browser's fixed header carries no preference.
        assert_eq!(n("en-US,en;q=0.5"), Lang::Ru);
        assert_eq!(n("en-US, en; q=0.5"), Lang::Ru);
        assert_eq!(n("en-US,en;q=0.9"), Lang::En);
    }
}
