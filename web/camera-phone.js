// The phone's side of guiding the camera (issue 25): report what the camera can do (only
// what the track's getCapabilities() says), apply the inspector's commands from the log and
// say what changed, draw the inspector's pointer over the preview. The phone's own buttons
// keep working: what its user changes is reported back, so the console shows it.

import { t } from './i18n.js';
import { drawPointer, POINTER_SHOW_MS } from './camera.js';

/**
 * `page` is the business page's state (stream, facing, torch, sync); `hooks.switchCamera(f)`
 * switches to facing `f` and resolves when the new track is live; `hooks.refresh()` redraws
 * the phone's own camera controls.
 */
export function phoneCamera(page, hooks) {
  const cam = { reportTimer: null, shown: null, hideTimer: null, noticeTimer: null };
  const video = () => document.getElementById('local-video');
  const track = () => page.stream?.getVideoTracks()[0];

  async function caps() {
    const tr = track();
    const c = tr?.getCapabilities ? tr.getCapabilities() : {};
    const s = tr?.getSettings ? tr.getSettings() : {};
    const out = { caps: {}, settings: {} };
    let inputs = 0;
    try {
      inputs = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput').length;
    } catch (_) { /* No list: no switch offered. */ }
    if (inputs >= 2) out.caps.facing = ['environment', 'user'];
    if (c.torch) out.caps.torch = true;
    if (c.zoom && Number.isFinite(c.zoom.min) && Number.isFinite(c.zoom.max) && c.zoom.max > c.zoom.min) {
      out.caps.zoom = { min: c.zoom.min, max: c.zoom.max, ...(Number.isFinite(c.zoom.step) ? { step: c.zoom.step } : {}) };
    }
    const modes = c.focusMode || [];
    if ('pointsOfInterest' in c || (modes.includes('single-shot') && navigator.mediaDevices.getSupportedConstraints?.().pointsOfInterest)) {
      out.caps.focus = true;
    }
    out.settings.facing = page.facing;
    if (out.caps.torch) out.settings.torch = !!page.torch;
    if (out.caps.zoom && Number.isFinite(s.zoom)) out.settings.zoom = s.zoom;
    return out;
  }

  /** Report the camera (debounced: a slider's moves are one report). */
  function report(delay = 400) {
    clearTimeout(cam.reportTimer);
    cam.reportTimer = setTimeout(async () => {
      if (!page.sync || !track()) return;
      const r = await caps();
      page.sync.op({ kind: 'camera_caps', ...r });
    }, delay);
  }

  function notice(text) {
    let n = document.getElementById('cam-notice');
    if (!n) {
      n = Object.assign(document.createElement('div'), { id: 'cam-notice', className: 'banner banner-ok cam-notice' });
      n.setAttribute('role', 'status');
      n.setAttribute('aria-live', 'polite');
      document.querySelector('.biz-video')?.before(n);
    }
    n.textContent = text;
    n.hidden = false;
    clearTimeout(cam.noticeTimer);
    cam.noticeTimer = setTimeout(() => { n.hidden = true; }, 4000);
  }

  async function apply(cmd) {
    const tr = track();
    if (!tr) return;
    try {
      if (cmd.capability === 'facing') {
        if (cmd.value !== page.facing) await hooks.switchCamera(cmd.value);
        notice(t(cmd.value === 'user' ? 'cam.notice.front' : 'cam.notice.rear'));
        report(0);
        return;
      }
      if (cmd.capability === 'torch') {
        await tr.applyConstraints({ advanced: [{ torch: !!cmd.value }] });
        page.torch = !!cmd.value;
        notice(t(cmd.value ? 'cam.notice.torch_on' : 'cam.notice.torch_off'));
      } else if (cmd.capability === 'zoom') {
        await tr.applyConstraints({ advanced: [{ zoom: Number(cmd.value) }] });
        notice(t('cam.notice.zoom', { z: Number(cmd.value).toFixed(1) }));
      } else if (cmd.capability === 'focus') {
        await tr.applyConstraints({ advanced: [{ pointsOfInterest: [{ x: cmd.value.x, y: cmd.value.y }], focusMode: 'single-shot' }] });
        notice(t('cam.notice.focus'));
      }
      hooks.refresh();
    } catch (_) {
      // The camera said no: the log learns the real settings from the next report.
      report(0);
    }
  }

  function showPointer(p) {
    cam.shown = { seq: p.seq, until: Date.now() + POINTER_SHOW_MS, pointer: p };
    const marker = drawPointer(video(), p);
    if (marker) marker.setAttribute('aria-label', p.text ? t('cam.pointer.text', { text: p.text }) : t('cam.pointer'));
    navigator.vibrate?.(80);
    clearTimeout(cam.hideTimer);
    cam.hideTimer = setTimeout(() => { cam.shown = null; drawPointer(video(), null); }, POINTER_SHOW_MS);
  }

  /** A live event of the log: only what happens now steers the camera (not a replay). */
  function onEvent(e) {
    if (!e || page.ended) return;
    if (e.kind === 'camera') apply(e.payload || {});
    if (e.kind === 'pointer') showPointer({ seq: e.seq, ...(e.payload || {}) });
  }

  // Every (re)connect reports again: commands sent while the socket was away were not
  // applied here, and the log must say what the camera really does.
  page.sync?.addEventListener('welcome', () => { if (track()) report(0); });

  // A rotation or resize moves the frame inside the preview: the marker follows.
  window.addEventListener('resize', () => { if (cam.shown) drawPointer(video(), cam.shown.pointer); });

  return {
    report,
    onEvent,
    /** The pointer on screen now, for a photo taken now (its seq goes with the upload). */
    shownPointerSeq: () => (cam.shown && cam.shown.until > Date.now() ? cam.shown.seq : null),
  };
}
