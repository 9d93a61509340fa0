// Reviewer player: the recording with the checklist as chapters (click or N/P to jump), a
// timeline with coloured markers, the event log, and downloads.

import { t, applyI18n, bindLangSwitch, formatTime, formatDuration, setTimeZone, zoneLabel, getLang } from './i18n.js';
import * as api from './api.js';
import { el, resultBadge } from './checklist.js';
import { eventLine } from './present.js';
import { errorText } from './errors.js';
import { applyEvent, emptyState } from './state.js';
import { renderEvidence } from './evidence.js';
import { drawTrack } from './track.js';
import { reviewPointers } from './camera-review.js';
import { companionAudio } from './review-audio.js';
import { reviewStills } from './review-stills.js';

const $ = (id) => document.getElementById(id);
const view = { id: null, inspection: null, manifest: null, chapters: [], events: [], state: emptyState(), current: -1 };

function inspectionId() {
  const q = new URLSearchParams(location.search).get('id');
  if (q) return q;
  const h = location.hash.replace(/^#/, '');
  return h || null;
}

function fail(text) {
  $('review-error').textContent = text;
  $('review-error').hidden = false;
}

async function load() {
  view.id = inspectionId();
  if (view.id && !stills) stills = reviewStills(video, view.id);
  if (!view.id) { fail(t('review.no_id')); return; }
  const base = `/api/inspections/${view.id}`;
  try {
    view.inspection = await api.get(base);
  } catch (e) {
    if (e.status === 401) {
      fail(t('error.unauthenticated'));
      $('review-error').append(' ', el('a', { href: '/#/login', text: t('login.submit') }));
    } else fail(`${t('common.error')}: ${errorText(e)}`);
    return;
  }
  setTimeZone(view.inspection.time_zone);
  renderHeader();
  renderDownloads();
  loadEvents(base);
  loadTrack(base);
  await loadManifest(base);
}

/** The movement track (on-site inspections, or any with the inspector's positions). */
async function loadTrack(base) {
  let track;
  try {
    track = await api.get(`${base}/track`);
  } catch (_) {
    return;
  }
  const onSite = view.inspection.mode === 'on_site';
  if (!onSite && !(track.points || []).length) return;
  $('track-panel').hidden = false;
  $('track-summary').textContent = drawTrack($('track'), track);
  const st = await api.get(`${base}/state`).catch(() => null);
  const findings = st?.state?.findings || [];
  $('findings').replaceChildren(...findings.map((f) => {
    // The finding's own photos and videos, with their hashes, as an item's.
    const box = el('div', { class: 'evidence-box finding-evidence' });
    renderEvidence(box, f.evidence || [], { inspectionId: view.id });
    return el('li', { class: 'finding', 'data-seq': String(f.seq), 'data-evidence': String((f.evidence || []).length) },
      el('span', { text: f.text }),
      el('span', { class: 'muted', text: ` · ${formatTime(new Date(f.ts / 1000).toISOString())}` }),
      box);
  }));
}

/** Downloads carry human names (date, business, kind) in the page's language. */
function renderDownloads() {
  const base = `/api/inspections/${view.id}`;
  const q = `download=1&lang=${getLang()}`;
  $('dl-video').href = `${base}/recording?${q}`;
  $('dl-log').href = `${base}/events.jsonl?${q}`;
  $('dl-vtt').href = `${base}/recording/chapters.vtt?${q}`;
}

function hidePlayer() {
  for (const id of ['video', 'timeline', 'dl-video', 'dl-vtt', 'not-ready', 'duration']) $(id).hidden = true;
  $('prev').parentElement.hidden = true;
  document.body.dataset.player = 'none';
}

async function loadManifest(base) {
  try {
    view.manifest = await api.get(`${base}/recording/manifest`);
  } catch (e) {
    if ((e.code === 'recording_not_ready' || e.status === 404) && view.inspection.mode === 'on_site') {
      // The phone records no room: the track, findings and evidence are the review, not an
      // empty player waiting for a recording that will not come.
      hidePlayer();
      return;
    }
    if (e.code === 'recording_not_ready' || e.status === 404) {
      // Finalization runs after the finish; ask again shortly.
      $('not-ready').hidden = false;
      setTimeout(() => loadManifest(base), 2000);
      return;
    }
    fail(`${t('common.error')}: ${errorText(e)}`);
    return;
  }
  $('not-ready').hidden = true;
  const video = $('video');
  video.src = `${base}/recording`;
  // The inspector's voice is the recording's second audio stream, which <video> does not play.
  if (!view.companions) view.companions = companionAudio(video, base, view.manifest.tracks, $('timeline'));
  const track = el('track', { kind: 'chapters', src: `${base}/recording/chapters.vtt`, srclang: 'ru', default: true });
  video.append(track);
  const items = view.inspection.items || [];
  // The recording's wall-clock start (media time 0) lets marks and event-log lines seek too.
  view.recStartMs = Number.isFinite(view.manifest.epoch_micros) ? view.manifest.epoch_micros / 1000 : null;
  view.chapters = (view.manifest.chapters || [])
    // An introduction with nothing before the first item is no chapter to jump to.
    .filter((c) => c.item_id !== '' || c.end_ms > c.start_ms)
    .map((c, i) => {
      const intro = c.item_id === '';
      const item = items.find((it) => it.id === c.item_id);
      return {
        ...c,
        intro,
        number: intro ? '' : (item?.number ?? String(i + 1)),
        question: intro ? t('review.intro') : (item?.question ?? c.title ?? c.item_id),
        result: ['compliant', 'violation', 'not_applicable'].includes(c.result) ? c.result : 'unanswered',
      };
    });
  attachMarks();
  pointers.setEvents(view.events, view.recStartMs);
  stills?.setEvents(view.events, view.recStartMs);
  renderChapters();
  renderMeta();
  renderEvents();
  renderEvidenceList();
  // Clips and stills of the violations are cut right after finalization: reload the log
  // until every violation chapter has its derived evidence (or give up after a minute).
  refreshDerived(base, 30);
}

/**
 * The exact moment of each chapter's mark (its chapter begins earlier, where the item began
 * being looked at): the first result event of the item with the chapter's result at or after
 * the chapter's start, in media time.
 */
function attachMarks() {
  for (const c of view.chapters) {
    c.mark_ms = null;
    if (c.intro || view.recStartMs == null) continue;
    const e = view.events.find((ev) => ev.kind === 'set_result' && ev.payload?.item_id === c.item_id
      && ev.payload?.result === c.result && ev.server_ts >= c.mark_at_micros);
    // The mark's moment is the frame the inspector saw when the server placed it there
    // (seen.rule "seen_frame"), else the server's time (docs/protocol.md).
    const seen = e?.payload?.seen;
    const at = seen?.rule === 'seen_frame' && Number.isFinite(seen.at_micros) ? seen.at_micros : e?.server_ts;
    if (e) c.mark_ms = Math.max(0, Math.round(at / 1000 - view.recStartMs));
  }
}

function derivedMissing() {
  return view.chapters.some((c) => c.result === 'violation'
    && !(view.state.items?.[c.item_id]?.evidence || []).some((e) => e.kind === 'clip'));
}

async function refreshDerived(base, left) {
  if (!derivedMissing() || left <= 0) return;
  await new Promise((resolve) => { setTimeout(resolve, 2000); });
  await loadEvents(base);
  refreshDerived(base, left - 1);
}

async function loadEvents(base) {
  try {
    const text = await api.getText(`${base}/events.jsonl`);
    view.events = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    view.state = emptyState();
    for (const e of view.events) applyEvent(view.state, e);
  } catch (_) {
    view.events = [];
  }
  if (view.manifest) { attachMarks(); pointers.setEvents(view.events, view.recStartMs); stills?.setEvents(view.events, view.recStartMs); renderChapters(); }
  renderEvents();
  renderEvidenceList();
}

/** Photos, clips and stills of every item, in checklist order. */
function renderEvidenceList() {
  const items = view.inspection?.items || [];
  const rows = [];
  for (const it of items) {
    const entries = (view.state.items?.[it.id]?.evidence || []).filter((e) => e.size != null);
    if (!entries.length) continue;
    const box = el('div', { class: 'item-evidence' });
    renderEvidence(box, entries, { inspectionId: view.id });
    const li = el('li', { class: 'evidence-item', 'data-item-id': it.id },
      el('div', { class: 'evidence-head' }, el('span', { class: 'num', text: it.number ?? '' }), ' ', el('span', { text: it.question ?? '' })),
      box);
    // A photo or still seeks the recording to its moment.
    for (const e of entries) {
      const at = e.media_ms ?? (e.at_micros && view.recStartMs != null ? e.at_micros / 1000 - view.recStartMs : null);
      if (at == null || at < 0) continue;
      li.append(el('button', {
        type: 'button', class: 'btn btn-small', 'data-evidence-id': e.id,
        text: `${t(`evidence.kind.${e.kind}`)} ${formatDuration(at)}`,
        onclick: () => { $('video').currentTime = at / 1000; },
      }));
    }
    rows.push(li);
  }
  $('evidence').replaceChildren(...rows);
  $('evidence-none').hidden = rows.length > 0;
}

function renderHeader() {
  const i = view.inspection;
  $('review-title').textContent = `${t('review.title')}: ${i.title}`;
  $('review-status').replaceChildren(el('span', { class: `status status-${i.status}`, text: t(`status.${i.status}`) }));
  $('review-meta').textContent = [i.business?.name, i.business?.inn ? t('business.inn', { inn: i.business.inn }) : '', i.inspector?.display_name,
    formatTime(i.started_at), formatTime(i.finished_at), t('time.zone', { z: zoneLabel() })].filter((x) => x && x !== '—').join(' · ');
}

function renderMeta() {
  const m = view.manifest;
  if (!m) return;
  $('duration').textContent = t('review.duration', { t: formatDuration(m.duration_ms) });
  $('sha').textContent = m.sha256 ? `${t('review.sha256')}: ${m.sha256}` : '';
}

function durationMs() {
  const v = $('video');
  if (Number.isFinite(v.duration) && v.duration > 0) return v.duration * 1000;
  return view.manifest?.duration_ms || 1;
}

function renderChapters() {
  const list = $('chapters');
  list.replaceChildren(...view.chapters.map((c, i) => {
    const b = el('button', {
      type: 'button', class: `chapter result-${c.result}`, 'data-index': i, 'data-item-id': c.item_id,
      'data-start-ms': c.start_ms, 'aria-current': 'false',
      onclick: () => seekTo(i),
      onkeydown: (ev) => {
        if (ev.key === 'ArrowDown') { ev.preventDefault(); seekTo(Math.min(i + 1, view.chapters.length - 1), true); }
        if (ev.key === 'ArrowUp') { ev.preventDefault(); seekTo(Math.max(i - 1, 0), true); }
      },
    },
    el('span', { class: 'num', text: c.number }),
    el('span', { class: 'q', text: c.question }),
    el('span', { class: 'tc', text: formatDuration(c.start_ms) }),
    c.intro ? null : resultBadge(c.result),
    c.mark_ms != null ? el('span', { class: 'mark-at muted', 'data-mark-ms': c.mark_ms, text: t('review.mark_at', { t: formatDuration(c.mark_ms) }) }) : null);
    return el('li', {}, b);
  }));
  renderMarkers();
}

function renderMarkers() {
  const tl = $('timeline');
  for (const m of tl.querySelectorAll('.marker')) m.remove();
  const total = durationMs();
  view.chapters.forEach((c, i) => {
    const pct = Math.max(0, Math.min(100, (c.start_ms / total) * 100));
    const m = el('button', {
      type: 'button', class: `marker result-${c.result}`, tabindex: '-1',
      'aria-label': `${c.number} ${c.question} — ${t(`result.${c.result}`)} ${formatDuration(c.start_ms)}`,
      title: `${c.number} ${c.question} (${formatDuration(c.start_ms)})`,
      onclick: (ev) => { ev.stopPropagation(); seekTo(i); },
    });
    // CSSOM, not a style attribute, so a strict Content-Security-Policy allows it.
    m.style.left = `${pct}%`;
    tl.append(m);
  });
}

function seekTo(i, focus = false) {
  const c = view.chapters[i];
  if (!c) return;
  const video = $('video');
  video.currentTime = c.start_ms / 1000;
  setCurrent(i);
  if (focus) $('chapters').querySelector(`[data-index="${i}"]`)?.focus();
}

function setCurrent(i) {
  if (view.current === i) return;
  view.current = i;
  for (const b of $('chapters').querySelectorAll('.chapter')) b.setAttribute('aria-current', String(Number(b.dataset.index) === i));
}

function currentIndexAt(ms) {
  let idx = -1;
  view.chapters.forEach((c, i) => { if (c.start_ms <= ms + 50) idx = i; });
  return idx;
}

function renderEvents() {
  const ol = $('eventlog');
  const lines = document.createDocumentFragment();
  const items = view.inspection?.items || [];
  for (const e of view.events) {
    const li = eventLine(e, view.state, items);
    if (!li) continue;
    lines.append(li);
    const ts = e.server_ts ? e.server_ts / 1000 : Date.parse(e.server_time);
    if (view.recStartMs !== null && view.recStartMs !== undefined && Number.isFinite(ts)) {
      const at = ts - view.recStartMs;
      if (at >= 0) {
        li.append(el('button', {
          type: 'button', class: 'btn btn-small', text: formatDuration(at),
          onclick: () => { $('video').currentTime = at / 1000; },
        }));
      }
    }
  }
  ol.replaceChildren(lines);
  ol.scrollTop = 0;
}

// ---------- Player wiring ----------

const video = $('video');
// The inspector's pointers over the recording (issue 25), with a toggle.
const pointers = reviewPointers(video);
// The phone's stills where it sent no video (issue 19); made once the inspection is known.
let stills = null;
function followTime() {
  const ms = video.currentTime * 1000;
  $('played').style.width = `${Math.min(100, (ms / durationMs()) * 100)}%`;
  const idx = currentIndexAt(ms);
  if (idx >= 0) setCurrent(idx);
}
// WebKit can report a timeupdate from before a seek while it runs: the chapter chosen by a
// click stays until the seek lands, and 'seeked' settles it from the new time.
video.addEventListener('timeupdate', () => { if (!video.seeking) followTime(); });
video.addEventListener('seeked', followTime);
video.addEventListener('loadedmetadata', renderMarkers);
$('timeline').addEventListener('click', (ev) => {
  const r = $('timeline').getBoundingClientRect();
  video.currentTime = ((ev.clientX - r.left) / r.width) * (durationMs() / 1000);
});
$('next').addEventListener('click', () => seekTo(Math.min(view.current + 1, view.chapters.length - 1)));
$('prev').addEventListener('click', () => seekTo(Math.max(view.current - 1, 0)));

document.addEventListener('keydown', (ev) => {
  const tag = ev.target.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key.toLowerCase();
  if (k === 'n' || k === 'j' || k === 'т' || k === 'о') {
    ev.preventDefault();
    seekTo(Math.min(view.current + 1, view.chapters.length - 1), true);
  } else if (k === 'p' || k === 'k' || k === 'з' || k === 'л') {
    ev.preventDefault();
    seekTo(Math.max(view.current - 1, 0), true);
  } else if (k === ' ' && tag !== 'BUTTON' && tag !== 'VIDEO' && tag !== 'A') {
    ev.preventDefault();
    if (video.paused) video.play().catch(() => {}); else video.pause();
  }
});

window.addEventListener('langchange', () => {
  if (!view.inspection) return;
  renderHeader();
  renderDownloads();
  renderChapters();
  renderMeta();
  renderEvents();
  renderEvidenceList();
  const cur = view.current;
  view.current = -1;
  setCurrent(cur);
});
window.addEventListener('hashchange', () => location.reload());
bindLangSwitch($('lang'));
applyI18n();
load();
