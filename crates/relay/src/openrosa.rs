//! OpenRosa for field apps (ODK Collect, Tella, KoboCollect, Enketo): the
//! questionnaire as an XForm, and the instances those apps send, read into
//! the same answers the web form sends.
//!
//! The XForm is generated from the same `[form]` config as the web form,
//! with the same field names (`category`, `region`, `events_month`,
//! `events_year`, `text`, the operator's keys), so an instance maps onto
//! the web form's answers one to one and is validated and sealed by the
//! same code ([`crate::web`]'s `validate`). It asks for no device metadata:
//! no `deviceid`, `subscriberid`, `phonenumber`, `username`, `email`, no
//! `start`/`end` timestamps; only `meta/instanceID` (a random id the app
//! makes, which joins the POSTs of one split submission).
//!
//! Instances are hostile input. They are parsed with `roxmltree`, which
//! refuses a DTD (so no external entities and no entity expansion: no XXE,
//! no billion laughs) and stops at a node limit, after a size limit on the
//! bytes read. Only the elements the served form asks for are kept; any
//! other element (device fields in `meta`, fields of another form, nested
//! elements) is dropped before sealing and counted.

use std::collections::BTreeMap;

use askama::Template;
use md5::Digest as _;
use zeroize::Zeroizing;

use crate::form::{Form, QuestionKind};
use crate::web::i18n::{Lang, Tr};

/// The form id in the XForm and in every instance.
pub const FORM_ID: &str = "relay-testimony";
/// The largest instance XML read (the longest testimony in the widest
/// characters, with every other answer, is well under it).
pub const MAX_INSTANCE_BYTES: usize = 1024 * 1024;
/// The most XML nodes an instance may have (elements, text, attributes'
/// owners): a form of this size has a few dozen.
const MAX_NODES: u32 = 2_000;
/// The deepest an instance may nest (`data/meta/instanceID` is 3).
const MAX_DEPTH: usize = 4;
/// The name the instance is sealed under, as one more attachment.
pub const INSTANCE_FILE_NAME: &str = "openrosa-instance.xml";

/// The attachment questions: name, media type, message key of the label.
const UPLOADS: &[(&str, &str, &str)] = &[
    ("photo_1", "image/*", "openrosa-photo"),
    ("photo_2", "image/*", "openrosa-photo"),
    ("photo_3", "image/*", "openrosa-photo"),
    ("video", "video/*", "openrosa-video"),
    ("audio", "audio/*", "openrosa-audio"),
    ("document", "*/*", "openrosa-document"),
];

/// The upload questions a relay with `max_files` attachments asks (one
/// fewer than the limit: the instance itself is sealed as a file).
pub fn uploads(max_files: usize) -> impl Iterator<Item = &'static str> {
    UPLOADS
        .iter()
        .take(max_files.saturating_sub(1))
        .map(|(name, _, _)| *name)
}

/// The served XForm.
#[derive(Debug, Clone)]
pub struct XForm {
    /// The document.
    pub xml: String,
    /// Its version (`<form version>-<8 hex of its hash>`): changes when the
    /// questionnaire does, and only then.
    pub version: String,
    /// `md5:<hex>` of the document, for the form list.
    pub hash: String,
}

struct Text {
    id: String,
    value: String,
}

struct Translation {
    name: &'static str,
    default: bool,
    texts: Vec<Text>,
}

struct Bind {
    name: String,
    kind: &'static str,
    required: bool,
    constraint: &'static str,
    calculate: &'static str,
}

enum ControlKind {
    Select1,
    Input,
    Upload,
}

struct Control {
    kind: ControlKind,
    name: String,
    hint: bool,
    items: Vec<String>,
    appearance: &'static str,
    mediatype: &'static str,
}

#[derive(Template)]
#[template(path = "openrosa/xform.xml")]
struct XFormTemplate {
    title: String,
    translations: Vec<Translation>,
    form_id: &'static str,
    version: String,
    elements: Vec<String>,
    binds: Vec<Bind>,
    controls: Vec<Control>,
    odk_key: Option<String>,
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Kk => "Қазақша (kk)",
        Lang::Ru => "Русский (ru)",
        Lang::En => "English (en)",
    }
}

/// The language an instance names (the `language` element the XForm
/// fills from the app's current translation), if it is one of ours.
fn lang_from_name(code: &str) -> Option<Lang> {
    Lang::from_code(code.trim())
}

