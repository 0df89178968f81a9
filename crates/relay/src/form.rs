//! The questionnaire: what the form asks, in every language.
//!
//! The operator defines it in `relay.toml`'s `[form]` section; without one,
//! the relay uses `default_form.toml` (compiled in), made for the first
//! users. Answers are stored under stable keys (`category = "health"`), and
//! the English wording of each question and answer travels with them inside
//! the sealed testimony so an offline reviewer can show them labelled.

use serde::Deserialize;

use crate::web::i18n::Lang;

/// The default questionnaire (`crates/relay/src/default_form.toml`).
pub const DEFAULT_FORM: &str = include_str!("default_form.toml");

/// Keys the built-in questions use; extra questions must not take them.
/// They include the names the XForm gives its other elements (the
/// attachment questions, `language`, `meta`) and the keys the OpenRosa
/// intake records (`channel`, `openrosa_dropped`, `openrosa_part`).
const RESERVED_KEYS: &[&str] = &[
    "category",
    "region",
    "events_month",
    "text",
    "files",
    "kind",
    "channel",
    "language",
    "meta",
    "openrosa_dropped",
    "openrosa_part",
    "openrosa_encrypted",
    "photo_1",
    "photo_2",
    "photo_3",
    "video",
    "audio",
    "document",
];
/// Longest label, in characters.
const MAX_LABEL_CHARS: usize = 300;
/// Longest help text, in characters.
const MAX_HELP_CHARS: usize = 1000;

/// A text in each language; English is required, the others fall back to it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// English.
    pub en: String,
    /// Russian.
    pub ru: Option<String>,
    /// Kazakh.
    pub kk: Option<String>,
}

impl Labels {
    /// The text in `lang`, or English.
    pub fn get(&self, lang: Lang) -> &str {
        let own = match lang {
            Lang::En => None,
            Lang::Ru => self.ru.as_deref(),
            Lang::Kk => self.kk.as_deref(),
        };
        own.unwrap_or(&self.en)
    }

    fn check(&self, key: &str, max: usize) -> Result<(), String> {
        for (lang, text) in [
            ("en", Some(&self.en)),
            ("ru", self.ru.as_ref()),
            ("kk", self.kk.as_ref()),
        ] {
            if let Some(t) = text
                && (t.trim().is_empty() || t.chars().count() > max)
            {
                return Err(format!("key `{key}.{lang}`: must be 1 to {max} characters"));
            }
        }
        Ok(())
    }
}

/// One choice of a list (a category, a region, an option).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// Stable key stored in the testimony. Never change it once in use.
    pub key: String,
    /// English.
    pub en: String,
    /// Russian.
    pub ru: Option<String>,
    /// Kazakh.
    pub kk: Option<String>,
}

impl Choice {
    /// The label in `lang`, or English.
    pub fn label(&self, lang: Lang) -> &str {
        let own = match lang {
            Lang::En => None,
            Lang::Ru => self.ru.as_deref(),
            Lang::Kk => self.kk.as_deref(),
        };
        own.unwrap_or(&self.en)
    }

    fn labels(&self) -> Labels {
        Labels {
            en: self.en.clone(),
            ru: self.ru.clone(),
            kk: self.kk.clone(),
        }
    }
}

/// What kind of answer an extra question takes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QuestionKind {
    /// A line of text.
    Text,
    /// One of the question's options.
    Choice,
    /// A month and year (coarse on purpose).
    Month,
}

/// An extra question the operator adds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Stable key stored in the testimony.
    pub key: String,
    /// The kind of answer.
    pub kind: QuestionKind,
    /// Whether the form refuses to be sent without an answer.
    #[serde(default)]
    pub required: bool,
    /// The question.
    pub label: Labels,
    /// Help under the question.
    pub help: Option<Labels>,
    /// Options, for `kind = "choice"`.
    #[serde(default)]
    pub option: Vec<Choice>,
}

/// The questionnaire as the operator writes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Form {
    /// Recorded in every testimony; bump it when the questions change.
    #[serde(default = "one")]
    pub version: u32,
    /// The language `/` sends a browser to when its `Accept-Language`
    /// names none of ours.
    pub default_language: String,
    /// Help text under the form's title.
    pub help: Option<Labels>,
    /// What the testimony is about (required).
    pub category: Vec<Choice>,
    /// Where it happened: a list to choose from; without one, free text.
    #[serde(default)]
    pub region: Vec<Choice>,
    /// Extra questions, after the built-in ones.
    #[serde(default)]
    pub question: Vec<Question>,
}

fn one() -> u32 {
    1
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 48
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && key.as_bytes()[0].is_ascii_alphanumeric()
}

fn check_choices(list: &[Choice], name: &str) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, c) in list.iter().enumerate() {
        if !valid_key(&c.key) {
            return Err(format!(
                "key `{name}[{i}].key`: {:?} must be 1 to 48 characters a-z, 0-9, - or _",
                c.key
            ));
        }
        if !seen.insert(c.key.as_str()) {
            return Err(format!("key `{name}[{i}].key`: {:?} is used twice", c.key));
        }
        c.labels().check(&format!("{name}[{i}]"), MAX_LABEL_CHARS)?;
    }
    Ok(())
}

impl Form {
    /// The default questionnaire.
    pub fn default_form() -> Result<Self, String> {
        let form: Form = toml::from_str(DEFAULT_FORM).map_err(|e| e.to_string())?;
        form.check("form")?;
        Ok(form)
    }

