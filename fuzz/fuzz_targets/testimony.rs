//! `testimony.json` from a decrypted submission (hostile to the reviewer):
//! parsing never panics, and parse-then-write is stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = format::Testimony::from_json(data) {
        let written = t.to_json();
        let again = format::Testimony::from_json(&written).expect("written testimony parses");
        assert!(again == t);
        assert_eq!(*again.to_json(), *written);
    }
});
