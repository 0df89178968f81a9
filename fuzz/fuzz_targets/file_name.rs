//! Attachment names: whatever a client sends, the sanitised name is safe to
//! create on any file system, and sanitising is idempotent.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let name = format::sanitize_file_name(&raw);
    assert!(!name.is_empty() && name.len() <= format::MAX_NAME_BYTES);
    assert!(!name.contains(['/', '\\']) && !name.starts_with('.'));
    assert!(!name.chars().any(|c| c.is_control() || format::is_deceptive(c)));
    assert_eq!(format::sanitize_file_name(&name), name);
    let path = format::attachment_entry_path(&name);
    assert_eq!(format::parse_attachment_entry_path(&path), Some(name.as_str()));
    let unique = format::unique_names([name.as_str(), name.as_str()]);
    assert_ne!(unique[0].to_lowercase(), unique[1].to_lowercase());
});
