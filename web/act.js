// The act panel, shared by the console and the phone page: form the act, open the PDF, sign
// with a non-extractable WebCrypto ECDSA P-256 key kept in IndexedDB, or refuse with a reason;
// download the evidence bundle. The server prepares what to sign and verifies everything.

import { t, formatTime } from './i18n.js';
import * as api from './api.js';
import { errorText } from './errors.js';

const DB = 'inspector-signing';
const STORE = 'keys';

function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function idbGet(key) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const req = db.transaction(STORE).objectStore(STORE).get(key);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function idbPut(key, value) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(value, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
}

const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const ECDSA = { name: 'ECDSA', hash: 'SHA-256' };

/**
 * This device's signing key for `slot` (the account, or the business's inspection) and the
 * certificate the server's CA issued for it. Created and registered on first use: the private
 * key is non-extractable and never leaves the browser.
 */
export async function signingKey(slot, inspectionId) {
  const have = await idbGet(slot);
  if (have?.certificateId) return have;
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
  const { challenge } = await api.post('/api/signing/challenge', {});
  const proof = await crypto.subtle.sign(ECDSA, pair.privateKey, new TextEncoder().encode(challenge));
  const body = { public_key: b64(spki), challenge, proof: b64(proof) };
  if (inspectionId) body.inspection_id = inspectionId;
  const cert = await api.post('/api/signing/certificates', body);
  const entry = { privateKey: pair.privateKey, publicKey: pair.publicKey, certificateId: cert.id, fingerprint: cert.fingerprint };
  await idbPut(slot, entry);
  return entry;
}

/** Signs the act of `inspectionId` with this device's key. */
export async function signAct(inspectionId, slot, keyInspection) {
  const key = await signingKey(slot, keyInspection);
  const base = `/api/inspections/${inspectionId}/act`;
  const tbs = await api.post(`${base}/signature/begin`, { certificate_id: key.certificateId });
  const sig = await crypto.subtle.sign(ECDSA, key.privateKey, unb64(tbs.to_be_signed));
  return api.post(`${base}/signature`, {
    certificate_id: key.certificateId, to_be_signed: tbs.to_be_signed, signature: b64(sig),
  });
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== ''));
  return e;
}

/** The message for an error answer: the one table of error words (web/errors.js). */
export function actError(err) {
  return errorText(err);
}

/**
 * Renders the act panel of a finished inspection into `box`. `slot` names this device's key
 * ('staff' for officials, 'business:<id>' on the phone); `keyInspection` is sent with the
 * business's key registration.
 */
export async function renderActPanel(box, inspectionId, { slot, keyInspection } = {}) {
  const base = `/api/inspections/${inspectionId}`;
  let view;
  try {
    view = await api.get(`${base}/act`);
  } catch (e) {
    // A failed read must not leave a dead panel: say why, offer a retry, and retry by itself
    // a few seconds later while the panel is still on the page.
    const again = () => renderActPanel(box, inspectionId, { slot, keyInspection });
    const retry = el('button', { type: 'button', class: 'btn', id: 'act-retry', text: t('common.retry') });
    retry.addEventListener('click', again);
    box.replaceChildren(el('p', { class: 'banner banner-danger', id: 'act-load-error', role: 'alert', text: actError(e) }), retry);
    box.hidden = false;
    const timer = setTimeout(() => { if (box.isConnected && box.contains(retry)) again(); }, 3000);
    retry.addEventListener('click', () => clearTimeout(timer));
    return;
  }
  const rerender = () => renderActPanel(box, inspectionId, { slot, keyInspection });
  const status = el('p', { class: 'muted', id: 'act-status', role: 'status', 'aria-live': 'polite' });
  const error = el('p', { class: 'banner banner-danger', id: 'act-error', role: 'alert', hidden: true });
  const fail = (e) => { error.textContent = actError(e); error.hidden = false; };
  const busy = (btn, on) => { btn.disabled = on; btn.setAttribute('aria-busy', on ? 'true' : 'false'); };
  const parts = [el('h2', { text: t('act.title') })];
  const act = view.act;
  if (!act) {
    parts.push(el('p', { text: t('act.none') }));
    if (view.can_form) {
      const form = el('button', { type: 'button', class: 'btn btn-primary', id: 'act-form', text: t('act.form') });
      form.addEventListener('click', async () => {
        busy(form, true);
        error.hidden = true;
        status.textContent = t('act.forming');
        try { await api.post(`${base}/act`, {}); await rerender(); } catch (e) { busy(form, false); status.textContent = ''; fail(e); }
      });
      parts.push(form);
    }
  } else {
    parts.push(el('p', {},
      el('a', { class: 'btn', id: 'act-pdf', href: `${base}/act.pdf`, target: '_blank', rel: 'noopener', text: t('act.open') }), ' ',
      el('a', { class: 'btn', id: 'act-bundle', href: `${base}/bundle.zip`, download: true, text: t('act.bundle') })));
    parts.push(el('p', { class: 'muted mono', text: `SHA-256: ${act.sha256}` }));
    const lines = el('ul', { class: 'act-signatures', id: 'act-signatures' });
    for (const s of act.signatures) {
      lines.append(el('li', { 'data-role': s.role, 'data-state': 'signed', text: t('act.signed', { role: t(`act.role.${s.role}`), name: s.signer, time: formatTime(s.ts / 1000) }) }));
    }
    for (const r of act.refusals) {
      lines.append(el('li', { 'data-role': r.role, 'data-state': 'refused', text: t('act.refused', { role: t(`act.role.${r.role}`), name: r.signer, reason: r.reason }) }));
    }
    parts.push(lines);
    if (view.can_sign) {
      const sign = el('button', { type: 'button', class: 'btn btn-primary', id: 'act-sign', text: t('act.sign') });
      sign.addEventListener('click', async () => {
        busy(sign, true);
        error.hidden = true;
        status.textContent = t('act.signing');
        try { await signAct(inspectionId, slot, keyInspection); await rerender(); } catch (e) { busy(sign, false); status.textContent = ''; fail(e); }
      });
      const reason = el('textarea', { id: 'act-refuse-reason', rows: '2', maxlength: '4000', 'aria-label': t('act.refuse.reason') });
      reason.placeholder = t('act.refuse.reason');
      const refuse = el('button', { type: 'button', class: 'btn btn-danger', id: 'act-refuse', text: t('act.refuse') });
      refuse.addEventListener('click', async () => {
        if (!reason.value.trim()) { reason.focus(); fail({ code: 'reason_required' }); return; }
        busy(refuse, true);
        error.hidden = true;
        try { await api.post(`${base}/act/refusal`, { reason: reason.value }); await rerender(); } catch (e) { busy(refuse, false); fail(e); }
      });
      parts.push(el('div', { class: 'act-actions' }, sign), el('details', {}, el('summary', { text: t('act.refuse.open') }), reason, refuse));
    }
  }
  parts.push(status, error);
  box.replaceChildren(...parts);
  box.hidden = false;
}
