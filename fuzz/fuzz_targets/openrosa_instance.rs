//! An instance a field app posts to /openrosa/submission: any bytes are
//! refused or read, never a panic; and what is read (the instance reduced
//! to what the form asks, as it is sealed) reads back to the same answers
//! and files, with nothing left to drop.
#![no_main]

use std::sync::OnceLock;

use relay::openrosa::{answer_elements, parse_instance, uploads};

fn names() -> &'static (Vec<String>, Vec<&'static str>) {
    static NAMES: OnceLock<(Vec<String>, Vec<&'static str>)> = OnceLock::new();
    NAMES.get_or_init(|| {
        let form = relay::form::Form::default_form().expect("the built-in form");
        (answer_elements(&form), uploads(20).collect())
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (answers, files) = names();
    if let Ok(i) = parse_instance(data, "1-fuzz", answers, files)
        && !i.encrypted
    {
        let again = parse_instance(&i.kept_xml, "1-fuzz", answers, files)
            .expect("the kept instance reads back");
        assert_eq!(again.answers.len(), i.answers.len());
        assert_eq!(again.files.len(), i.files.len());
        assert_eq!(again.dropped, 0);
    }
});
