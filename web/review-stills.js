// The reviewer's view of low-bandwidth mode (issue 19): where the phone sent stills instead of
// video, the still of that moment is shown over the recording (whose picture stands still
// there), with a caption. A projection of the log (web/lowband.js stillsTimeline); the
// recording is untouched.

import { t, formatTime } from './i18n.js';
import { stillsTimeline, stillAt } from './lowband.js';

export function reviewStills(video, inspectionId) {
  const frame = video.parentElement;
  const img = Object.assign(document.createElement('img'), { className: 'review-still', id: 'review-still', alt: '', hidden: true });
  const caption = Object.assign(document.createElement('div'), { className: 'stills-note', id: 'review-still-note', hidden: true });
  frame.append(img, caption);
  const view = { timeline: { periods: [], stills: [] }, shown: null, recStartMs: null };

  function render() {
    const s = stillAt(view.timeline, video.currentTime * 1000);
    if ((s?.id ?? null) === view.shown) return;
    view.shown = s?.id ?? null;
    img.hidden = !s;
    caption.hidden = !s;
    if (!s) return;
    img.src = `/api/inspections/${inspectionId}/evidence/${s.id}`;
    const when = formatTime(new Date(view.recStartMs + s.ms).toISOString(), { timeStyle: 'medium' });
    caption.textContent = t('review.stills', { t: when });
    img.alt = caption.textContent;
    caption.dataset.evidenceId = s.id;
  }

  video.addEventListener('timeupdate', render);
  video.addEventListener('seeked', render);
  window.addEventListener('langchange', () => { view.shown = undefined; render(); });

  return {
    /** The log's stills and stills periods, placed on the recording's media time. */
    setEvents(events, recStartMs) {
      view.recStartMs = recStartMs;
      view.timeline = stillsTimeline(events, recStartMs);
      view.shown = undefined;
      render();
    },
  };
}
