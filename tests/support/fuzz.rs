//! The fuzz targets on the stable toolchain (issue 19, item 6): each target's seed corpus
//! (`tests/fuzz/corpus/<target>`, shared with `cargo fuzz`) and then pseudo-random mutations
//! of it, for a bounded time. Coverage-guided fuzzing is `cargo fuzz run` on nightly
//! (docs/reliability.md, "Fuzzing"); this keeps every target exercised in CI without a
//! second build of the workspace.
//!
//! A panicking input is saved under `target/fuzz-failures/` (replay it with `cargo fuzz run
//! <target> <file>` or by adding it to the corpus) and fails the test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: deterministic from the seed, so a failure replays with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that break parsers more often than random bytes do.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"-0",
    b"1e309",
    b"-1e309",
    b"NaN",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"18446744073709551615",
    b"4294967295",
    b"65535",
    b"null",
    b"true",
    b"\"\"",
    b"[]",
    b"{}",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x80",
    b"\r\n",
    b"\n",
    b"=",
    b":",
];

/// The seed corpus of a target: every file of `tests/fuzz/corpus/<target>`.
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("corpus file"))
        .collect()
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            4 | 5 => {
                // A token over a random span: numbers, literals, the target's words.
                let pool = if dict.is_empty() || rng.below(2) == 0 {
                    INTERESTING
                } else {
                    dict
                };
                let token = pool[rng.below(pool.len())];
                let i = rng.below(len + 1);
                let n = rng.below((len - i).min(12) + 1);
                input.splice(i..i + n, token.iter().copied());
            }
            6 if len > 0 => {
                // Repeat a chunk (deep nesting, long strings, many records).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                for _ in 0..1 + rng.below(16) {
                    input.splice(i..i, chunk.iter().copied());
                }
            }
            7 if !seeds.is_empty() => {
                // Splice with another seed.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => input.truncate(rng.below(len)),
            _ => {}
        }
    }
    input.truncate(256 * 1024);
}

/// How long each target runs: `INSPECTOR_FUZZ_SECS` (default 2 s).
fn budget() -> Duration {
    let secs = std::env::var("INSPECTOR_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Runs `target` over the seeds, then over mutations of them until the time budget or
/// `max_runs` is spent. Returns the number of inputs run; panics with the failing input.
pub fn exercise(name: &str, target: fn(&[u8]), dict: &[&[u8]], max_runs: u64) -> u64 {
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "target {name} has seeds");
    let seed = std::env::var("INSPECTOR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + budget();
    let mut runs = 0u64;
    let run = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{seed}-{}", input.len()));
            let _ = std::fs::write(&file, input);
            panic!(
                "fuzz target {name} panicked on an input saved to {} ({} bytes): {:?}",
                file.display(),
                input.len(),
                String::from_utf8_lossy(&input[..input.len().min(512)])
            );
        }
    };
    for s in &seeds {
        run(s);
        runs += 1;
    }
    while runs < max_runs && Instant::now() < deadline {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut input, &seeds, dict);
        run(&input);
        runs += 1;
    }
    runs
}
