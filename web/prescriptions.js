// The console's prescriptions: issuing one from a finished inspection's violations (with the
// business's one-time sign-in link), the list with its filters (open, due soon, overdue,
// returned, to check, fulfilled), and the remote check of each proof (accept, or return with
// a comment and a new due date). Far or spoofed proofs carry the server's marks and reasons.

import { t, formatTime } from './i18n.js';
import * as api from './api.js';
import { el } from './checklist.js';
import { errorText, showFieldErrors } from './errors.js';
import { itemCard, outcome, prescPill, summaryLine, usIso } from './prescription.js';

const FILTERS = ['open', 'due_soon', 'overdue', 'returned', 'awaiting', 'fulfilled', ''];
const $ = (id) => document.getElementById(id);

function errorBox(box, e) {
  box.textContent = errorText(e);
  box.hidden = false;
}

/** The list view, with `filter` chosen. */
export async function openPrescriptions(filter) {
  const bar = $('presc-filters');
  bar.replaceChildren(...FILTERS.map((f) => el('a', {
    class: `btn btn-small${f === filter ? ' btn-primary' : ''}`, href: `#/prescriptions/${f || 'all'}`, 'data-filter': f || 'all',
    'aria-current': f === filter ? 'page' : null, text: t(`presc.filter.${f || 'all'}`),
  })));
  const body = $('presc-body');
  body.replaceChildren();
  $('presc-error').hidden = true;
  let data;
  try {
    data = await api.get(`/api/prescriptions${filter ? `?filter=${filter}` : ''}`);
  } catch (e) { errorBox($('presc-error'), e); return; }
  body.replaceChildren(...data.prescriptions.map((p) => el('tr', { 'data-prescription-id': p.id, class: p.flagged_proofs ? 'flagged' : null },
    el('td', {}, el('a', { href: `#/prescription/${p.id}`, text: p.inspection_title })),
    el('td', { class: 'wrap' }, p.business.name, el('div', { class: 'muted', text: `ИНН ${p.business.inn}` })),
    el('td', {}, prescPill('status', p.status)),
    el('td', { class: 'wrap', text: summaryLine(p) }))));
  $('presc-empty').hidden = data.prescriptions.length > 0;
}

/** One prescription, with accept / return on items whose proof waits. */
export async function openPrescription(id) {
  $('presc-view-error').hidden = true;
  let p;
  try { p = await api.get(`/api/prescriptions/${id}`); } catch (e) { errorBox($('presc-view-error'), e); return; }
  $('presc-view-title').textContent = `${p.inspection_title} — ${p.business.name}`;
  $('presc-view-meta').replaceChildren(prescPill('status', p.status), ' ', summaryLine(p), ' · ',
    t('presc.issued_at', { time: formatTime(usIso(p.issued_at)) }));
  outcome($('presc-view-outcome'), p);
  $('presc-view-pdf').href = `/api/prescriptions/${id}/document.pdf`;
  $('presc-view-log').href = `/api/prescriptions/${id}/log.jsonl`;
  $('presc-view-items').replaceChildren(...p.items.map((item) => itemCard(item, id, (it) => decisionControls(p, it))));
}

function decisionControls(p, item) {
  if (!p.can_decide || item.status !== 'submitted') return null;
  const box = el('div', { class: 'decide' });
  const err = el('p', { class: 'form-error', role: 'alert', hidden: true });
  const decide = async (body) => {
    err.hidden = true;
    try {
      await api.post(`/api/prescriptions/${p.id}/items/${item.id}/decision`, body);
      openPrescription(p.id);
    } catch (e) {
      if (e.fields?.length) showFieldErrors(box, { comment: `ret-comment-${item.id}`, due_at: `ret-due-${item.id}` }, e, err);
      else errorBox(err, e);
    }
  };
  const form = el('form', { class: 'return-form', hidden: true, novalidate: true },
    el('div', { class: 'field' }, el('label', { for: `ret-comment-${item.id}`, text: t('presc.return_comment') }),
      el('textarea', { id: `ret-comment-${item.id}`, rows: '2', maxlength: '2000' })),
    el('div', { class: 'field' }, el('label', { for: `ret-due-${item.id}`, text: t('presc.return_due') }),
      el('input', { id: `ret-due-${item.id}`, type: 'date' })),
    el('button', { type: 'submit', class: 'btn btn-danger return-send', text: t('presc.return_send') }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { decision: 'return', comment: $(`ret-comment-${item.id}`).value };
    const due = $(`ret-due-${item.id}`).value;
    if (due) body.due_at = new Date(`${due}T23:59:00`).toISOString();
    decide(body);
  });
  box.append(
    el('button', { type: 'button', class: 'btn btn-primary accept-btn', text: t('presc.accept'), onclick: () => decide({ decision: 'accept' }) }),
    el('button', { type: 'button', class: 'btn return-btn', text: t('presc.return'), onclick: () => { form.hidden = false; $(`ret-comment-${item.id}`).focus(); } }),
    form, err);
  return box;
}

