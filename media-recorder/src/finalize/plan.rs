//! The pure part of finalization: from what the first pass learned about each journal and the
//! marks, decide the container, which journals feed which output stream, the session epoch
//! (media time 0), the planned end and the chapters. No file and no FFmpeg here.

use crate::chapters::{Chapter, Mark};
use crate::depacketize::Codec;
use crate::journal::{TrackKind, TrackMeta};

/// Bytes reserved at the start of a WebM file for its Cues (the seek index), plus
/// [`CUES_BYTES_PER_SECOND`] per second of media.
pub const WEBM_CUES_RESERVE_BASE: i64 = 16 * 1024;
/// About one cue point per second is plenty (clusters start at keyframes or every 5 s).
pub const CUES_BYTES_PER_SECOND: i64 = 40;

/// What the first pass learned about one journal.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalFacts {
    /// File name (for the manifest's skipped list).
    pub name: String,
    /// Its header.
    pub meta: TrackMeta,
    /// Its codec.
    pub codec: Codec,
    /// Wall-clock time of its first media sample, µs.
    pub start_micros: i64,
    /// Wall-clock time its last frame ends, µs.
    pub end_micros: i64,
    /// Picture size from its first keyframe (video).
    pub size: Option<(u32, u32)>,
    /// H.264 SPS and PPS, Annex B (empty otherwise).
    pub extradata: Vec<u8>,
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// VP8 (and Opus): WebM with Cues up front.
    Webm,
    /// H.264 (and Opus): MP4 with `+faststart`.
    Mp4,
}

impl Container {
    /// File name of the recording.
    pub fn file(self) -> &'static str {
        match self {
            Container::Webm => "recording.webm",
            Container::Mp4 => "recording.mp4",
        }
    }

    /// libavformat's name of the format.
    pub fn format(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Mp4 => "mp4",
        }
    }

    /// MIME type of the file.
    pub fn mime(self) -> &'static str {
        match self {
            Container::Webm => "video/webm",
            Container::Mp4 => "video/mp4",
        }
    }

    /// Whether the container can hold this codec.
    pub fn fits(self, codec: Codec) -> bool {
        match codec {
            Codec::Opus => true,
            Codec::Vp8 => self == Container::Webm,
            Codec::H264 => self == Container::Mp4,
        }
    }

    /// Time base of a stream, as (numerator, denominator): WebM counts milliseconds, MP4 the
    /// codec's own clock.
    pub fn time_base(self, kind: TrackKind) -> (i32, i32) {
        match (self, kind) {
            (Container::Webm, _) => (1, 1000),
            (Container::Mp4, TrackKind::Video) => (1, 90_000),
            (Container::Mp4, TrackKind::Audio) => (1, 48_000),
        }
    }
}

/// A journal starting this much before a stream's end still continues it (the old
/// connection's last packets and the new one's first may cross when a phone reconnects).
pub const OVERLAP_TOLERANCE_MICROS: i64 = 500_000;

/// What makes journals one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamKey {
    /// The feed named in the journal headers (`business_camera`, ...).
    Feed(String),
    /// Journals without a feed: one stream per publisher and kind.
    Participant(String, TrackKind),
}

impl StreamKey {
    /// The key of a journal.
    pub fn of(meta: &TrackMeta) -> Self {
        match &meta.feed {
            Some(feed) => StreamKey::Feed(feed.clone()),
            None => StreamKey::Participant(meta.participant_id.clone(), meta.kind),
        }
    }

    /// The feed, if the journals named one.
    pub fn feed(&self) -> Option<&str> {
        match self {
            StreamKey::Feed(f) => Some(f),
            StreamKey::Participant(..) => None,
        }
    }
}

/// One output stream and the journals feeding it, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPlan {
    /// Audio or video.
    pub kind: TrackKind,
    /// Its codec.
    pub codec: Codec,
    /// What it is.
    pub key: StreamKey,
    /// Who published it, in order of their first journal.
    pub participant_ids: Vec<String>,
    /// Indices into the planned journals.
    pub journals: Vec<usize>,
    /// Picture size (video).
    pub size: Option<(u32, u32)>,
    /// Codec private data (H.264 SPS/PPS).
    pub extradata: Vec<u8>,
}

