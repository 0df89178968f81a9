//! A strict HTML reader, for pages a test must see as a browser builds them.
//!
//! [`parse`] accepts a page only if every element is closed explicitly,
//! attributes are double-quoted, `&` starts only valid character references,
//! text holds no raw `<`, `>` or control characters, and elements nest only
//! as an HTML5 parser keeps them as written (no paragraph closed by a block,
//! no table content fostered out, no nested links; no raw-text element such
//! as `<script>` or `<textarea>` at all). So the tree a test looks at is the
//! tree a browser would build, and a check on it cannot be fooled by markup
//! a browser reads differently. (It was written for the reviewer's static
//! report, which holds hostile text.)

/// One element and what it holds.
#[derive(Debug)]
pub struct Element {
    /// The tag name, as written.
    pub name: String,
    /// The attributes in order, their values decoded.
    pub attrs: Vec<(String, String)>,
    /// What it holds, in order.
    pub children: Vec<Node>,
}

/// A child of an element.
#[derive(Debug)]
pub enum Node {
    /// An element.
    El(Element),
    /// Text, its character references decoded.
    Text(String),
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];
/// Elements a `<p>` cannot hold (the parser would close the `<p>`).
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "details",
    "div",
    "dl",
    "dd",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "ul",
];
/// Elements whose content the tokenizer reads differently (raw text):
/// refused outright.
const RAW_TEXT: &[&str] = &[
    "script",
    "style",
    "textarea",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];
const NO_TEXT: &[&str] = &[
    "html", "head", "table", "thead", "tbody", "tfoot", "tr", "ul", "ol", "dl",
];

impl Element {
    fn new(name: &str) -> Self {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The value of attribute `name` (any case), if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `class` is one of the words of its `class` attribute.
    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|x| x == class))
    }

    /// All text below this element, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for c in &self.children {
            match c {
                Node::El(e) => e.collect_text(out),
                Node::Text(t) => out.push_str(t),
            }
        }
    }

    /// Every element below (and including) this one, depth first.
    pub fn all(&self) -> Vec<&Element> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let e = out[i];
            for c in &e.children {
                if let Node::El(child) = c {
                    out.push(child);
                }
            }
            i += 1;
        }
        out
    }

    /// The element below (or this one) whose `id` is `id`.
    pub fn by_id(&self, id: &str) -> Option<&Element> {
        self.all().into_iter().find(|e| e.attr("id") == Some(id))
    }

    /// Every element named `name` below (or this one), depth first.
    pub fn elements(&self, name: &str) -> Vec<&Element> {
        self.all().into_iter().filter(|e| e.name == name).collect()
    }

    /// The elements it holds directly, text left out.
    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::El(e) => Some(e),
            Node::Text(_) => None,
        })
    }
}

