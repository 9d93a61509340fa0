// The reviewer's overlay of the inspector's pointers (issue 25): the log's `pointer` events
// drawn over the recording at their media time (server time minus the recording's start),
// for as long as the phone showed them, with a toggle. The recording itself is untouched:
// the overlay is a projection of the log.

import { t } from './i18n.js';
import { drawPointer, POINTER_SHOW_MS } from './camera.js';

export function reviewPointers(video) {
  const frame = document.createElement('div');
  frame.className = 'player-frame';
  video.replaceWith(frame);
  frame.append(video);
  const label = document.createElement('label');
  label.className = 'pointers-toggle';
  const box = Object.assign(document.createElement('input'), { type: 'checkbox', id: 'pointers-toggle', checked: true });
  const text = document.createElement('span');
  label.append(box, ' ', text);
  frame.after(label);
  const view = { pointers: [], shown: null };

  function render() {
    text.textContent = t('review.pointers');
    label.hidden = view.pointers.length === 0;
    const ms = video.currentTime * 1000;
    // The latest pointer shown at this moment.
    const p = box.checked ? view.pointers.filter((x) => x.media_ms <= ms && ms < x.media_ms + POINTER_SHOW_MS).pop() : null;
    if ((p?.seq ?? null) === view.shown) return;
    view.shown = p?.seq ?? null;
    drawPointer(video, p || null);
  }

  video.addEventListener('timeupdate', render);
  video.addEventListener('seeked', render);
  // `undefined`: redraw whatever is shown (null is "nothing shown").
  window.addEventListener('resize', () => { view.shown = undefined; render(); });
  box.addEventListener('change', () => { view.shown = undefined; render(); });
  window.addEventListener('langchange', render);

  return {
    /** The log's pointers, placed on the recording's media time. */
    setEvents(events, recStartMs) {
      view.pointers = recStartMs == null ? [] : events.filter((e) => e.kind === 'pointer' && e.payload?.at)
        .map((e) => ({ seq: e.seq, media_ms: e.server_ts / 1000 - recStartMs, ...e.payload }))
        .filter((p) => p.media_ms >= 0);
      view.shown = undefined;
      render();
    },
  };
}
