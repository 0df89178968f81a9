//! A source's side of the follow-up: the codename a success page shows, and
//! logging in with it.

/// The 8 words of the codename on a success page (the relay's
/// `<ol class="codename-words">`, one `<span>` a word), joined by spaces.
/// Fails the test if the page shows no codename or not 8 words.
pub fn codename_of(page: &str) -> String {
    let start = page.find("class=\"codename-words\"").expect("a codename");
    let rest = &page[start..];
    let list = &rest[..rest.find("</ol>").expect("the end of the codename list")];
    let words: Vec<&str> = list
        .split("<span>")
        .skip(1)
        .filter_map(|s| s.split("</span>").next())
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(words.len(), 8, "{list}");
    words.join(" ")
}

/// The body of the log-in form with `typed` in its codename box
/// (`application/x-www-form-urlencoded`, as a browser sends it: a space is
/// `+`, and every byte but letters, digits and `-_.` is percent-encoded).
pub fn login_form(typed: &str) -> String {
    let mut body = String::from("codename=");
    for b in typed.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                body.push(char::from(b))
            }
            b' ' => body.push('+'),
            _ => body.push_str(&format!("%{b:02X}")),
        }
    }
    body
}

/// What a log-in got back.
#[derive(Debug)]
pub struct LogIn {
    /// The status: 303 to the thread once logged in.
    pub status: u16,
    /// The session cookie as a `Cookie` header sends it back (`name=value`),
    /// if the relay set one.
    pub cookie: Option<String>,
    /// The page (the log-in box again, on a refusal).
    pub page: String,
}

/// Logs in at `{url}/followup/en/login` with `typed` in the codename box.
/// `http` should not follow redirects, so that the 303 and its cookie are
/// what comes back.
pub fn log_in(http: &reqwest::blocking::Client, url: &str, typed: &str) -> LogIn {
    let res = http
        .post(format!("{url}/followup/en/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(login_form(typed))
        .send()
        .unwrap();
    let status = res.status().as_u16();
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    LogIn {
        status,
        cookie,
        page: res.text().unwrap(),
    }
}