/// Decodes character references; refuses a bare `&`, an unknown name,
/// raw `<`/`>` and control characters.
fn decode(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    for c in s.chars() {
        if c == '<' || c == '>' {
            return Err(format!("raw {c:?} in {s:?}"));
        }
        if c.is_control() && c != '\n' && c != '\t' {
            return Err(format!("control character {c:?} in {s:?}"));
        }
    }
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let semi = rest
            .find(';')
            .filter(|j| *j <= 10)
            .ok_or_else(|| format!("bare & in {s:?}"))?;
        let ent = &rest[..semi];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{a0}',
            _ => {
                let n = if let Some(h) = ent.strip_prefix("#x").or(ent.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                let c = n
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad reference &{ent}; in {s:?}"))?;
                if c.is_control() && c != '\n' && c != '\t' {
                    return Err(format!("reference to a control character in {s:?}"));
                }
                c
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn is_attr_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.')
}

/// Parses a whole document (`<!DOCTYPE html>` then one `<html>` holding a
/// `<head>` and a `<body>`) and returns its `<html>` element; refuses it,
/// saying why, if it breaks any of the rules above.
pub fn parse(src: &str) -> Result<Element, String> {
    let body = src
        .strip_prefix("<!DOCTYPE html>")
        .ok_or("the page does not start with <!DOCTYPE html>")?;
    let s = body.as_bytes();
    let mut i = 0;
    let mut stack = vec![Element::new("#document")];
    while i < s.len() {
        if body[i..].starts_with("<!--") {
            let end = body[i + 4..].find("-->").ok_or("unclosed comment")?;
            i += 4 + end + 3;
        } else if body[i..].starts_with("</") {
            let start = i + 2;
            let mut j = start;
            while j < s.len() && is_name_byte(s[j]) {
                j += 1;
            }
            let name = &body[start..j];
            if s.get(j) != Some(&b'>') {
                return Err(format!("malformed end tag </{name}"));
            }
            i = j + 1;
            let el = stack.pop().ok_or("end tag with nothing open")?;
            if el.name != name {
                return Err(format!("</{name}> closes <{}>", el.name));
            }
            close(&mut stack, el)?;
        } else if s[i] == b'<' {
            let start = i + 1;
            if !s.get(start).is_some_and(u8::is_ascii_alphabetic) {
                return Err(format!(
                    "stray '<' at {}",
                    &body[i..(i + 20).min(body.len())]
                ));
            }
            let mut j = start;
            while j < s.len() && is_name_byte(s[j]) {
                j += 1;
            }
            let name = body[start..j].to_owned();
            let in_svg = name == "svg" || stack.iter().any(|e| e.name == "svg");
            if !in_svg && name != name.to_ascii_lowercase() {
                return Err(format!("upper-case element name {name}"));
            }
            if RAW_TEXT.contains(&name.as_str()) {
                return Err(format!("<{name}> found"));
            }
            let mut el = Element::new(&name);
            let self_closing;
            loop {
                let ws = j;
                while j < s.len() && s[j].is_ascii_whitespace() {
                    j += 1;
                }
                match s.get(j) {
                    Some(b'>') => {
                        j += 1;
                        self_closing = false;
                        break;
                    }
                    Some(b'/') if s.get(j + 1) == Some(&b'>') => {
                        j += 2;
                        self_closing = true;
                        break;
                    }
                    None => return Err("unterminated tag".into()),
                    _ => {}
                }
                if ws == j {
                    return Err(format!("attributes of <{name}> not separated"));
                }
                let an = j;
                while j < s.len() && is_attr_name_byte(s[j]) {
                    j += 1;
                }
                if an == j {
                    return Err(format!(
                        "bad attribute in <{name}>: {:?}",
                        &body[an..(an + 20).min(body.len())]
                    ));
                }
                let attr_name = body[an..j].to_owned();
                let value = if s.get(j) == Some(&b'=') {
                    if s.get(j + 1) != Some(&b'"') {
                        return Err(format!("unquoted attribute {attr_name} in <{name}>"));
                    }
                    let vstart = j + 2;
                    let vend = vstart
                        + body[vstart..]
                            .find('"')
                            .ok_or("unterminated attribute value")?;
                    j = vend + 1;
                    decode(&body[vstart..vend])?
                } else {
                    String::new()
                };
                if el.attr(&attr_name).is_some() {
                    return Err(format!("duplicate attribute {attr_name} in <{name}>"));
                }
                el.attrs.push((attr_name, value));
            }
            i = j;
            check_nesting(&stack, &name)?;
            let void = VOID.contains(&name.as_str());
            if self_closing && !void && !in_svg {
                return Err(format!("self-closing <{name}/> outside SVG"));
            }
            if void || self_closing {
                close(&mut stack, el)?;
            } else {
                stack.push(el);
            }
        } else {
            let end = body[i..].find('<').map_or(body.len(), |k| i + k);
            let text = decode(&body[i..end])?;
            i = end;
            let top = stack.last_mut().ok_or("text outside the document")?;
            if !text.trim().is_empty()
                && (NO_TEXT.contains(&top.name.as_str()) || top.name == "#document")
            {
                return Err(format!("text {text:?} directly in <{}>", top.name));
            }
            top.children.push(Node::Text(text));
        }
    }
    let mut doc = stack.pop().ok_or("empty")?;
    if !stack.is_empty() {
        return Err(format!("<{}> is never closed", doc.name));
    }
    let mut els = doc.children.drain(..).filter_map(|n| match n {
        Node::El(e) => Some(e),
        Node::Text(_) => None,
    });
    let html = els.next().ok_or("no <html>")?;
    if html.name != "html" || els.next().is_some() {
        return Err("the document is not one <html> element".into());
    }
    let parts: Vec<&str> = html.child_elements().map(|e| e.name.as_str()).collect();
    if parts != ["head", "body"] {
        return Err(format!("<html> holds {parts:?}"));
    }
    Ok(html)
}

fn close(stack: &mut [Element], el: Element) -> Result<(), String> {
    if el.name == "title"
        && !stack.iter().any(|e| e.name == "svg")
        && el.child_elements().next().is_some()
    {
        return Err("elements inside <title>".into());
    }
    stack
        .last_mut()
        .ok_or("element outside the document")?
        .children
        .push(Node::El(el));
    Ok(())
}

/// Refuses the nestings an HTML5 parser would not keep as written
/// (implicitly closed paragraphs, foster-parented table content, ...).
fn check_nesting(stack: &[Element], child: &str) -> Result<(), String> {
    let parent = stack.last().map_or("", |e| e.name.as_str());
    let grand = stack
        .len()
        .checked_sub(2)
        .map_or("", |i| stack[i].name.as_str());
    let bad = |why: &str| Err(format!("<{child}> inside <{parent}>: {why}"));
    if parent == "p" && CLOSES_P.contains(&child) {
        return bad("closes the paragraph");
    }
    if child == "a" && stack.iter().any(|e| e.name == "a") {
        return bad("nested link");
    }
    let allowed: Option<&[&str]> = match parent {
        "#document" => Some(&["html"]),
        "html" => Some(&["head", "body"]),
        "head" => Some(&["meta", "link", "title"]),
        "table" => Some(&["caption", "thead", "tbody", "tfoot"]),
        "thead" | "tbody" | "tfoot" => Some(&["tr"]),
        "tr" => Some(&["td", "th"]),
        "ul" | "ol" => Some(&["li"]),
        "dl" => Some(&["dt", "dd", "div"]),
        "div" if grand == "dl" => Some(&["dt", "dd"]),
        _ => None,
    };
    if let Some(allowed) = allowed
        && !allowed.contains(&child)
    {
        return bad("not allowed there");
    }
    let needs: Option<&[&str]> = match child {
        "li" => Some(&["ul", "ol"]),
        "tr" => Some(&["thead", "tbody", "tfoot"]),
        "td" | "th" => Some(&["tr"]),
        "dt" | "dd" => Some(&["dl", "div"]),
        "thead" | "tbody" | "tfoot" | "caption" => Some(&["table"]),
        "summary" => Some(&["details"]),
        _ => None,
    };
    if let Some(needs) = needs
        && !needs.contains(&parent)
    {
        return bad("needs another parent");
    }
    Ok(())
}