/// Everything the mux and publish steps need to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The file format.
    pub container: Container,
    /// Output streams, video first.
    pub streams: Vec<StreamPlan>,
    /// Names of journals left out (a codec that does not fit, video without a keyframe).
    pub skipped: Vec<String>,
    /// Wall-clock time of media time 0: the earliest sample of any stream, µs.
    pub epoch_micros: i64,
    /// Media time the last stream is expected to end, ms.
    pub planned_end_ms: i64,
    /// One chapter per mark, the last running to the planned end.
    pub chapters: Vec<Chapter>,
    /// Bytes reserved for the WebM Cues (0 for MP4).
    pub cues_reserve: i64,
}

/// Nominal frame duration: 20 ms Opus packets, 30 fps video (µs).
pub fn default_duration(kind: TrackKind) -> i64 {
    match kind {
        TrackKind::Audio => 20_000,
        TrackKind::Video => 33_333,
    }
}

/// Plans the recording; `None` if no journal holds recordable media.
pub fn plan(journals: &[JournalFacts], marks: &[Mark]) -> Option<Plan> {
    // The container follows the video codec: H.264 → MP4, otherwise WebM.
    let has = |codec: Codec| {
        journals
            .iter()
            .any(|j| j.codec == codec && j.meta.kind == TrackKind::Video)
    };
    let container = if has(Codec::H264) && !has(Codec::Vp8) {
        Container::Mp4
    } else {
        Container::Webm
    };

    // One output stream per feed (the business's camera, its microphone, the inspector's
    // voice) whoever published it: a rejoin from another device or invitation continues the
    // same stream, so a browser plays the whole inspection. Journals written before headers
    // named their feed are grouped by participant and kind. A journal that overlaps a stream
    // in time (two phones at once) starts another stream of its feed: both are evidence, and
    // frames of two sources cannot share one. A journal whose codec differs from its stream's
    // is left out (a container stream has one codec).
    let mut skipped = Vec::new();
    let mut streams: Vec<StreamPlan> = Vec::new();
    let mut ends: Vec<i64> = Vec::new();
    let mut order: Vec<usize> = (0..journals.len()).collect();
    // Video first, then the business's microphone before the inspector's voice whoever
    // connected first: a browser plays only a file's first audio stream, and the business's
    // side is the evidence (the player adds the voice beside it).
    let rank = |j: &JournalFacts| match j.meta.feed.as_deref() {
        Some("inspector_voice") => 2,
        _ => 1,
    };
    order.sort_by_key(|&i| {
        (
            journals[i].meta.kind != TrackKind::Video,
            rank(&journals[i]),
            journals[i].start_micros,
        )
    });
    for i in order {
        let j = &journals[i];
        if !container.fits(j.codec) {
            skipped.push(j.name.clone());
            continue;
        }
        let key = StreamKey::of(&j.meta);
        let free = (0..streams.len()).find(|&s| {
            streams[s].key == key && j.start_micros >= ends[s] - OVERLAP_TOLERANCE_MICROS
        });
        match free {
            Some(s) if streams[s].codec == j.codec => {
                let g = &mut streams[s];
                g.journals.push(i);
                if !g.participant_ids.contains(&j.meta.participant_id) {
                    g.participant_ids.push(j.meta.participant_id.clone());
                }
                if g.size.is_none() {
                    g.size = j.size;
                }
                if g.extradata.is_empty() {
                    g.extradata = j.extradata.clone();
                }
                ends[s] = ends[s].max(j.end_micros);
            }
            Some(_) => skipped.push(j.name.clone()),
            None => {
                streams.push(StreamPlan {
                    kind: j.meta.kind,
                    codec: j.codec,
                    key,
                    participant_ids: vec![j.meta.participant_id.clone()],
                    journals: vec![i],
                    size: j.size,
                    extradata: j.extradata.clone(),
                });
                ends.push(j.end_micros);
            }
        }
    }
    // Video that never showed a keyframe cannot be decoded, nor muxed with dimensions.
    streams.retain(|g| {
        let keep = g.kind == TrackKind::Audio || g.size.is_some_and(|(w, h)| w > 0 && h > 0);
        if !keep {
            skipped.extend(g.journals.iter().map(|&i| journals[i].name.clone()));
        }
        keep
    });
    if streams.is_empty() {
        return None;
    }
    let used = || streams.iter().flat_map(|g| g.journals.iter().copied());
    let epoch_micros = used().map(|i| journals[i].start_micros).min().unwrap_or(0);
    let planned_end = used()
        .map(|i| journals[i].end_micros)
        .max()
        .unwrap_or(epoch_micros)
        - epoch_micros;
    let planned_end_ms = (planned_end / 1000).max(0);
    let cues_reserve = match container {
        Container::Webm => WEBM_CUES_RESERVE_BASE + planned_end_ms / 1000 * CUES_BYTES_PER_SECOND,
        Container::Mp4 => 0,
    };
    Some(Plan {
        container,
        chapters: build_chapters(marks, epoch_micros, planned_end_ms),
        streams,
        skipped,
        epoch_micros,
        planned_end_ms,
        cues_reserve,
    })
}

