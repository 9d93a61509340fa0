// The recording's audio streams beyond its first, heard beside the video. A browser's <video>
// plays only a file's first audio stream (the business's microphone); the inspector's voice
// is the second. The server serves each such stream alone on the recording's timeline, with
// silence where it had none (GET …/recording/tracks/{index}), so keeping one <audio> per
// stream at the video's currentTime keeps both sides of the conversation in sync.

import { t } from './i18n.js';

/** Re-seek the companion only past this drift: each seek re-buffers it. */
const MAX_DRIFT_S = 0.2;

function labelOf(track) {
  return track.feed === 'inspector_voice' ? t('review.voice') : t('review.audio.other', { n: String(track.index) });
}

/** One companion per audio stream after the first; a toggle each, after `anchor`. */
export function companionAudio(video, base, tracks, anchor) {
  const audio = (tracks || []).filter((tr) => tr.kind === 'audio').sort((a, b) => a.index - b.index).slice(1);
  const made = audio.map((tr) => {
    const el = document.createElement('audio');
    Object.assign(el, { preload: 'auto', id: `audio-track-${tr.index}` });
    el.dataset.trackIndex = String(tr.index);
    el.dataset.feed = tr.feed || '';
    el.src = `${base}/recording/tracks/${tr.index}`;
    el.hidden = true;
    const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: true, id: `audio-toggle-${tr.index}` });
    const text = document.createElement('span');
    const label = document.createElement('label');
    label.className = 'audio-toggle';
    label.append(box, ' ', text, el);
    const c = { tr, el, box, text, label };
    text.textContent = labelOf(tr);
    box.addEventListener('change', () => follow(c));
    return c;
  });

  function follow(c, seeked = false) {
    const { el } = c;
    el.playbackRate = video.playbackRate;
    el.volume = video.volume;
    el.muted = video.muted || !c.box.checked;
    const stop = video.paused || video.seeking || video.ended || video.readyState < 3
      || (Number.isFinite(el.duration) && video.currentTime >= el.duration);
    if (seeked || Math.abs(el.currentTime - video.currentTime) > MAX_DRIFT_S) el.currentTime = video.currentTime;
    if (stop) { if (!el.paused) el.pause(); return; }
    if (el.paused) el.play().catch(() => {});
  }
  const all = (seeked) => { for (const c of made) follow(c, seeked); };
  for (const ev of ['play', 'playing', 'pause', 'waiting', 'ratechange', 'volumechange', 'ended', 'timeupdate']) {
    video.addEventListener(ev, () => all(false));
  }
  video.addEventListener('seeking', () => { for (const c of made) c.el.pause(); });
  video.addEventListener('seeked', () => all(true));
  window.addEventListener('langchange', () => { for (const c of made) c.text.textContent = labelOf(c.tr); });
  let at = anchor;
  for (const c of made) { at.after(c.label); at = c.label; }
  return made.map((c) => c.el);
}
