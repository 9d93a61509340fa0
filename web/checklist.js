// The checklist, rendered the same way in the inspector console (editable, one click per
// result) and on the business page (a live mirror). Every result has a colour AND an icon
// and a word, so colour is never the only signal.

import { t } from './i18n.js';
import { resultOf } from './state.js';
import { ICONS } from './icons.js';

/** Result codes in display order, with their icon. */
export const RESULTS = [
  { code: 'compliant', icon: '✓' },
  { code: 'violation', icon: '✕' },
  { code: 'not_applicable', icon: '–' },
  { code: 'unanswered', icon: '?' },
];

const ICON = Object.fromEntries(RESULTS.map((r) => [r.code, r.icon]));

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

/**
 * Render a checklist into container and return a controller with update(state).
 * items: [{id, number, question, requirement?}]
 * options.editable: show result buttons and the comment/violation boxes.
 * options.onSetResult(itemId, result, {comment, violation}): called on a click or save.
 * options.onComment(itemId, text): when given, a comment box for non-editors.
 * options.photoButton {text, label, onClick(itemId), disabled(state, itemData)}: a photo button.
 * options.renderEvidence(box, entries, item, itemData): fills the item's evidence box.
 */
export function renderChecklist(container, items, options = {}) {
  const { editable = false, onSetResult, onComment } = options;
  container.replaceChildren();
  const progress = el('p', { class: 'checklist-progress', 'aria-live': 'polite' });
  container.append(progress);
  if (!items || items.length === 0) {
    container.append(el('p', { class: 'muted', text: t('checklist.empty') }));
    return { update() {}, pending() {} };
  }
  const list = el('ol', { class: 'checklist', role: 'list' });
  container.append(list);
  const rows = new Map();

  for (const item of items) {
    const badge = el('span', { class: 'badge-slot' });
    const head = el('div', { class: 'item-head' },
      el('span', { class: 'item-num', text: item.number ?? '' }),
      el('span', { class: 'item-question', id: `q-${item.id}`, text: item.question ?? '' }),
      badge);
    const li = el('li', { class: 'item', 'data-item-id': item.id, 'data-result': 'unanswered', 'aria-labelledby': `q-${item.id}` }, head);
    if (item.requirement) li.append(el('p', { class: 'item-req', text: item.requirement }));
    const row = { li, badge, item, buttons: new Map(), current: null };
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
    li.append(row.evidence);

    if (editable) {
      const group = el('div', { class: 'result-buttons', role: 'group', 'aria-label': t('result.group', { n: item.number ?? '' }) });
      for (const r of RESULTS) {
        const b = el('button', {
          type: 'button', class: `result-btn result-${r.code}`, 'data-result': r.code, 'aria-pressed': 'false',
          onclick: () => {
            const notes = readNotes(row);
            onSetResult?.(item.id, r.code === 'unanswered' ? 'clear' : r.code, notes);
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
      const save = el('button', {
        type: 'button', class: 'btn btn-small',
        onclick: () => {
          const cur = row.current && row.current !== 'unanswered' ? row.current : null;
          if (cur) onSetResult?.(item.id, cur, readNotes(row));
        },
      }, t('checklist.save'));
      row.saveBtn = save;
      row.details = el('details', { class: 'item-more' },
        el('summary', { text: t('checklist.notes') }),
        el('div', { class: 'item-notes' },
          el('div', { class: 'field' }, el('label', { for: cId, text: t('checklist.comment') }), row.comment),
          row.violationWrap,
          save));
      li.append(row.details);
    } else {
      row.notes = el('div', { class: 'item-notes-view' });
      li.append(row.notes);
      if (onComment) {
        const cId = `bc-${item.id}`;
        const box = el('textarea', { id: cId, rows: '2', maxlength: '4000', placeholder: t('checklist.comment.placeholder') });
        const send = el('button', {
          type: 'button', class: 'btn btn-small',
          onclick: () => {
            const text = box.value.trim();
            if (text) { onComment(item.id, text); box.value = ''; }
          },
        }, t('checklist.save'));
        li.append(el('details', { class: 'item-add-comment' },
          el('summary', { text: t('checklist.comment') }),
          el('label', { for: cId, class: 'sr-only', text: t('checklist.comment') }), box, send));
      }
    }
    rows.set(item.id, row);
    list.append(li);
  }

  function readNotes(row) {
    const comment = row.comment?.value.trim() || undefined;
    const violation = row.violation?.value.trim() || undefined;
    return { comment, violation };
  }

  function update(state) {
    let done = 0;
    for (const row of rows.values()) {
      const data = state.items?.[row.item.id] || {};
      const result = resultOf(state, row.item.id);
      if (result !== 'unanswered') done += 1;
      const changed = row.current !== result || row.seq !== data.result_seq;
      row.li.dataset.result = result;
      row.badge.replaceChildren(resultBadge(result));
      if (editable) {
        for (const [code, b] of row.buttons) b.setAttribute('aria-pressed', String(code === result));
        row.violationWrap.hidden = !(result === 'violation' || row.violation.value);
        // A violation needs its description: open the notes when one is set.
        if (changed && result === 'violation') row.details.open = true;
        // Only overwrite the boxes when the server state changed, not while typing.
        if (changed && document.activeElement !== row.comment) row.comment.value = data.comment ?? '';
        if (changed && document.activeElement !== row.violation) row.violation.value = data.violation ?? '';
        row.saveBtn.disabled = result === 'unanswered';
      } else {
        const parts = [];
        if (data.violation) parts.push(el('p', { class: 'note violation-note' }, el('strong', { text: `${t('checklist.violation')}: ` }), data.violation));
        if (data.comment) parts.push(el('p', { class: 'note' }, el('strong', { text: `${t('checklist.comment')}: ` }), data.comment));
        for (const c of data.comments || []) parts.push(el('p', { class: 'note' }, el('strong', { text: `${t('checklist.comment')}: ` }), c.text));
        row.notes.replaceChildren(...parts);
      }
      row.li.classList.toggle('photo-requested', !!data.photo_request);
      options.renderEvidence?.(row.evidence, data.evidence || [], row.item, data);
      if (row.photoBtn) row.photoBtn.disabled = !!options.photoButton.disabled?.(state, data);
      row.current = result;
      row.seq = data.result_seq;
    }
    progress.textContent = t('checklist.progress', { done, total: rows.size });
  }

  /** Mark an item as waiting for the server's acknowledgement. */
  function pending(itemId, on) {
    rows.get(itemId)?.li.classList.toggle('pending', on);
  }

  return { update, pending };
}

export { el };
