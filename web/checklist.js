// The checklist, rendered the same way in the inspector console (editable, one click per
// result) and on the business page (a live mirror). Every result has a colour AND an icon
// and a word, so colour is never the only signal.
//
// Typed text is never lost: the inspector's comment and violation description are saved as
// they are typed (debounced, and at once on leaving the box) through the socket's op-id
// retry, and kept as a local draft until the server's state says the same; every item shows
// whether its text is saved. The business's comment box keeps its text until the comment is
// acknowledged, and shows the server's refusal in words.

import { t, formatTime } from './i18n.js';
import { resultOf } from './state.js';
import { ICONS } from './icons.js';
import { errorText } from './errors.js';

/** Result codes in display order, with their icon. */
export const RESULTS = [
  { code: 'compliant', icon: '✓' },
  { code: 'violation', icon: '✕' },
  { code: 'not_applicable', icon: '–' },
  { code: 'unanswered', icon: '?' },
];

const ICON = Object.fromEntries(RESULTS.map((r) => [r.code, r.icon]));
/** How long typing may pause before the text is saved. */
export const SAVE_DEBOUNCE_MS = 700;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** A badge showing a result as icon + text on the result colour. */
export function resultBadge(result) {
  return el('span', { class: `badge result-${result}`, 'data-result': result },
    el('span', { class: 'icon', 'aria-hidden': 'true', text: ICON[result] }),
    el('span', { class: 'label', text: t(`result.${result}`) }));
}

/** Local drafts of typed text, per inspection and item (survive a reload or a crash). */
export function draftStore(inspectionId, kind) {
  const key = (itemId) => `inspector.draft.${kind}.${inspectionId}.${itemId}`;
  return {
    get(itemId) {
      try { return JSON.parse(localStorage.getItem(key(itemId)) || 'null'); } catch (_) { return null; }
    },
    set(itemId, value) {
      try { localStorage.setItem(key(itemId), JSON.stringify(value)); } catch (_) { /* Storage full or blocked: the text stays in the box. */ }
    },
    clear(itemId) {
      try { localStorage.removeItem(key(itemId)); } catch (_) { /* Nothing kept. */ }
    },
  };
}

/** Who wrote something, in words: a participant's name, "you", or the server. */
function authorName(state, by, selfId) {
  if (by && by === selfId) return t('comment.you');
  if (by === '00000000-0000-0000-0000-000000000000') return t('evidence.by.server');
  return state.participants?.[by]?.display_name || t('common.unknown');
}

/** The comments of an item, each with its author and time. */
function commentList(state, data, selfId) {
  const list = data.comments || [];
  if (!list.length) return null;
  return el('ul', { class: 'item-comments', 'aria-label': t('checklist.comments') },
    ...list.map((c) => el('li', { class: 'comment-entry', 'data-seq': c.seq, 'data-by': c.by || '' },
      el('span', { class: 'author', text: authorName(state, c.by, selfId) }),
      el('span', { class: 'ts', text: ` · ${formatTime(c.ts ? new Date(c.ts / 1000).toISOString() : null, { timeStyle: 'short' })}` }),
      el('span', { class: 'text', text: c.text }))));
}

/**
 * Render a checklist into container and return a controller with update(state).
 * items: [{id, number, question, requirement?}]
 * options.editable: show result buttons and the comment/violation boxes.
 * options.onSetResult(itemId, result, {comment, violation}) → op id: a click or a save.
 * options.onComment(itemId, text) → op id: when given, a comment box for non-editors.
 * options.drafts: a draftStore for typed text.
 * options.selfId(): this participant's id (its own comments read "you").
 * options.connected(): whether the socket is open now (an unsent save says so).
 * options.photoButton {text, label, onClick(itemId), disabled(state, itemData)}: a photo button.
 * options.renderEvidence(box, entries, item, itemData): fills the item's evidence box.
 * options.onSaveState(): called when any item's save state changes.
 */