    /// The default language.
    pub fn default_lang(&self) -> Lang {
        Lang::from_code(&self.default_language).unwrap_or(Lang::Ru)
    }

    /// The category with `key`.
    pub fn category(&self, key: &str) -> Option<&Choice> {
        self.category.iter().find(|c| c.key == key)
    }

    /// The region with `key`.
    pub fn region(&self, key: &str) -> Option<&Choice> {
        self.region.iter().find(|c| c.key == key)
    }

    /// Checks the rules; errors name the key under `prefix` (`form`).
    pub fn check(&self, prefix: &str) -> Result<(), String> {
        if Lang::from_code(&self.default_language).is_none() {
            return Err(format!(
                "key `{prefix}.default_language`: must be \"ru\", \"kk\" or \"en\", found {:?}",
                self.default_language
            ));
        }
        if self.category.is_empty() {
            return Err(format!(
                "key `{prefix}.category`: at least one category is required"
            ));
        }
        check_choices(&self.category, &format!("{prefix}.category"))?;
        check_choices(&self.region, &format!("{prefix}.region"))?;
        if let Some(help) = &self.help {
            help.check(&format!("{prefix}.help"), MAX_HELP_CHARS)?;
        }
        let mut keys = std::collections::HashSet::new();
        for (i, q) in self.question.iter().enumerate() {
            let at = format!("{prefix}.question[{i}]");
            if !valid_key(&q.key) || RESERVED_KEYS.contains(&q.key.as_str()) {
                return Err(format!(
                    "key `{at}.key`: {:?} must be 1 to 48 characters a-z, 0-9, - or _, and not one of {RESERVED_KEYS:?}",
                    q.key
                ));
            }
            if !keys.insert(q.key.as_str()) {
                return Err(format!("key `{at}.key`: {:?} is used twice", q.key));
            }
            q.label.check(&format!("{at}.label"), MAX_LABEL_CHARS)?;
            if let Some(h) = &q.help {
                h.check(&format!("{at}.help"), MAX_HELP_CHARS)?;
            }
            match (q.kind, q.option.is_empty()) {
                (QuestionKind::Choice, true) => {
                    return Err(format!("key `{at}.option`: a choice needs options"));
                }
                (QuestionKind::Text | QuestionKind::Month, false) => {
                    return Err(format!("key `{at}.option`: only a choice has options"));
                }
                _ => {}
            }
            check_choices(&q.option, &format!("{at}.option"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_form_is_complete_in_three_languages() {
        let f = Form::default_form().unwrap();
        let keys: Vec<&str> = f.category.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            ["health", "speech", "prisoners", "education", "other"]
        );
        assert_eq!(f.default_lang(), Lang::Ru);
        // Kazakhstan: 17 regions, 3 cities of republican significance, and
        // "outside".
        assert_eq!(f.region.len(), 21);
        assert!(f.region("almaty-city").is_some() && f.region("outside").is_some());
        for c in f.category.iter().chain(&f.region) {
            assert!(
                c.ru.is_some() && c.kk.is_some(),
                "{} lacks a translation",
                c.key
            );
        }
        assert!(
            f.help
                .as_ref()
                .is_some_and(|h| h.ru.is_some() && h.kk.is_some())
        );
    }

    fn parse(extra: &str) -> Result<Form, String> {
        let text =
            format!("default_language = \"kk\"\n[[category]]\nkey = \"a\"\nen = \"A\"\n{extra}");
        let f: Form = toml::from_str(&text).map_err(|e| e.to_string())?;
        f.check("form").map(|()| f)
    }

    #[test]
    fn rules_name_the_key() {
        assert!(parse("").is_ok());
        let cases = [
            (
                "[[category]]\nkey = \"a\"\nen = \"again\"\n",
                "form.category[1].key",
            ),
            (
                "[[category]]\nkey = \"Bad Key\"\nen = \"x\"\n",
                "form.category[1].key",
            ),
            ("[[region]]\nkey = \"r\"\nen = \"\"\n", "form.region[0].en"),
            (
                "[[question]]\nkey = \"region\"\nkind = \"text\"\nlabel = { en = \"x\" }\n",
                "form.question[0].key",
            ),
            (
                "[[question]]\nkey = \"q\"\nkind = \"choice\"\nlabel = { en = \"x\" }\n",
                "form.question[0].option",
            ),
            // The XForm's own element names and the OpenRosa intake's keys.
            (
                "[[question]]\nkey = \"video\"\nkind = \"text\"\nlabel = { en = \"x\" }\n",
                "form.question[0].key",
            ),
            (
                "[[question]]\nkey = \"channel\"\nkind = \"text\"\nlabel = { en = \"x\" }\n",
                "form.question[0].key",
            ),
            (
                "[[question]]\nkey = \"q\"\nkind = \"text\"\nlabel = { en = \"x\" }\n[[question.option]]\nkey = \"o\"\nen = \"O\"\n",
                "form.question[0].option",
            ),
        ];
        for (extra, key) in cases {
            let e = parse(extra).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let e = parse("").map(|mut f| {
            f.default_language = "de".into();
            f.check("form")
        });
        assert!(e.unwrap().unwrap_err().contains("form.default_language"));
        assert!(
            parse("[[question]]\nkey = \"q\"\nkind = \"date\"\nlabel = { en = \"x\" }\n").is_err()
        );
    }

    #[test]
    fn labels_fall_back_to_english() {
        let f = parse("").unwrap();
        assert_eq!(f.category[0].label(Lang::Kk), "A");
        assert_eq!(f.default_lang(), Lang::Kk);
    }
}
