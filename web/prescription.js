// A prescription as both faces show it (the console's check and the phone's "My
// prescriptions"): items, due dates, proofs with their marks, decisions, the outcome. Reads
// only the shapes the server defines; words come from i18n.js (codes, never server prose).

import { t, formatTime } from './i18n.js';
import { el } from './checklist.js';
import { signalText } from './signals.js';

/** µs since the epoch → ISO time. */
export const usIso = (us) => (Number.isFinite(us) ? new Date(us / 1000).toISOString() : null);
const day = (us) => formatTime(usIso(us), { dateStyle: 'medium' });

/** A status pill of a prescription or of one item. */
export function prescPill(kind, status) {
  return el('span', { class: `status presc-${status}`, 'data-status': status, text: t(`presc.${kind}.${status}`) });
}

/** The outcome banner: fulfilled (no repeat visit), overdue, or nothing. */
export function outcome(box, p) {
  box.hidden = true;
  box.className = 'banner';
  if (p.no_repeat_visit) {
    box.classList.add('banner-ok');
    box.textContent = t('presc.fulfilled_banner');
    box.hidden = false;
  } else if (p.status === 'overdue') {
    box.classList.add('banner-danger');
    box.textContent = t('presc.overdue_banner');
    box.hidden = false;
  }
}

/** One proof: its thumbnail (the original scaled), time, geotag, and the server's marks. */
export function proofTile(p, prescriptionId) {
  const url = `/api/prescriptions/${prescriptionId}/proofs/${p.id}`;
  const media = p.kind === 'video'
    ? el('video', { src: url, controls: '', preload: 'metadata', class: 'proof-media' })
    : el('img', { src: url, alt: t('presc.proof_alt'), class: 'proof-media', loading: 'lazy' });
  const flags = (p.flags || []).map((f) => el('li', { class: `proof-flag flag-${f}`, 'data-flag': f, text: t(`presc.flag.${f}`) }));
  const reasons = (p.verdict?.signals || []).map((s) => el('li', { class: 'proof-signal', 'data-signal': s.name, text: signalText(s) }));
  const geo = p.location
    ? `${p.location.lat.toFixed(5)}, ${p.location.lon.toFixed(5)}${Number.isFinite(p.distance_m) ? ` · ${t('presc.distance', { m: Math.round(p.distance_m) })}` : ''}`
    : t('presc.flag.no_location');
  return el('figure', { class: `proof${flags.length ? ' proof-flagged' : ''}`, 'data-proof-id': p.id, 'data-flags': (p.flags || []).join(' ') },
    media,
    el('figcaption', {},
      el('div', { text: formatTime(usIso(p.received_at)) }),
      el('div', { class: 'muted', text: geo }),
      el('code', { class: 'hash', text: p.sha256.slice(0, 16) }),
      flags.length ? el('ul', { class: 'proof-flags' }, ...flags) : null,
      reasons.length ? el('ul', { class: 'proof-signals' }, ...reasons) : null));
}

/** One item: requirement, violation, due date, status, proofs, decisions. `actions(item)` adds buttons. */
export function itemCard(item, prescriptionId, actions) {
  const last = item.decisions[item.decisions.length - 1];
  return el('li', { class: `presc-item item-${item.status}${item.overdue ? ' overdue' : ''}`, 'data-item': item.id, 'data-status': item.status },
    el('div', { class: 'presc-item-head' },
      el('strong', { text: `${item.id}. ${item.requirement}` }),
      prescPill('item', item.status),
      item.overdue ? el('span', { class: 'status presc-overdue', text: t('presc.item_overdue') }) : null),
    el('p', { class: 'violation', text: item.description }),
    el('p', { class: 'muted', text: `${item.legal_basis} · ${t('presc.due', { date: day(item.current_due_at) })}` }),
    last && last.decision === 'return'
      ? el('p', { class: 'returned-comment', role: 'note', text: t('presc.returned_with', { comment: last.comment }) })
      : null,
    item.proofs.length ? el('div', { class: 'proofs' }, ...item.proofs.map((p) => proofTile(p, prescriptionId))) : null,
    item.decisions.length
      ? el('ul', { class: 'decisions' }, ...item.decisions.map((d) => el('li', {
        text: `${formatTime(usIso(d.ts))}: ${t(`presc.decision.${d.decision}`)}${d.comment ? ` — «${d.comment}»` : ''}${d.due_at ? ` (${t('presc.due', { date: day(d.due_at) })})` : ''}`,
      })))
      : null,
    actions ? actions(item) : null);
}

/** The list line of a prescription. */
export function summaryLine(p) {
  const bits = [t('presc.items_n', { n: p.items.length })];
  if (p.next_due_at) bits.push(t('presc.due', { date: day(p.next_due_at) }));
  if (p.awaiting_check) bits.push(t('presc.awaiting_n', { n: p.awaiting_check }));
  if (p.flagged_proofs) bits.push(t('presc.flagged_n', { n: p.flagged_proofs }));
  return bits.join(' · ');
}