/**
 * The room's prescription panel of a finished inspection: the issue form over its violations
 * (each with a due date), or the link to the prescription; and the business's sign-in link.
 */
export async function renderIssuePanel(box, insp, state, canManage) {
  box.hidden = false;
  const err = el('p', { class: 'form-error', role: 'alert', hidden: true });
  let existing = null;
  try {
    existing = (await api.get(`/api/prescriptions?inspection_id=${insp.id}`)).prescriptions[0] || null;
  } catch (e) { errorBox(err, e); }
  const parts = [el('h2', { text: t('presc.issue.title') })];
  if (existing) {
    parts.push(el('p', {}, prescPill('status', existing.status), ' ', summaryLine(existing)),
      el('a', { class: 'btn btn-primary', id: 'presc-open', href: `#/prescription/${existing.id}`, text: t('presc.open') }));
  } else if (canManage) {
    const violations = (insp.items || []).filter((i) => state?.items?.[i.id]?.result === 'violation');
    if (!violations.length) {
      parts.push(el('p', { class: 'muted', text: t('presc.issue.none') }));
    } else {
      const due = new Date(Date.now() + 30 * 864e5).toISOString().slice(0, 10);
      const form = el('form', { id: 'presc-issue-form', novalidate: true },
        el('p', { class: 'muted', text: t('presc.issue.text') }),
        ...violations.map((v, n) => el('div', { class: 'field issue-row', 'data-item-id': v.id },
          el('label', {}, el('input', { type: 'checkbox', checked: true, class: 'issue-pick', value: v.id }),
            ` ${v.number}. ${state.items[v.id].violation || v.question}`),
          el('input', { type: 'date', class: 'issue-due', id: `issue-due-${n}`, value: due, 'aria-label': t('presc.due', { date: '' }) }))),
        el('button', { type: 'submit', class: 'btn btn-primary', id: 'presc-issue', text: t('presc.issue.submit') }));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const rows = [...form.querySelectorAll('.issue-row')].filter((r) => r.querySelector('.issue-pick').checked);
        const items = rows.map((r) => ({ item_id: r.dataset.itemId, due_at: new Date(`${r.querySelector('.issue-due').value}T23:59:00`).toISOString() }));
        try {
          const p = await api.post(`/api/inspections/${insp.id}/prescription`, { items });
          location.hash = `#/prescription/${p.id}`;
        } catch (e) {
          const ids = {};
          rows.forEach((r, n) => { ids[`items.${n}.due_at`] = r.querySelector('.issue-due').id; });
          showFieldErrors(form, ids, e, err);
        }
      });
      parts.push(form);
    }
  }
  if (canManage) {
    const out = el('div', { class: 'link-out', id: 'presc-link-out', hidden: true });
    parts.push(el('button', {
      type: 'button', class: 'btn', id: 'presc-link', text: t('presc.link'),
      onclick: async () => {
        try {
          const l = await api.post(`/api/inspections/${insp.id}/business-links`, { label: insp.business?.name });
          out.replaceChildren(el('p', { text: t('presc.link.text') }),
            el('input', { readonly: true, class: 'link-url', id: 'presc-link-url', value: l.url, onfocus: (e) => e.target.select() }),
            el('p', { class: 'link-code', text: t('presc.link.code', { code: l.code }) }));
          out.hidden = false;
        } catch (e) { errorBox(err, e); }
      },
    }), out);
  }
  parts.push(err);
  box.replaceChildren(...parts);
}