/// Chapters in time order, starting at each mark's media time (clamped into the recording).
pub fn build_chapters(marks: &[Mark], epoch_micros: i64, duration_ms: i64) -> Vec<Chapter> {
    let mut sorted: Vec<&Mark> = marks.iter().collect();
    sorted.sort_by_key(|m| m.at_micros);
    let starts: Vec<i64> = sorted
        .iter()
        .map(|m| ((m.at_micros - epoch_micros).div_euclid(1000)).clamp(0, duration_ms.max(0)))
        .collect();
    sorted
        .iter()
        .enumerate()
        .map(|(i, m)| Chapter {
            item_id: m.item_id.clone(),
            title: m.title.clone(),
            result: m.result.clone(),
            start_ms: starts[i],
            end_ms: starts
                .get(i + 1)
                .copied()
                .unwrap_or(duration_ms)
                .max(starts[i]),
            mark_at_micros: m.at_micros,
        })
        .collect()
}

/// Chapters fitted into the recording as written (its real duration): the last one runs to
/// the end.
pub fn clamp_chapters(chapters: Vec<Chapter>, duration_ms: i64) -> Vec<Chapter> {
    let n = chapters.len();
    chapters
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.start_ms = c.start_ms.min(duration_ms);
            c.end_ms = c.end_ms.min(duration_ms).max(c.start_ms);
            if i + 1 == n {
                c.end_ms = duration_ms.max(c.start_ms);
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000_000;

    fn journal(
        name: &str,
        who: &str,
        kind: TrackKind,
        codec: Codec,
        start: i64,
        end: i64,
    ) -> JournalFacts {
        let mime = match codec {
            Codec::Vp8 => "video/VP8",
            Codec::H264 => "video/H264",
            Codec::Opus => "audio/opus",
        };
        JournalFacts {
            name: name.into(),
            meta: TrackMeta::new(name, who, kind, mime, 90_000, 1, start),
            codec,
            start_micros: start,
            end_micros: end,
            size: (kind == TrackKind::Video).then_some((640, 480)),
            extradata: if codec == Codec::H264 {
                vec![0, 0, 0, 1, 0x67]
            } else {
                vec![]
            },
        }
    }

    fn mark(id: &str, at: i64) -> Mark {
        Mark {
            item_id: id.into(),
            title: id.into(),
            result: "ok".into(),
            at_micros: at,
        }
    }

    #[test]
    fn chapters_sorted_clamped_and_chained() {
        let c = build_chapters(
            &[
                mark("b", 5_000_000),
                mark("a", 1_000_000),
                mark("early", -3),
            ],
            1_000_000,
            10_000,
        );
        assert_eq!(
            c.iter().map(|c| c.item_id.as_str()).collect::<Vec<_>>(),
            ["early", "a", "b"]
        );
        assert_eq!(
            c.iter().map(|c| (c.start_ms, c.end_ms)).collect::<Vec<_>>(),
            [(0, 0), (0, 4000), (4000, 10_000)]
        );
        let clamped = clamp_chapters(c, 4500);
        assert_eq!(
            clamped
                .iter()
                .map(|c| (c.start_ms, c.end_ms))
                .collect::<Vec<_>>(),
            [(0, 0), (0, 4000), (4000, 4500)]
        );
    }

    #[test]
    fn reconnects_of_one_participant_are_one_stream_on_one_timeline() {
        use Codec::*;
        use TrackKind::*;
        let s = 1_000_000;
        let journals = [
            // First connection 0–30 s, a 10 s gap, second connection 40–70 s; the inspector's
            // voice from 5 s.
            journal("0-a", "biz", Audio, Opus, T0 + 20_000, T0 + 30 * s),
            journal("0-v", "biz", Video, Vp8, T0, T0 + 30 * s),
            journal("1-a", "biz", Audio, Opus, T0 + 40 * s, T0 + 70 * s),
            journal("1-v", "biz", Video, Vp8, T0 + 40 * s, T0 + 70 * s),
            journal("2-a", "insp", Audio, Opus, T0 + 5 * s, T0 + 60 * s),
        ];
        let p = plan(
            &journals,
            &[mark("m1", T0 + 45 * s), mark("m0", T0 + 2 * s)],
        )
        .expect("media");
        assert_eq!(p.container, Container::Webm);
        let streams: Vec<(&str, TrackKind, Vec<usize>)> = p
            .streams
            .iter()
            .map(|g| (g.participant_ids[0].as_str(), g.kind, g.journals.clone()))
            .collect();
        assert_eq!(
            streams,
            [
                ("biz", Video, vec![1, 3]),
                ("biz", Audio, vec![0, 2]),
                ("insp", Audio, vec![4])
            ]
        );
        assert_eq!(p.epoch_micros, T0);
        assert_eq!(p.planned_end_ms, 70_000);
        assert_eq!(
            p.cues_reserve,
            WEBM_CUES_RESERVE_BASE + 70 * CUES_BYTES_PER_SECOND
        );
        assert_eq!(
            p.chapters
                .iter()
                .map(|c| (c.item_id.as_str(), c.start_ms, c.end_ms))
                .collect::<Vec<_>>(),
            [("m0", 2000, 45_000), ("m1", 45_000, 70_000)]
        );
        assert!(p.skipped.is_empty());
    }

    fn fed(mut j: JournalFacts, feed: &str) -> JournalFacts {
        j.meta.feed = Some(feed.into());
        j
    }

    #[test]
    fn one_stream_per_feed_whoever_publishes_and_overlaps_apart() {
        use Codec::*;
        use TrackKind::*;
        let s = 1_000_000;
        let cam = |name, who, start, end| {
            fed(
                journal(name, who, Video, Vp8, start, end),
                "business_camera",
            )
        };
        let mic = |name, who, start, end| {
            fed(
                journal(name, who, Audio, Opus, start, end),
                "business_microphone",
            )
        };
        let journals = [
            // The first phone 0–20 s; the business rejoins from another invitation 30–50 s
            // (another participant); the old connection's last packet crosses the new one's
            // first by 200 ms at a reconnect of the second phone at 50 s.
            cam("0-v", "phone-1", T0, T0 + 20 * s),
            mic("0-a", "phone-1", T0, T0 + 20 * s),
            cam("1-v", "phone-2", T0 + 30 * s, T0 + 50 * s),
            mic("1-a", "phone-2", T0 + 30 * s, T0 + 50 * s),
            cam("2-v", "phone-2", T0 + 50 * s - 200_000, T0 + 60 * s),
            // A third device publishes at the same time as the second, 35–40 s.
            cam("3-v", "phone-3", T0 + 35 * s, T0 + 40 * s),
        ];
        let p = plan(&journals, &[]).expect("media");
        let streams: Vec<(Option<&str>, Vec<usize>, Vec<&str>)> = p
            .streams
            .iter()
            .map(|g| {
                (
                    g.key.feed(),
                    g.journals.clone(),
                    g.participant_ids.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            streams,
            [
                (
                    Some("business_camera"),
                    vec![0, 2, 4],
                    vec!["phone-1", "phone-2"]
                ),
                (Some("business_camera"), vec![5], vec!["phone-3"]),
                (
                    Some("business_microphone"),
                    vec![1, 3],
                    vec!["phone-1", "phone-2"]
                ),
            ]
        );
        assert_eq!(p.planned_end_ms, 60_000);
        // Journals that name no feed stay one stream per participant.
        let old = [
            journal("0-v", "phone-1", Video, Vp8, T0, T0 + 20 * s),
            journal("1-v", "phone-2", Video, Vp8, T0 + 30 * s, T0 + 50 * s),
        ];
        assert_eq!(plan(&old, &[]).expect("media").streams.len(), 2);
    }

    #[test]
    fn the_business_microphone_is_the_first_audio_stream_whoever_connected_first() {
        use Codec::*;
        use TrackKind::*;
        let s = 1_000_000;
        // The inspector opens the room (and its microphone) before the business joins.
        let journals = [
            fed(
                journal("0-a", "inspector", Audio, Opus, T0, T0 + 60 * s),
                "inspector_voice",
            ),
            fed(
                journal("1-v", "phone", Video, Vp8, T0 + 4 * s, T0 + 60 * s),
                "business_camera",
            ),
            fed(
                journal("1-a", "phone", Audio, Opus, T0 + 4 * s, T0 + 60 * s),
                "business_microphone",
            ),
        ];
        let p = plan(&journals, &[]).expect("media");
        let feeds: Vec<Option<&str>> = p.streams.iter().map(|g| g.key.feed()).collect();
        assert_eq!(
            feeds,
            [
                Some("business_camera"),
                Some("business_microphone"),
                Some("inspector_voice")
            ]
        );
        // The timeline still starts with the first media, the inspector's.
        assert_eq!(p.epoch_micros, T0);
    }

    #[test]
    fn the_container_follows_the_video_codec() {
        use Codec::*;
        use TrackKind::*;
        let h264 = [
            journal("v", "biz", Video, H264, T0, T0 + 1_000_000),
            journal("a", "biz", Audio, Opus, T0, T0 + 1_000_000),
        ];
        let p = plan(&h264, &[]).expect("media");
        assert_eq!(p.container, Container::Mp4);
        assert_eq!(p.cues_reserve, 0);
        assert_eq!(p.streams[0].extradata, vec![0, 0, 0, 1, 0x67]);
        assert_eq!(p.container.time_base(Video), (1, 90_000));
        // VP8 anywhere: WebM, and H.264 does not fit in it.
        let mixed = [
            journal("h", "biz", Video, H264, T0, T0 + 1_000_000),
            journal("v", "other", Video, Vp8, T0, T0 + 1_000_000),
        ];
        let p = plan(&mixed, &[]).expect("media");
        assert_eq!(p.container, Container::Webm);
        assert_eq!(p.skipped, ["h"]);
        assert_eq!(p.container.time_base(Audio), (1, 1000));
    }

    #[test]
    fn video_without_a_keyframe_or_another_codec_is_left_out() {
        use Codec::*;
        use TrackKind::*;
        let mut blind = journal("blind", "biz", Video, Vp8, T0, T0 + 1_000_000);
        blind.size = None;
        assert_eq!(plan(&[blind.clone()], &[]), None, "nothing to record");
        let p = plan(
            &[
                blind,
                journal("a", "biz", Audio, Opus, T0 + 500_000, T0 + 2_000_000),
            ],
            &[],
        )
        .expect("audio");
        assert_eq!(p.skipped, ["blind"]);
        // The epoch is that of what is recorded, not of what was left out.
        assert_eq!(p.epoch_micros, T0 + 500_000);
        // A second codec for one participant's video: the later journal is left out.
        let p = plan(
            &[
                journal("v1", "biz", Video, Vp8, T0, T0 + 1_000_000),
                journal("v2", "biz", Video, H264, T0 + 2_000_000, T0 + 3_000_000),
            ],
            &[],
        )
        .expect("media");
        assert_eq!(
            (p.streams.len(), p.skipped.clone()),
            (1, vec!["v2".to_string()])
        );
    }
}
