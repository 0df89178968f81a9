//! A batch manifest: parsing untrusted bytes never panics, and whatever
//! parses writes back to bytes that parse to the same manifest (and to the
//! same bytes again).
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
});
