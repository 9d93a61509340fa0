// The console's side of guiding the business's camera (issue 25): controls for only what the
// phone reported (switch, torch, zoom, focus at a point) with its current settings, both from
// the log's projection (state.camera); a click or drag on the business's video points there
// on the phone (with an optional text). Commands and pointers are ops: the server checks the
// role, the phone's report, the ranges and the camera's rate.

import { t } from './i18n.js';
import { clientToFrame, drawPointer, POINTER_SHOW_MS } from './camera.js';

/** Mount the camera panel under the video bar; returns {update(data), onEvent(e), destroy()}. */
export function consoleCamera(room) {
  const video = document.getElementById('remote-video');
  const old = document.getElementById('cam-panel');
  old?.remove();
  const panel = document.createElement('section');
  panel.id = 'cam-panel';
  panel.className = 'cam-panel';
  panel.setAttribute('aria-label', t('cam.title'));
  panel.innerHTML = `
    <div class="cam-controls">
      <button type="button" class="btn" id="cam-facing" hidden></button>
      <button type="button" class="btn" id="cam-torch" aria-pressed="false" hidden></button>
      <label class="zoom-field" id="cam-zoom-wrap" hidden><span id="cam-zoom-label"></span>
        <input type="range" id="cam-zoom"></label>
      <label id="cam-focus-wrap" hidden><input type="checkbox" id="cam-focus-mode"> <span id="cam-focus-label"></span></label>
    </div>
    <label class="cam-pointer-field"><span id="cam-pointer-label"></span>
      <input type="text" id="cam-pointer-text" maxlength="200" autocomplete="off"></label>
    <p class="muted" id="cam-none" role="status"></p>`;
  const bar = document.querySelector('.video-bar');
  bar.after(panel);
  const $ = (id) => document.getElementById(id);
  const cam = { data: null, timer: null };

  function labels() {
    $('cam-zoom-label').textContent = t('cam.zoom');
    $('cam-focus-label').textContent = t('cam.focus_mode');
    $('cam-pointer-label').textContent = t('cam.pointer_text');
    $('cam-pointer-text').placeholder = t('cam.pointer_placeholder');
  }

  function send(capability, value) {
    if (room.sync?.data?.lifecycle?.status !== 'live') return;
    room.sync.op({ kind: 'camera', capability, value });
  }

  $('cam-facing').addEventListener('click', () => {
    const s = cam.data?.settings || {};
    send('facing', s.facing === 'user' ? 'environment' : 'user');
  });
  $('cam-torch').addEventListener('click', () => send('torch', !(cam.data?.settings?.torch)));
  $('cam-zoom').addEventListener('change', () => send('zoom', Number($('cam-zoom').value)));

  // A click points (or focuses, in focus mode); a drag points with an arrow from its start.
  let down = null;
  const wrap = video.parentElement;
  wrap.classList.add('cam-pointable');
  const onDown = (ev) => {
    if (ev.button !== 0) return;
    down = clientToFrame(video, ev.clientX, ev.clientY);
  };
  const onUp = (ev) => {
    const start = down;
    down = null;
    if (!start || room.sync?.data?.lifecycle?.status !== 'live' || !video.videoWidth) return;
    const at = clientToFrame(video, ev.clientX, ev.clientY) || start;
    if ($('cam-focus-mode').checked) {
      send('focus', at);
      return;
    }
    const op = { kind: 'pointer', at };
    // A drag longer than a few percent of the frame is an arrow.
    if (Math.hypot(at.x - start.x, at.y - start.y) > 0.03) op.from = start;
    const text = $('cam-pointer-text').value.trim();
    if (text) op.text = text.slice(0, 200);
    room.sync.op(op);
  };
  wrap.addEventListener('pointerdown', onDown);
  wrap.addEventListener('pointerup', onUp);

  function update(data) {
    const c = data?.camera || null;
    cam.data = c;
    labels();
    const caps = c?.caps || {};
    const s = c?.settings || {};
    const live = data?.lifecycle?.status === 'live';
    const facing = $('cam-facing');
    facing.hidden = !(caps.facing || []).length;
    facing.disabled = !live;
    facing.dataset.facing = s.facing || '';
    facing.textContent = t(s.facing === 'user' ? 'cam.to_rear' : 'cam.to_front');
    const torch = $('cam-torch');
    torch.hidden = !caps.torch;
    torch.disabled = !live;
    torch.setAttribute('aria-pressed', String(!!s.torch));
    torch.textContent = t(s.torch ? 'cam.torch_off' : 'cam.torch_on');
    const z = caps.zoom;
    $('cam-zoom-wrap').hidden = !z;
    if (z) {
      const input = $('cam-zoom');
      input.min = z.min;
      input.max = z.max;
      input.step = z.step || 0.1;
      input.disabled = !live;
      if (document.activeElement !== input) input.value = s.zoom ?? z.min;
      input.setAttribute('aria-valuetext', t('cam.zoom_value', { z: Number(input.value).toFixed(1) }));
    }
    $('cam-focus-wrap').hidden = !caps.focus;
    if (!caps.focus) $('cam-focus-mode').checked = false;
    const offered = [caps.facing?.length && 'facing', caps.torch && 'torch', z && 'zoom', caps.focus && 'focus'].filter(Boolean);
    panel.dataset.offered = offered.join(' ');
    $('cam-none').textContent = !c?.caps ? t('cam.none_reported')
      : t('cam.unsupported', { list: ['torch', 'zoom', 'focus'].filter((k) => !offered.includes(k)).map((k) => t(`cam.cap.${k}`)).join(', ') || '—' });
    $('cam-none').hidden = offered.length >= 4;
  }

  /** The inspector sees his own pointer on the video as the phone shows it. */
  function onEvent(e) {
    if (e?.kind !== 'pointer') return;
    drawPointer(video, { seq: e.seq, ...(e.payload || {}) });
    clearTimeout(cam.timer);
    cam.timer = setTimeout(() => drawPointer(video, null), POINTER_SHOW_MS);
  }

  function destroy() {
    wrap.removeEventListener('pointerdown', onDown);
    wrap.removeEventListener('pointerup', onUp);
    clearTimeout(cam.timer);
    drawPointer(video, null);
    panel.remove();
  }

  return { update, onEvent, destroy };
}