/// Builds the XForm for `form`, asking for up to `max_files - 1`
/// attachments; with `odk_key` (base64 of an RSA SubjectPublicKeyInfo), an
/// ODK encrypted form: apps encrypt each submission to it on the phone.
pub fn xform(form: &Form, max_files: usize, odk_key: Option<&str>) -> XForm {
    let render = |version: &str| {
        let mut t = build(form, max_files, version);
        t.odk_key = odk_key.map(str::to_owned);
        t.render()
    };
    // The version names the document: hash it with a fixed placeholder.
    let draft = render("0").unwrap_or_default();
    let digest = sha256_hex(draft.as_bytes());
    let version = format!("{}-{}", form.version, &digest[..8]);
    let xml = render(&version).unwrap_or_default();
    let hash = format!("md5:{}", hex::encode(md5::Md5::digest(xml.as_bytes())));
    XForm { xml, version, hash }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A message in every language, by language code.
type ByLang = BTreeMap<&'static str, String>;

fn each(f: impl Fn(Lang) -> String) -> ByLang {
    Lang::ALL.iter().map(|l| (l.code(), f(*l))).collect()
}

fn msg(key: &str) -> ByLang {
    each(|l| Tr { lang: l }.t(key))
}

/// The XForm's parts, in the order the questions are asked.
#[derive(Default)]
struct Parts {
    elements: Vec<String>,
    binds: Vec<Bind>,
    controls: Vec<Control>,
    texts: Vec<(String, ByLang)>,
}

impl Parts {
    fn field(&mut self, name: &str, kind: &'static str, required: bool, label: ByLang) {
        self.elements.push(name.to_owned());
        self.binds.push(Bind {
            name: name.to_owned(),
            kind,
            required,
            constraint: if kind == "int" {
                // The relay checks the last hundred years itself; a bound
                // that moved with the calendar would change the form's
                // version every January and refuse what phones captured
                // in December.
                ". >= 1900 and . <= 2100"
            } else {
                ""
            },
            calculate: "",
        });
        self.texts.push((format!("{name}:label"), label));
    }

    fn control(&mut self, kind: ControlKind, name: &str, items: Vec<String>) {
        self.controls.push(Control {
            kind,
            name: name.to_owned(),
            hint: false,
            items,
            appearance: "",
            mediatype: "",
        });
    }

    fn select(&mut self, name: &str, label: ByLang, items: Vec<(String, ByLang)>, required: bool) {
        self.field(name, "string", required, label);
        let mut keys = Vec::new();
        for (key, l) in items {
            self.texts.push((format!("{name}/{key}:label"), l));
            keys.push(key);
        }
        self.control(ControlKind::Select1, name, keys);
    }

    fn input(&mut self, name: &str, kind: &'static str, label: ByLang, required: bool) {
        self.field(name, kind, required, label);
        self.control(ControlKind::Input, name, Vec::new());
    }

    /// A month (a list) and a year (a number), as the web form asks.
    fn month_year(&mut self, key: &str, label: ByLang, required: bool) {
        let months = (1..=12)
            .map(|m| (m.to_string(), msg(&format!("month-{m}"))))
            .collect();
        self.select(&format!("{key}_month"), label, months, false);
        self.input(&format!("{key}_year"), "int", msg("field-year"), required);
    }
}

fn choices(list: &[crate::form::Choice]) -> Vec<(String, ByLang)> {
    list.iter()
        .map(|c| (c.key.clone(), each(|l| c.label(l).to_owned())))
        .collect()
}

fn build(form: &Form, max_files: usize, version: &str) -> XFormTemplate {
    let mut p = Parts::default();
    p.select(
        "category",
        msg("field-category"),
        choices(&form.category),
        true,
    );
    if form.region.is_empty() {
        p.input("region", "string", msg("field-region"), false);
    } else {
        p.select("region", msg("field-region"), choices(&form.region), false);
    }
    p.month_year("events", msg("field-when"), false);
    for q in &form.question {
        let label = each(|l| q.label.get(l).to_owned());
        match q.kind {
            QuestionKind::Choice => p.select(&q.key, label, choices(&q.option), q.required),
            QuestionKind::Text => p.input(&q.key, "string", label, q.required),
            QuestionKind::Month => p.month_year(&q.key, label, q.required),
        }
    }
    p.input("text", "string", msg("field-text"), false);
    p.texts.push(("text:hint".into(), msg("field-text-help")));
    if let Some(c) = p.controls.last_mut() {
        c.hint = true;
        c.appearance = "multiline";
    }
    for (name, mediatype, key) in UPLOADS.iter().take(max_files.saturating_sub(1)) {
        p.field(name, "binary", false, msg(key));
        p.control(ControlKind::Upload, name, Vec::new());
        if let Some(c) = p.controls.last_mut() {
            c.mediatype = mediatype;
        }
    }
    // The app's current language, so that the testimony records it and the
    // answer comes in it: each translation gives its own code.
    p.elements.push("language".into());
    p.binds.push(Bind {
        name: "language".into(),
        kind: "string",
        required: false,
        constraint: "",
        calculate: "jr:itext('language:code')",
    });
    p.texts
        .push(("language:code".into(), each(|l| l.code().to_owned())));

    let default = form.default_lang();
    let translations = Lang::ALL
        .iter()
        .map(|l| Translation {
            name: lang_name(*l),
            default: *l == default,
            texts: p
                .texts
                .iter()
                .map(|(id, by)| Text {
                    id: id.clone(),
                    value: by.get(l.code()).cloned().unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    XFormTemplate {
        title: Tr { lang: Lang::En }.t("form-title"),
        translations,
        form_id: FORM_ID,
        version: version.to_owned(),
        elements: p.elements,
        binds: p.binds,
        controls: p.controls,
        odk_key: None,
    }
}

/// The element names an instance of the form may carry at the top level
/// (besides `meta`): the answers the web form takes, the uploads and the
/// language.
pub fn answer_elements(form: &Form) -> Vec<String> {
    let mut names: Vec<String> = ["category", "region", "events_month", "events_year", "text"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for q in &form.question {
        match q.kind {
            QuestionKind::Month => {
                names.push(format!("{}_month", q.key));
                names.push(format!("{}_year", q.key));
            }
            QuestionKind::Text | QuestionKind::Choice => names.push(q.key.clone()),
        }
    }
    names
}

/// An instance, read and reduced to what the served form asks.
pub struct Instance {
    /// The answers, by the web form's field names (zeroized on drop).
    pub answers: Vec<(String, Zeroizing<String>)>,
    /// The attachment file names the upload questions give, in form order.
    pub files: Vec<Zeroizing<String>>,
    /// `meta/instanceID`, if given.
    pub instance_id: Option<Zeroizing<String>>,
    /// The app's language, if it named one of ours.
    pub language: Option<Lang>,
    /// Elements dropped: not asked for by the served form.
    pub dropped: usize,
    /// The instance as sealed: the elements kept, re-serialised (for an
    /// encrypted one, its manifest as sent).
    pub kept_xml: Zeroizing<Vec<u8>>,
    /// An ODK encrypted submission: `files` are its `.enc` files and the
    /// encrypted instance, there are no answers, and the manifest holds
    /// only the encrypted key, the instance id, the file names and the
    /// signature.
    pub encrypted: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("answers", &self.answers.len())
            .field("files", &self.files.len())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// Why an instance was refused (400, with the reason in the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceError {
    /// Not well-formed XML, or not UTF-8.
    NotXml(String),
    /// It has a DTD (entities): never parsed.
    Dtd,
    /// Over the size, node or depth limit.
    TooLarge(&'static str),
    /// Its root is not this relay's form.
    WrongForm,
    /// Another version of the form (the app should download it again).
    WrongVersion,
    /// An answer or a file name given twice.
    Duplicate,
}

impl std::fmt::Display for InstanceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotXml(why) => write!(f, "the submission is not well-formed XML ({why})"),
            Self::Dtd => f.write_str("the submission carries a DTD, which is never accepted"),
            Self::TooLarge(what) => write!(f, "the submission is too large ({what})"),
            Self::WrongForm => write!(f, "the submission is not for the form {FORM_ID}"),
            Self::WrongVersion => f.write_str(
                "the submission is for another version of the form: download the form again",
            ),
            Self::Duplicate => f.write_str("the submission gives an answer twice"),
        }
    }
}

/// Reads an instance of the form of `version`, keeping the elements in
/// `answers` (top level), the upload questions in `uploads`, `language`
/// and `meta/instanceID`; everything else is dropped and counted.
pub fn parse_instance(
    bytes: &[u8],
    version: &str,
    answers: &[String],
    uploads: &[&str],
) -> Result<Instance, InstanceError> {
    if bytes.len() > MAX_INSTANCE_BYTES {
        return Err(InstanceError::TooLarge("bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| InstanceError::NotXml("not UTF-8".into()))?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => InstanceError::Dtd,
        roxmltree::Error::NodesLimitReached => InstanceError::TooLarge("elements"),
        other => InstanceError::NotXml(other.to_string()),
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "data" || root.attribute("id") != Some(FORM_ID) {
        return Err(InstanceError::WrongForm);
    }
    if root.attribute("encrypted") == Some("yes") {
        if root.attribute("version") != Some(version) {
            return Err(InstanceError::WrongVersion);
        }
        return encrypted_manifest(root, bytes);
    }
    if root.attribute("version") != Some(version) {
        return Err(InstanceError::WrongVersion);
    }
    if root
        .descendants()
        .any(|n| n.ancestors().count() > MAX_DEPTH + 1)
    {
        return Err(InstanceError::TooLarge("nesting"));
    }

    let mut out = Instance {
        answers: Vec::new(),
        files: Vec::new(),
        instance_id: None,
        language: None,
        dropped: 0,
        kept_xml: Zeroizing::new(Vec::new()),
        encrypted: false,
    };
    let mut kept: Vec<(String, Zeroizing<String>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // A leaf's text; an element with element children is not an answer.
    let leaf = |n: roxmltree::Node<'_, '_>| -> Option<Zeroizing<String>> {
        if n.children().any(|c| c.is_element()) {
            return None;
        }
        Some(Zeroizing::new(n.text().unwrap_or("").to_owned()))
    };
    for child in root.children().filter(|n| n.is_element()) {
        // By local name: apps write the instance with or without the XForms
        // namespace, and `meta` as `orx:meta` in older forms.
        let name = child.tag_name().name();
        if name == "meta" {
            for m in child.children().filter(|n| n.is_element()) {
                match (m.tag_name().name(), leaf(m)) {
                    ("instanceID", Some(v)) if out.instance_id.is_none() => {
                        kept.push(("meta/instanceID".into(), v.clone()));
                        out.instance_id = Some(v);
                    }
                    // deviceID, timeStart, userID, … and anything else.
                    _ => out.dropped += 1,
                }
            }
            continue;
        }
        let known =
            answers.iter().any(|a| a == name) || uploads.contains(&name) || name == "language";
        let Some(value) = known.then(|| leaf(child)).flatten() else {
            out.dropped += 1;
            continue;
        };
        if !seen.insert(name.to_owned()) {
            return Err(InstanceError::Duplicate);
        }
        kept.push((name.to_owned(), value.clone()));
        if name == "language" {
            out.language = lang_from_name(&value);
        } else if uploads.contains(&name) {
            if !value.trim().is_empty() {
                out.files.push(Zeroizing::new(value.trim().to_owned()));
            }
        } else {
            out.answers.push((name.to_owned(), value));
        }
    }
    out.kept_xml = serialise(version, &kept);
    Ok(out)
}

/// The manifest of an ODK encrypted submission (`encrypted="yes"`): what
/// it must hold, and nothing else (its bytes are sealed as they are, for
/// the reviewer's `--odk-key` to decrypt the files it names).
fn encrypted_manifest(
    root: roxmltree::Node<'_, '_>,
    bytes: &[u8],
) -> Result<Instance, InstanceError> {
    let bad =
        |why: &str| InstanceError::NotXml(format!("an encrypted submission's manifest {why}"));
    let mut instance_id = None;
    let mut files = Vec::new();
    let mut xml_file = None;
    let (mut key, mut signature) = (false, false);
    let text = |n: roxmltree::Node<'_, '_>| n.text().unwrap_or("").trim().to_owned();
    let name_ok = |f: &str| {
        !f.is_empty()
            && f.len() <= 255
            && f.ends_with(".enc")
            && !f.contains(['/', '\\'])
            && !f.starts_with('.')
    };
    for child in root.children().filter(|n| n.is_element()) {
        match child.tag_name().name() {
            "base64EncryptedKey" => key = !text(child).is_empty(),
            "base64EncryptedElementSignature" => signature = !text(child).is_empty(),
            "encryptedXmlFile" => {
                let f = text(child);
                if !name_ok(&f) {
                    return Err(bad("names an unusable encrypted file"));
                }
                xml_file = Some(f);
            }
            "meta" => {
                for m in child.children().filter(|n| n.is_element()) {
                    if m.tag_name().name() != "instanceID" || instance_id.is_some() {
                        return Err(bad("holds more than the instance id in meta"));
                    }
                    instance_id = Some(Zeroizing::new(text(m)));
                }
            }
            "media" => {
                for m in child.children().filter(|n| n.is_element()) {
                    let f = text(m);
                    if m.tag_name().name() != "file" || !name_ok(&f) {
                        return Err(bad("names an unusable media file"));
                    }
                    files.push(Zeroizing::new(f));
                }
            }
            _ => return Err(bad("holds an element no encrypted submission has")),
        }
    }
    let Some(xml_file) = xml_file.filter(|_| key && signature && instance_id.is_some()) else {
        return Err(bad(
            "lacks the key, the signature, the instance id or the encrypted instance",
        ));
    };
    files.push(Zeroizing::new(xml_file));
    Ok(Instance {
        answers: Vec::new(),
        files,
        instance_id,
        language: None,
        dropped: 0,
        kept_xml: Zeroizing::new(bytes.to_vec()),
        encrypted: true,
    })
}

#[derive(Template)]
#[template(path = "openrosa/instance.xml")]
struct InstanceTemplate<'a> {
    form_id: &'static str,
    version: &'a str,
    elements: Vec<(&'a str, &'a str)>,
    meta: Vec<(&'a str, &'a str)>,
}

/// The kept elements as an instance document (escaped by the template).
fn serialise(version: &str, kept: &[(String, Zeroizing<String>)]) -> Zeroizing<Vec<u8>> {
    let mut elements = Vec::new();
    let mut meta = Vec::new();
    for (name, value) in kept {
        match name.strip_prefix("meta/") {
            Some(m) => meta.push((m, value.as_str())),
            None => elements.push((name.as_str(), value.as_str())),
        }
    }
    let page = InstanceTemplate {
        form_id: FORM_ID,
        version,
        elements,
        meta,
    };
    // Rendering our own template into a String cannot fail.
    Zeroizing::new(page.render().unwrap_or_default().into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn form() -> Form {
        Form::default_form().unwrap()
    }

    fn instance(version: &str, body: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><data xmlns:jr=\"http://openrosa.org/javarosa\" xmlns:orx=\"http://openrosa.org/xforms\" id=\"{FORM_ID}\" version=\"{version}\">{body}</data>"
        )
    }

    fn parse(xml: &str, version: &str) -> Result<Instance, InstanceError> {
        let f = form();
        let names = answer_elements(&f);
        let uploads: Vec<&str> = uploads(20).collect();
        parse_instance(xml.as_bytes(), version, &names, &uploads)
    }

    #[test]
    fn the_xform_is_well_formed_asks_no_device_metadata_and_is_stable() {
        let f = form();
        let a = xform(&f, 20, None);
        let b = xform(&f, 20, None);
        assert_eq!(a.xml, b.xml);
        assert_eq!(a.version, b.version);
        assert!(
            a.hash.starts_with("md5:") && a.hash.len() == 36,
            "{}",
            a.hash
        );
        let doc = roxmltree::Document::parse(&a.xml).unwrap();
        let data = doc.descendants().find(|n| n.has_tag_name("data")).unwrap();
        assert_eq!(data.attribute("id"), Some(FORM_ID));
        assert_eq!(data.attribute("version"), Some(a.version.as_str()));
        for banned in [
            "deviceid",
            "subscriberid",
            "simserial",
            "phonenumber",
            "username",
            "email",
            "start",
            "end",
            "today",
            "audit",
            "geopoint",
        ] {
            assert!(
                !a.xml.contains(&format!("<{banned}"))
                    && !a.xml.contains(&format!("jr:preload=\"{banned}")),
                "{banned} in the XForm"
            );
        }
        // The only preload is the instance id.
        assert_eq!(a.xml.matches("jr:preload=").count(), 1);
        // Three translations, the default language marked.
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("translation"))
                .count(),
            3
        );
        assert!(
            a.xml.contains("lang=\"Русский (ru)\" default=\"true()\""),
            "{}",
            &a.xml[..400]
        );
        // Uploads as binary questions.
        assert!(
            a.xml
                .contains("<upload ref=\"/data/photo_1\" mediatype=\"image/*\">")
        );
        // A change of the questionnaire changes the version and the hash.
        let mut g = f.clone();
        g.category.pop();
        let c = xform(&g, 20, None);
        assert_ne!(c.version, a.version);
        assert_ne!(c.hash, a.hash);
    }

    #[test]
    fn an_instance_maps_onto_the_web_forms_answers_and_drops_the_rest() {
        let v = xform(&form(), 20, None).version;
        let xml = instance(
            &v,
            "<category>health</category><region>aktobe</region><events_month>11</events_month>\
             <events_year>2026</events_year><text>Нас &amp; их</text><photo_1>p.jpg</photo_1>\
             <photo_2/><language>kk</language><deviceid>imei:3561</deviceid>\
             <meta><instanceID>uuid:1b2c</instanceID><deviceID>collect:abc</deviceID></meta>",
        );
        let i = parse(&xml, &v).unwrap();
        let a: BTreeMap<_, _> = i
            .answers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(a["category"], "health");
        assert_eq!(a["text"], "Нас & их");
        assert_eq!(a["events_year"], "2026");
        assert_eq!(
            i.files.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            ["p.jpg"]
        );
        assert_eq!(i.language, Some(Lang::Kk));
        assert_eq!(
            i.instance_id.as_deref().map(String::as_str),
            Some("uuid:1b2c")
        );
        assert_eq!(i.dropped, 2, "deviceid and meta/deviceID");
        let kept = std::str::from_utf8(&i.kept_xml).unwrap();
        assert!(
            !kept.contains("imei") && !kept.contains("collect:abc"),
            "{kept}"
        );
        assert!(kept.contains("<text>Нас &#38; их</text>"), "{kept}");
        // What is kept parses back to the same answers.
        let again = parse(kept, &v).unwrap();
        assert_eq!(again.answers.len(), i.answers.len());
        assert_eq!(again.dropped, 0);
    }

    #[test]
    fn hostile_instances_are_refused() {
        let v = xform(&form(), 20, None).version;
        let xxe = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE data [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><data id=\"{FORM_ID}\" version=\"{v}\"><text>&x;</text></data>"
        );
        assert_eq!(parse(&xxe, &v).err(), Some(InstanceError::Dtd));
        let laughs = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE data [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><data id=\"{FORM_ID}\" version=\"{v}\"><text>&c;</text></data>"
        );
        assert_eq!(parse(&laughs, &v).err(), Some(InstanceError::Dtd));
        let big = instance(
            &v,
            &format!("<text>{}</text>", "a".repeat(MAX_INSTANCE_BYTES)),
        );
        assert_eq!(
            parse(&big, &v).err(),
            Some(InstanceError::TooLarge("bytes"))
        );
        let many = instance(&v, &"<x/>".repeat(5_000));
        assert_eq!(
            parse(&many, &v).err(),
            Some(InstanceError::TooLarge("elements"))
        );
        let deep = instance(&v, &("<a>".repeat(10) + &"</a>".repeat(10)));
        assert_eq!(
            parse(&deep, &v).err(),
            Some(InstanceError::TooLarge("nesting"))
        );
        let wrong_root = format!("<form id=\"{FORM_ID}\" version=\"{v}\"/>");
        assert_eq!(parse(&wrong_root, &v).err(), Some(InstanceError::WrongForm));
        let other_form = format!("<data id=\"other\" version=\"{v}\"/>");
        assert_eq!(parse(&other_form, &v).err(), Some(InstanceError::WrongForm));
        assert_eq!(
            parse(&instance("1-00000000", ""), &v).err(),
            Some(InstanceError::WrongVersion)
        );
        assert!(matches!(parse("<data", &v), Err(InstanceError::NotXml(_))));
        assert!(matches!(
            parse_instance(b"\xff\xfe<data/>", &v, &[], &[]),
            Err(InstanceError::NotXml(_))
        ));
        let twice = instance(&v, "<text>a</text><text>b</text>");
        assert_eq!(parse(&twice, &v).err(), Some(InstanceError::Duplicate));
        // Nested elements where an answer goes: dropped, not read.
        let nested = instance(&v, "<category><x>health</x></category>");
        let i = parse(&nested, &v).unwrap();
        assert!(i.answers.is_empty());
        assert_eq!(i.dropped, 1);
    }
}
