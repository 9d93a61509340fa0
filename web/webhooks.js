// The administrator's webhooks (/webhooks/): endpoints (URL, events, enabled), the secret
// shown once at creation, each endpoint's deliveries with their state, attempts and last
// answer, and replay (the same event id again).

import { t, applyI18n, bindLangSwitch, formatTime } from './i18n.js';
import * as api from './api.js';
import { errorText, showFieldErrors, clearFieldErrors } from './errors.js';
import { el } from './checklist.js';

const $ = (id) => document.getElementById(id);
let eventTypes = [];

function showError(e) {
  $('webhooks-error').textContent = errorText(e);
  $('webhooks-error').hidden = false;
}

function eventBoxes(container, prefix, chosen) {
  container.querySelectorAll('.check').forEach((n) => n.remove());
  for (const type of eventTypes) {
    const id = `${prefix}-${type.replace('.', '-')}`;
    const box = el('input', { type: 'checkbox', id, value: type, checked: chosen.includes(type) });
    container.append(el('label', { class: 'check', for: id }, box, ' ', t(`webhooks.event.${type}`)));
  }
}

const chosenEvents = (container) => [...container.querySelectorAll('input:checked')].map((b) => b.value);

function deliveryRow(hook, d, refresh) {
  const replay = el('button', { type: 'button', class: 'btn', text: t('webhooks.replay'), disabled: d.state === 'sending' });
  replay.addEventListener('click', async () => {
    try {
      await api.post(`/api/webhooks/${hook.id}/deliveries/${d.id}/replay`, {});
      refresh();
    } catch (e) { showError(e); }
  });
  const last = [d.last_status ? `HTTP ${d.last_status}` : '', d.last_error ? t(`webhooks.error.${d.last_error}`) : '']
    .filter(Boolean).join(' · ');
  return el('tr', { 'data-delivery': d.id, 'data-state': d.state },
    el('td', { text: t(`webhooks.event.${d.event_type}`) }),
    el('td', { text: formatTime(d.occurred_at) }),
    el('td', { text: t(`webhooks.state.${d.state}`) }),
    el('td', { text: String(d.attempts) }),
    el('td', { text: last, title: d.last_response || '' }),
    el('td', { text: d.next_attempt_at ? formatTime(d.next_attempt_at) : '' }),
    el('td', {}, replay));
}

function endpointPanel(hook) {
  const table = el('tbody');
  const refresh = async () => {
    try {
      const data = await api.get(`/api/webhooks/${hook.id}/deliveries`);
      table.replaceChildren(...data.deliveries.map((d) => deliveryRow(hook, d, refresh)));
      if (!data.deliveries.length) table.append(el('tr', {}, el('td', { colspan: '7', class: 'muted', text: t('webhooks.no_deliveries') })));
    } catch (e) { showError(e); }
  };
  const toggle = el('button', { type: 'button', class: 'btn', text: t(hook.enabled ? 'webhooks.disable' : 'webhooks.enable') });
  toggle.addEventListener('click', async () => {
    try { await api.put(`/api/webhooks/${hook.id}`, { enabled: !hook.enabled }); load(); } catch (e) { showError(e); }
  });
  const remove = el('button', { type: 'button', class: 'btn btn-danger', text: t('webhooks.delete') });
  remove.addEventListener('click', async () => {
    if (!window.confirm(t('webhooks.delete_confirm', { url: hook.url }))) return;
    try { await api.del(`/api/webhooks/${hook.id}`); load(); } catch (e) { showError(e); }
  });
  const events = el('fieldset', { class: 'field' }, el('legend', { class: 'label', text: t('webhooks.events') }));
  eventBoxes(events, `hook-${hook.id}`, hook.events);
  const save = el('button', { type: 'button', class: 'btn', text: t('webhooks.save_events') });
  save.addEventListener('click', async () => {
    try { await api.put(`/api/webhooks/${hook.id}`, { events: chosenEvents(events) }); load(); } catch (e) { showError(e); }
  });
  const reload = el('button', { type: 'button', class: 'btn', text: t('webhooks.refresh') });
  reload.addEventListener('click', refresh);
  refresh();
  return el('section', { class: 'panel mb webhook', 'data-webhook': hook.id },
    el('h2', { text: hook.url }),
    el('p', { class: 'muted', text: [hook.description, t(hook.enabled ? 'webhooks.enabled' : 'webhooks.disabled')].filter(Boolean).join(' · ') }),
    events,
    el('p', {}, save, ' ', toggle, ' ', remove),
    el('h3', { text: t('webhooks.deliveries') }),
    el('p', {}, reload),
    el('div', { class: 'table-scroll' }, el('table', { class: 'ratings-table' },
      el('thead', {}, el('tr', {}, ...['event', 'time', 'state', 'attempts', 'last', 'next', 'action']
        .map((k) => el('th', { text: t(`webhooks.col.${k}`) })))),
      table)));
}

async function load() {
  let data;
  try {
    await api.get('/api/auth/me');
    data = await api.get('/api/webhooks');
  } catch (e) {
    $('webhooks-error').textContent = e.code === 'unauthenticated' ? t('messages.login') : errorText(e);
    $('webhooks-error').hidden = false;
    return;
  }
  eventTypes = data.event_types;
  eventBoxes($('webhook-events'), 'new', []);
  $('webhooks-list').replaceChildren(...data.endpoints.map(endpointPanel));
}

$('webhook-new').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = $('webhook-new');
  clearFieldErrors(f);
  $('webhook-new-error').hidden = true;
  try {
    const made = await api.post('/api/webhooks', {
      url: $('webhook-url').value.trim(),
      description: $('webhook-description').value.trim(),
      events: chosenEvents($('webhook-events')),
    });
    const secret = $('webhook-secret');
    secret.replaceChildren(el('p', { text: t('webhooks.secret_once') }), el('code', { id: 'webhook-secret-value', text: made.secret }));
    secret.hidden = false;
    $('webhook-url').value = '';
    $('webhook-description').value = '';
    load();
  } catch (e) {
    showFieldErrors(f, { url: 'webhook-url', description: 'webhook-description', events: 'webhook-events' }, e, $('webhook-new-error'));
  }
});

applyI18n();
bindLangSwitch($('lang'));
// The lists are drawn with t(): draw them again in the new language.
window.addEventListener('langchange', load);
load();
