//! Records a synthetic segment into journals in real time, with marks, until killed. The
//! crash-recovery test starts it and kills it with SIGKILL mid-recording.
//!
//! Usage: `journal_child <recordings_dir> <inspection> <seconds> <mark_offset_ms>...`

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use media_recorder::chapters::{Mark, MarkLog};
use media_recorder::testsrc::{SegmentGenerator, SegmentJournals, SegmentSpec};

fn now_micros() -> i64 {
    // The clock is after 1970 on any machine that runs this.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err(
            "usage: journal_child <recordings_dir> <inspection> <seconds> <mark_offset_ms>..."
                .into(),
        );
    }
    let dir = PathBuf::from(&args[1]);
    let inspection = &args[2];
    let seconds: i64 = args[3].parse()?;
    let mark_offsets: Vec<i64> = args[4..]
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;

    let start = now_micros() + 200_000;
    let mut spec = SegmentSpec::new(0, start, seconds * 1_000_000);
    // The live peer requests a keyframe at every mark; the synthetic publisher obliges.
    spec.keyframes_at = mark_offsets.iter().map(|ms| start + ms * 1000).collect();
    let mut generator = SegmentGenerator::new(spec)?;
    let mut journals = SegmentJournals::create(&dir, inspection, &generator)?;
    let mut marks = MarkLog::open(&dir.join(inspection))?;
    let mut pending: Vec<(usize, i64)> = mark_offsets
        .iter()
        .enumerate()
        .map(|(i, ms)| (i, start + ms * 1000))
        .collect();
    pending.reverse();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "started {start}")?;
    stdout.flush()?;
    while let Some(event) = generator.next_event()? {
        let at = event.arrival_micros();
        while pending.last().is_some_and(|&(_, t)| t <= at) {
            let Some((i, t)) = pending.pop() else { break };
            let wait = t - now_micros();
            if wait > 0 {
                std::thread::sleep(Duration::from_micros(wait as u64));
            }
            // The mark carries its scheduled time, the clock the frames' barcodes also use:
            // on a loaded machine the sleep above can overshoot by hundreds of milliseconds,
            // and stamping `now` would then measure the scheduler, not the recorder.
            let mark = Mark {
                item_id: format!("item-{}", i + 1),
                title: format!("{}. Question {}", i + 1, i + 1),
                result: "compliant".into(),
                at_micros: t,
            };
            marks.append(&mark)?;
            writeln!(stdout, "mark {} {}", mark.item_id, mark.at_micros)?;
            stdout.flush()?;
        }
        let wait = at - now_micros();
        if wait > 0 {
            std::thread::sleep(Duration::from_micros(wait as u64));
        }
        journals.append(&event)?;
    }
    journals.close()?;
    writeln!(stdout, "finished")?;
    Ok(())
}
