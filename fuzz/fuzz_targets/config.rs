//! The operator's relay.toml: any text is refused or accepted, never a
//! panic (the questionnaire, limits, epochs and listeners included).
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = relay::config::Config::parse(Path::new("/etc/relay/relay.toml"), &text) {
        // A config that loads is usable: its questionnaire has a category
        // and its current epoch has recipients.
        assert!(!config.form.category.is_empty());
        assert!(!config.recipients.is_empty());
    }
});
