// The administrator's page for the message texts (/messages/): the notice, the cancellation
// and the reminder in Russian and English, each a template with {placeholders}; saving makes a
// new version (POST /api/message-templates), which the next messages use.

import { t, applyI18n, bindLangSwitch } from './i18n.js';
import * as api from './api.js';
import { errorText, showFieldErrors, clearFieldErrors } from './errors.js';
import { el } from './checklist.js';

const $ = (id) => document.getElementById(id);

function form(tpl) {
  const key = `${tpl.purpose}-${tpl.language}`;
  const subject = el('input', { type: 'text', id: `msg-subject-${key}`, maxlength: '300' });
  subject.value = tpl.subject;
  const body = el('textarea', { id: `msg-body-${key}`, rows: '10' });
  body.value = tpl.body;
  const state = el('span', { class: 'muted', role: 'status', id: `msg-state-${key}` });
  const version = el('span', { class: 'muted', id: `msg-version-${key}` });
  const box = el('div', { class: 'form-error', role: 'alert', hidden: true });
  const showVersion = (v) => { version.textContent = v ? t('messages.version', { v }) : t('messages.builtin'); };
  showVersion(tpl.version);
  const f = el('form', { class: 'panel mb message-template', 'data-purpose': tpl.purpose, 'data-language': tpl.language, novalidate: true },
    el('h2', { text: `${t(`messages.purpose.${tpl.purpose}`)} · ${tpl.language.toUpperCase()}` }), version,
    el('div', { class: 'field' }, el('label', { class: 'label', for: subject.id, text: t('messages.subject') }), subject),
    el('div', { class: 'field' }, el('label', { class: 'label', for: body.id, text: t('messages.body') }), body),
    box,
    el('p', {}, el('button', { type: 'submit', class: 'btn btn-primary', text: t('messages.save') }), ' ', state));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(f);
    box.hidden = true;
    state.textContent = '';
    try {
      const saved = await api.post('/api/message-templates', {
        purpose: tpl.purpose, language: tpl.language, subject: subject.value, body: body.value,
      });
      showVersion(saved.version);
      state.textContent = t('messages.saved', { v: saved.version });
    } catch (e) {
      showFieldErrors(f, { subject: subject.id, body: body.id }, e, box);
    }
  });
  return f;
}

async function load() {
  let data;
  try {
    // The session's CSRF token (for the saves) comes with `me`.
    await api.get('/api/auth/me');
    data = await api.get('/api/message-templates');
  } catch (e) {
    $('messages-error').textContent = e.code === 'unauthenticated' ? t('messages.login') : errorText(e);
    $('messages-error').hidden = false;
    return;
  }
  $('messages-placeholders').textContent = t('messages.placeholders', { list: data.placeholders.join(' ') });
  $('messages-list').replaceChildren(...data.templates.map(form));
}

applyI18n();
bindLangSwitch($('lang'));
load();