export function renderChecklist(container, items, options = {}) {
  const { editable = false, onSetResult, onComment, drafts } = options;
  container.replaceChildren();
  const progress = el('p', { class: 'checklist-progress', 'aria-live': 'polite' });
  container.append(progress);
  if (!items || items.length === 0) {
    container.append(el('p', { class: 'muted', text: t('checklist.empty') }));
    return { update() {}, pending() {}, flushAll() {}, unsaved: () => [], unanswered: () => 0, commentDone() {} };
  }
  const list = el('ol', { class: 'checklist', role: 'list' });
  container.append(list);
  const rows = new Map();
  let lastState = null;
  const selfId = () => options.selfId?.() ?? null;

  for (const item of items) {
    const badge = el('span', { class: 'badge-slot' });
    const head = el('div', { class: 'item-head' },
      el('span', { class: 'item-num', text: item.number ?? '' }),
      el('span', { class: 'item-question', id: `q-${item.id}`, text: item.question ?? '' }),
      badge);
    const li = el('li', { class: 'item', 'data-item-id': item.id, 'data-result': 'unanswered', 'aria-labelledby': `q-${item.id}` }, head);
    if (item.requirement) li.append(el('p', { class: 'item-req', text: item.requirement }));
    const row = { li, badge, item, buttons: new Map(), current: null, pendingOps: 0, timer: null };
    // Photos, clips and stills of the item (filled by options.renderEvidence).
    row.evidence = el('div', { class: 'item-evidence', hidden: true });
    if (options.photoButton) {
      const pb = options.photoButton;
      row.photoBtn = el('button', {
        type: 'button', class: 'btn btn-small photo-btn', 'data-item-id': item.id,
        'aria-label': t(pb.label, { n: item.number ?? '' }),
        onclick: () => pb.onClick(item.id),
      }, el('span', { class: 'label', text: t(pb.text) }));
      const icon = el('span', { class: 'icon', 'aria-hidden': 'true' });
      // A fixed SVG from icons.js, never user data.
      icon.innerHTML = ICONS.camera;
      row.photoBtn.prepend(icon);
      head.append(row.photoBtn);
    }
    if (options.focusButton) {
      // "Now looking at this item": the item's chapter of the recording begins here.
      row.focusBtn = el('button', {
        type: 'button', class: 'btn btn-small focus-btn', 'data-item-id': item.id, 'aria-pressed': 'false',
        'aria-label': t('focus.label', { n: item.number ?? '' }),
        onclick: () => options.focusButton.onClick(item.id),
      }, el('span', { class: 'label', text: t('focus.button') }));
      const eye = el('span', { class: 'icon', 'aria-hidden': 'true' });
      // A fixed SVG, as the photo button's: an emoji needs a font many desktops lack.
      eye.innerHTML = ICONS.eye;
      row.focusBtn.prepend(eye);
      head.append(row.focusBtn);
    }
    li.append(row.evidence);
    row.comments = el('div', { class: 'item-comments-box' });

    if (editable) {
      const group = el('div', { class: 'result-buttons', role: 'group', 'aria-label': t('result.group', { n: item.number ?? '' }) });
      for (const r of RESULTS) {
        const b = el('button', {
          type: 'button', class: `result-btn result-${r.code}`, 'data-result': r.code, 'aria-pressed': 'false',
          onclick: () => {
            clearTimeout(row.timer);
            const result = r.code === 'unanswered' ? 'clear' : r.code;
            // A repeated click on the current result with unchanged text changes nothing.
            if (r.code === row.current && !differs(row)) return;
            send(row, result);
          },
        },
        el('span', { class: 'icon', 'aria-hidden': 'true', text: r.icon }),
        el('span', { class: 'label', text: t(`result.${r.code}`) }));
        row.buttons.set(r.code, b);
        group.append(b);
      }
      li.append(group);
      const cId = `c-${item.id}`;
      const vId = `v-${item.id}`;
      row.comment = el('textarea', { id: cId, class: 'item-comment', rows: '2', maxlength: '4000', placeholder: t('checklist.comment.placeholder') });
      row.violation = el('textarea', { id: vId, class: 'item-violation', rows: '2', maxlength: '4000', placeholder: t('checklist.violation.placeholder') });
      row.violationWrap = el('div', { class: 'field violation-field', hidden: true },
        el('label', { for: vId, text: t('checklist.violation') }), row.violation);
      row.saveState = el('span', { class: 'save-state', 'data-state': 'clean', role: 'status', 'aria-live': 'polite' });
      row.headState = el('span', { class: 'save-state save-state-head', 'data-state': 'clean', 'aria-hidden': 'true' });
      head.insertBefore(row.headState, badge);
      for (const box of [row.comment, row.violation]) {
        box.addEventListener('input', () => {
          drafts?.set(item.id, { comment: row.comment.value, violation: row.violation.value });
          clearTimeout(row.timer);
          row.timer = setTimeout(() => flush(row), SAVE_DEBOUNCE_MS);
          renderSaveState(row);
        });
        box.addEventListener('blur', () => flush(row));
      }
      const draft = drafts?.get(item.id);
      if (draft) {
        row.comment.value = draft.comment ?? '';
        row.violation.value = draft.violation ?? '';
        row.hasDraft = true;
      }
      row.details = el('details', { class: 'item-more' },
        el('summary', {}, t('checklist.notes'), ' ', row.saveState),
        el('div', { class: 'item-notes' },
          el('div', { class: 'field' }, el('label', { for: cId, text: t('checklist.comment') }), row.comment),
          row.violationWrap));
      if (draft && (draft.comment || draft.violation)) row.details.open = true;
      li.append(row.details);
      li.append(row.comments);
    } else {
      row.notes = el('div', { class: 'item-notes-view' });
      li.append(row.notes);
      li.append(row.comments);
      if (onComment) {
        const cId = `bc-${item.id}`;
        const box = el('textarea', { id: cId, class: 'biz-comment', rows: '2', maxlength: '4000', placeholder: t('checklist.comment.placeholder') });
        const err = el('p', { class: 'field-error', role: 'alert', hidden: true });
        const send = el('button', {
          type: 'button', class: 'btn btn-small biz-comment-send',
          onclick: () => {
            const text = box.value.trim();
            if (!text || row.commentOp) return;
            err.hidden = true;
            row.commentOp = onComment(item.id, text);
            row.commentText = text;
            send.disabled = true;
          },
        }, t('checklist.send'));
        box.addEventListener('input', () => {
          err.hidden = true;
          if (box.value) drafts?.set(item.id, { text: box.value }); else drafts?.clear(item.id);
        });
        const draft = drafts?.get(item.id);
        if (draft?.text) box.value = draft.text;
        row.commentBox = box;
        row.commentSend = send;
        row.commentErr = err;
        row.commentWrap = el('details', { class: 'item-add-comment', open: draft?.text ? true : null },
          el('summary', { text: t('checklist.comment.add') }),
          el('label', { for: cId, class: 'sr-only', text: t('checklist.comment') }), box, err, send);
        li.append(row.commentWrap);
      }
    }
    rows.set(item.id, row);
    list.append(li);
  }

  function serverNotes(row) {
    const data = lastState?.items?.[row.item.id] || {};
    return { comment: data.comment ?? '', violation: data.violation ?? '' };
  }

  function readNotes(row) {
    const comment = row.comment?.value.trim() || undefined;
    const violation = row.violation?.value.trim() || undefined;
    return { comment, violation };
  }

  /** Whether the boxes say something the server does not have. */
  function differs(row) {
    if (!row.comment) return false;
    const s = serverNotes(row);
    const n = readNotes(row);
    const violationCounts = row.current === 'violation';
    return (n.comment ?? '') !== s.comment || (violationCounts && (n.violation ?? '') !== s.violation);
  }

  function live() {
    return lastState?.lifecycle?.status === 'live';
  }

  function send(row, result) {
    const opId = onSetResult?.(row.item.id, result, readNotes(row));
    if (opId) row.pendingOps += 1;
    renderSaveState(row);
  }

  /** Save the item's typed text now, if there is something to save and a result to save it with. */
  function flush(row) {
    clearTimeout(row.timer);
    row.timer = null;
    if (!row.comment || !live()) { renderSaveState(row); return; }
    if (row.current && row.current !== 'unanswered' && differs(row) && row.pendingOps === 0) {
      send(row, row.current);
    } else if (row.pendingOps > 0 && differs(row)) {
      // A save is on its way; the text typed since goes after its acknowledgement.
      row.resave = true;
    }
    renderSaveState(row);
  }

  function saveStateOf(row) {
    if (!row.comment) return 'clean';
    const has = !!(row.comment.value.trim() || row.violation.value.trim());
    if (row.pendingOps > 0 || row.timer) return options.connected && !options.connected() ? 'offline' : 'saving';
    if (differs(row)) {
      if (!live()) return lastState?.lifecycle?.status === 'not_started' ? 'not_live' : 'lost';
      return row.current && row.current !== 'unanswered' ? 'unsaved' : 'need_result';
    }
    return has ? 'saved' : 'clean';
  }

  function renderSaveState(row) {
    if (!row.saveState) return;
    const s = saveStateOf(row);
    const changed = row.saveState.dataset.state !== s;
    for (const box of [row.saveState, row.headState]) {
      box.dataset.state = s;
      box.textContent = s === 'clean' ? '' : t(`save.${s}`);
    }
    row.li.dataset.save = s;
    if (s === 'saved' || s === 'clean') { drafts?.clear(row.item.id); row.hasDraft = false; }
    if (changed) options.onSaveState?.();
  }

  function update(state) {
    lastState = state;
    let done = 0;
    const status = state.lifecycle?.status;
    const over = status === 'finished' || status === 'cancelled';
    for (const row of rows.values()) {
      const data = state.items?.[row.item.id] || {};
      const result = resultOf(state, row.item.id);
      if (result !== 'unanswered') done += 1;
      const changed = row.current !== result || row.seq !== data.result_seq;
      row.li.dataset.result = result;
      row.badge.replaceChildren(resultBadge(result));
      if (editable) {
        for (const [code, b] of row.buttons) {
          b.setAttribute('aria-pressed', String(code === result));
          // Results are given only while the inspection is live.
          b.disabled = status !== 'live';
        }
        row.comment.readOnly = over;
        row.violation.readOnly = over;
        row.violationWrap.hidden = !(result === 'violation' || row.violation.value);
        // A violation needs its description: open the notes when one is set.
        if (changed && result === 'violation') row.details.open = true;
        // The server's text replaces the boxes only where nothing local is pending: never
        // while typing, never over a draft the server does not have yet.
        const local = document.activeElement === row.comment || document.activeElement === row.violation
          || row.pendingOps > 0 || row.timer || (row.hasDraft && !over);
        if (changed && !local) {
          row.comment.value = data.comment ?? '';
          row.violation.value = data.violation ?? '';
        }
        if (over && row.hasDraft) {
          // Nothing can be saved any more: the boxes show what the record says.
          row.comment.value = data.comment ?? '';
          row.violation.value = data.violation ?? '';
          drafts?.clear(row.item.id);
          row.hasDraft = false;
        }
        row.current = result;
        // A draft restored after a reload goes to the server by itself once it can.
        if (row.hasDraft && status === 'live' && !row.timer && row.pendingOps === 0 && result !== 'unanswered' && differs(row)) {
          row.timer = setTimeout(() => flush(row), SAVE_DEBOUNCE_MS);
        }
        renderSaveState(row);
      } else {
        const parts = [];
        const by = data.result_by ? authorName(state, data.result_by, selfId()) : null;
        if (data.violation) parts.push(el('p', { class: 'note violation-note' }, el('strong', { text: `${t('checklist.violation')}: ` }), data.violation));
        if (data.comment) parts.push(el('p', { class: 'note' }, el('strong', { text: `${t('checklist.comment')}: ` }), data.comment));
        if (by && (data.violation || data.comment)) parts.push(el('p', { class: 'note muted', text: t('checklist.by', { who: by }) }));
        row.notes.replaceChildren(...parts);
        if (row.commentBox) {
          const canComment = status === 'live';
          row.commentBox.disabled = !canComment;
          row.commentSend.disabled = !canComment || !!row.commentOp;
          row.commentWrap.hidden = over;
        }
      }
      row.comments.replaceChildren(...[commentList(state, data, selfId())].filter(Boolean));
      row.li.classList.toggle('photo-requested', !!data.photo_request);
      options.renderEvidence?.(row.evidence, data.evidence || [], row.item, data);
      if (row.photoBtn) row.photoBtn.disabled = !!options.photoButton.disabled?.(state, data);
      if (row.focusBtn) {
        const focused = options.focusButton.current?.() === row.item.id;
        row.focusBtn.disabled = status !== 'live';
        row.focusBtn.setAttribute('aria-pressed', String(focused));
        row.li.classList.toggle('focused', focused && status === 'live');
      }
      row.current = result;
      row.seq = data.result_seq;
    }
    progress.textContent = t('checklist.progress', { done, total: rows.size });
  }

  /** A save of an item was acknowledged (on) or refused (off with an error). */
  function pending(itemId, on) {
    const row = rows.get(itemId);
    if (!row) return;
    if (on) { row.li.classList.add('pending'); return; }
    row.pendingOps = Math.max(0, row.pendingOps - 1);
    row.li.classList.toggle('pending', row.pendingOps > 0);
    if (row.pendingOps === 0 && row.resave) {
      row.resave = false;
      flush(row);
    }
    renderSaveState(row);
  }

  /** The business's comment was acknowledged (clear the box) or refused (keep it, say why). */
  function commentDone(opId, error) {
    for (const row of rows.values()) {
      if (row.commentOp !== opId) continue;
      row.commentOp = null;
      row.commentSend.disabled = lastState?.lifecycle?.status !== 'live';
      if (error) {
        row.commentErr.textContent = errorText(error);
        row.commentErr.hidden = false;
        row.commentWrap.open = true;
      } else {
        if (row.commentBox.value.trim() === row.commentText) row.commentBox.value = '';
        drafts?.clear(row.item.id);
      }
    }
  }

  /** Save every item's typed text now (before finishing or leaving). */
  function flushAll() {
    for (const row of rows.values()) if (row.comment) flush(row);
  }

  /** Items whose typed text is not saved (numbers). */
  function unsaved() {
    return [...rows.values()].filter((r) => !['clean', 'saved'].includes(saveStateOf(r))).map((r) => r.item.number ?? r.item.id);
  }

  /** How many items have no result. */
  function unanswered() {
    return [...rows.values()].filter((r) => resultOf(lastState || {}, r.item.id) === 'unanswered').length;
  }

  return { update, pending, flushAll, unsaved, unanswered, commentDone, rerenderSaveStates: () => rows.forEach(renderSaveState) };
}

export { el };
