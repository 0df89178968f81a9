//! A batch manifest (and the other small JSON documents: receipts, reply
//! bundles, reply plaintexts): parsing untrusted bytes never panics, and
//! whatever parses writes back to bytes that parse to the same value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = format::Manifest::from_json(data) {
        let written = m.to_json();
        let again = format::Manifest::from_json(&written).expect("written manifest parses");
        assert_eq!(again, m);
        assert_eq!(again.to_json(), written);
    }
    if let Ok(r) = format::Receipt::from_json(data) {
        assert_eq!(format::Receipt::from_json(&r.to_json()).ok(), Some(r));
    }
    if let Ok(b) = format::ReplyBundle::from_json(data) {
        let again = format::ReplyBundle::from_json(&b.to_json()).expect("written bundle parses");
        assert_eq!(again, b);
        for r in &b.replies {
            assert!(r.ciphertext().is_ok_and(|c| !c.is_empty()));
        }
    }
    if let Ok(m) = format::ReplyMessage::from_json(data) {
        let again = format::ReplyMessage::from_json(&m.to_json()).expect("written reply parses");
        assert_eq!(again.text.as_str(), m.text.as_str());
        assert_eq!(again.written_day, m.written_day);
    }
});
