#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| checklist_sync::fuzzing::fuzz_geolocation(data));
