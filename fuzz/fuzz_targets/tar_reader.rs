//! The reviewer's strict tar reader, which reads hostile batches and
//! decrypted submissions: never panics, never reads past what it was given.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = reviewer::fuzzing::read_all(data);
});
