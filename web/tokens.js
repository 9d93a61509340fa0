// The administrator's page for API tokens (/tokens/): create one (its secret is shown once,
// in the create answer), list them with their last use, revoke one, read its calls.

import { t, applyI18n, bindLangSwitch, formatTime } from './i18n.js';
import * as api from './api.js';
import { errorText, showFieldErrors, clearFieldErrors } from './errors.js';
import { el } from './checklist.js';

const $ = (id) => document.getElementById(id);
const FIELDS = { name: 'token-name', scopes: 'token-scopes', expires_at: 'token-expires', control_body_id: 'token-body' };
let bodies = [];

function state(tk) {
  if (tk.revoked_at) return 'revoked';
  return Date.parse(tk.expires_at) <= Date.now() ? 'expired' : 'active';
}

async function showCalls(tk) {
  const data = await api.get(`/api/tokens/${tk.id}/calls`);
  $('calls-title').textContent = t('tokens.calls.title', { name: tk.name });
  $('calls-body').replaceChildren(...data.calls.map((c) => el('tr', { 'data-status': String(c.status) },
    el('td', { text: formatTime(c.at) }), el('td', { text: c.method }),
    el('td', { class: 'wrap', text: c.path }), el('td', { text: String(c.status) }))));
  $('calls-empty').hidden = data.calls.length > 0;
  $('calls-panel').hidden = false;
}

function row(tk) {
  const st = state(tk);
  const revoke = el('button', { type: 'button', class: 'btn btn-small', text: t('tokens.revoke') });
  revoke.hidden = st === 'revoked';
  revoke.addEventListener('click', async () => {
    if (!window.confirm(t('tokens.revoke.confirm', { name: tk.name }))) return;
    try { await api.post(`/api/tokens/${tk.id}/revoke`, {}); } catch (e) { showError(e); }
    list();
  });
  const calls = el('button', { type: 'button', class: 'btn btn-small', text: t('tokens.calls') });
  calls.addEventListener('click', () => showCalls(tk).catch(showError));
  return el('tr', { 'data-token-id': tk.id, 'data-state': st },
    el('td', { class: 'wrap', text: tk.name }),
    el('td', { class: 'wrap', text: tk.scopes.join(' ') }),
    el('td', { text: formatTime(tk.expires_at) }),
    el('td', { text: tk.last_used_at ? formatTime(tk.last_used_at) : t('tokens.never') }),
    el('td', { text: t(`tokens.state.${st}`) }),
    el('td', {}, calls, ' ', revoke));
}

function showError(e) {
  $('tokens-error').textContent = e.code === 'unauthenticated' ? t('tokens.login') : errorText(e);
  $('tokens-error').hidden = false;
}

async function list() {
  const data = await api.get('/api/tokens');
  $('tokens-body').replaceChildren(...data.tokens.map(row));
  $('tokens-empty').hidden = data.tokens.length > 0;
  $('tokens-panel').hidden = false;
}

function fillBodies() {
  const sel = $('token-body');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '', text: t('tokens.body.none') }),
    ...bodies.map((b) => el('option', { value: b.id, text: b.name })));
  sel.value = keep;
}

$('token-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = $('token-form');
  clearFieldErrors(form);
  $('token-form-error').hidden = true;
  $('token-secret-box').hidden = true;
  const day = $('token-expires').value;
  const body = {
    name: $('token-name').value.trim(),
    scopes: [...form.querySelectorAll('input[name=scope]:checked')].map((i) => i.value),
    // The end of the chosen day, in the administrator's zone.
    expires_at: day ? new Date(`${day}T23:59:59`).toISOString() : null,
    control_body_id: $('token-body').value || null,
  };
  try {
    const made = await api.post('/api/tokens', body);
    $('token-secret').value = made.secret;
    $('token-secret-box').hidden = false;
    $('token-secret').select();
    $('token-name').value = '';
    list();
  } catch (e) {
    showFieldErrors(form, FIELDS, e, $('token-form-error'));
  }
});

async function load() {
  try {
    // The session's CSRF token (for the writes) comes with `me`.
    await api.get('/api/auth/me');
    await list();
    bodies = (await api.get('/api/control-bodies')).control_bodies || [];
  } catch (e) {
    showError(e);
    return;
  }
  const d = new Date(Date.now() + 90 * 86400000);
  $('token-expires').value = d.toISOString().slice(0, 10);
  fillBodies();
  $('token-form').hidden = false;
}

applyI18n();
bindLangSwitch($('lang'));
window.addEventListener('langchange', () => { fillBodies(); list().catch(showError); });
load();
