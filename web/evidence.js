// Evidence on checklist items: thumbnails (the original scaled by CSS; the phone shows its
// own local copy), a full-size viewer, and the phone's photo: a full-resolution still taken
// without leaving the call (ImageCapture.takePhoto() where the browser has it, else a frame of
// the camera track drawn at its resolution), uploaded as raw bytes with the location sample.

import { t } from './i18n.js';
import { el } from './checklist.js';
import * as api from './api.js';

/** Where the server serves a piece of evidence. */
export function evidenceUrl(inspectionId, ev) {
  return `/api/inspections/${inspectionId}/evidence/${ev.id}`;
}

let lightbox = null;

/** Open a photo, still or clip full size in a modal viewer. */
export function openLightbox(url, kind, label) {
  if (!lightbox) {
    const close = el('button', { type: 'button', class: 'btn lightbox-close', 'data-i18n': 'common.close', text: t('common.close'), onclick: () => lightbox.close() });
    lightbox = el('dialog', { id: 'lightbox', class: 'lightbox', 'aria-label': label }, close, el('div', { class: 'lightbox-body' }));
    lightbox.addEventListener('click', (ev) => { if (ev.target === lightbox) lightbox.close(); });
    lightbox.addEventListener('close', () => lightbox.querySelector('.lightbox-body').replaceChildren());
    document.body.append(lightbox);
  }
  const body = lightbox.querySelector('.lightbox-body');
  const media = (kind === 'clip' || kind === 'video')
    ? el('video', { src: url, controls: true, autoplay: true, playsinline: true, class: 'lightbox-media' })
    : el('img', { src: url, alt: label, class: 'lightbox-media' });
  body.replaceChildren(media, el('a', { class: 'btn btn-small', href: `${url}?download=1`, 'data-i18n': 'evidence.download', text: t('evidence.download') }));
  lightbox.setAttribute('aria-label', label);
  lightbox.showModal();
}

/**
 * Render the server-stored evidence of an item into `box`: photos and stills as thumbnails,
 * clips as a play tile; a click opens them full size. `localUrls` maps evidence ids to this
 * device's own copies (the phone does not download what it uploaded).
 */
export function renderEvidence(box, entries, { inspectionId, localUrls, requested } = {}) {
  const stored = (entries || []).filter((e) => e.id && e.size != null && e.sha256);
  const tiles = stored.map((e) => {
    const url = evidenceUrl(inspectionId, e);
    const kindLabel = t(`evidence.kind.${e.kind}`);
    const label = t('evidence.open', { what: kindLabel });
    const tile = el('button', {
      type: 'button', class: `thumb thumb-${e.kind}`, 'data-evidence-id': e.id, 'data-kind': e.kind,
      'aria-label': label, title: `${kindLabel} · ${t('evidence.sha256', { h: e.sha256.slice(0, 12) })}`,
      onclick: () => openLightbox(url, e.kind, label),
    });
    if ((e.kind === 'clip' || e.kind === 'video')) {
      tile.append(el('span', { class: 'thumb-play', 'aria-hidden': 'true', text: '▶' }), el('span', { class: 'thumb-label', text: e.duration_ms != null ? `${kindLabel} ${Math.round(e.duration_ms / 1000)} s` : kindLabel }));
    } else {
      tile.append(el('img', { class: 'thumb-img', src: localUrls?.get(e.id) || url, alt: kindLabel, decoding: 'async' }));
    }
    return tile;
  });
  if (requested) tiles.push(el('span', { class: 'photo-requested-badge', role: 'status', text: t('evidence.requested') }));
  box.replaceChildren(...tiles);
  box.hidden = tiles.length === 0;
}

/**
 * A full-resolution still of the camera track, without stopping it. `grab` draws the frame
 * shown (the low-bandwidth mode's stills every few seconds: ImageCapture.takePhoto
 * reconfigures some phones' cameras, a visible hiccup each time).
 */
export async function capturePhoto(track, video, { grab = false } = {}) {
  if (!grab && track && typeof window.ImageCapture === 'function') {
    try {
      const blob = await new window.ImageCapture(track).takePhoto();
      if (blob && blob.size > 0) return { blob, how: 'image_capture' };
    } catch (_) { /* Not every camera supports it: draw a frame instead. */ }
  }
  const s = track?.getSettings ? track.getSettings() : {};
  const w = s.width || video.videoWidth;
  const h = s.height || video.videoHeight;
  if (!w || !h) throw new Error('no_camera_frame');
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d').drawImage(video, 0, 0, w, h);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', grab ? 0.85 : 0.92));
  if (!blob) throw new Error('no_camera_frame');
  return { blob, how: 'canvas' };
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Upload a photo of an item with the device's capture time and location sample. The server
 * computes the hash itself; ours goes along so a corrupted transfer is refused.
 */
export async function uploadPhoto(inspectionId, itemId, blob, { position, capturedAt, pointerSeq }) {
  const q = new URLSearchParams({ item_id: itemId, captured_at: String(Math.round(capturedAt)) });
  // The inspector's pointer shown when it was taken (issue 25): the server copies it from the log.
  if (Number.isInteger(pointerSeq)) q.set('pointer_seq', String(pointerSeq));
  return postEvidence(inspectionId, q, blob, position);
}

/**
 * Upload a still of the camera in place of video (`reason`: 'low_bandwidth' or 'requested',
 * issue 19). `opId` makes a retry of the same still exactly-once: the server answers the
 * committed one.
 */
export async function uploadFrame(inspectionId, reason, blob, { position, capturedAt, opId }) {
  const q = new URLSearchParams({ frame: reason, captured_at: String(Math.round(capturedAt)) });
  if (opId) q.set('op_id', opId);
  return postEvidence(inspectionId, q, blob, position);
}

async function postEvidence(inspectionId, q, blob, position) {
  const c = position?.coords;
  if (c && Number.isFinite(c.latitude) && Number.isFinite(c.longitude)) {
    q.set('lat', String(c.latitude));
    q.set('lon', String(c.longitude));
    q.set('accuracy', String(Number.isFinite(c.accuracy) ? c.accuracy : 0));
    for (const [k, v] of [['altitude', c.altitude], ['altitude_accuracy', c.altitudeAccuracy], ['heading', c.heading], ['speed', c.speed]]) {
      if (typeof v === 'number' && Number.isFinite(v)) q.set(k, String(v));
    }
    q.set('device_ts', String(Math.round(position.timestamp)));
  }
  const headers = { 'Content-Type': blob.type || 'application/octet-stream' };
  if (crypto.subtle) {
    try { headers['X-Content-SHA256'] = hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())); } catch (_) { /* The server hashes anyway. */ }
  }
  return api.postBytes(`/api/inspections/${inspectionId}/evidence?${q}`, blob, headers);
}
