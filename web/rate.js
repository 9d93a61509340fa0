// The rating page (/rate/#i=<inspection id>, or #r=<results token>&i=… from the act's QR code):
// a party rates the finished inspection by its side's criteria, 1–10 each; a score below 5
// opens the criterion's follow-up questions (choices and a text), which the server requires.
// Who may rate and on which side is the server's decision (GET …/rating says it); the page
// only renders the criteria in the reader's language and sends the scores.

import * as api from './api.js';
import { t, getLang, applyI18n, bindLangSwitch, formatTime } from './i18n.js';
import { errorText, fieldErrorText } from './errors.js';

const $ = (id) => document.getElementById(id);
const page = { id: null, view: null };

function fail(text) {
  $('rate-error-text').textContent = text;
  $('rate-error').hidden = false;
}

function words(w) {
  return (getLang() === 'en' ? w?.en : w?.ru) || w?.ru || '';
}

function criterionBlock(c, given) {
  const box = document.createElement('fieldset');
  box.className = 'rate-criterion';
  box.dataset.criterion = c.code;
  const legend = document.createElement('legend');
  legend.textContent = words(c.title);
  box.append(legend);
  const scale = document.createElement('div');
  scale.className = 'rate-scale';
  scale.setAttribute('role', 'radiogroup');
  for (let n = 1; n <= 10; n += 1) {
    const label = document.createElement('label');
    label.className = 'rate-point';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = `score-${c.code}`;
    input.value = String(n);
    input.checked = given?.score === n;
    const span = document.createElement('span');
    span.textContent = String(n);
    label.append(input, span);
    scale.append(label);
  }
  box.append(scale);
  const follow = document.createElement('div');
  follow.className = 'rate-follow-up';
  follow.hidden = !(given && given.score < 5);
  const q = document.createElement('p');
  q.className = 'rate-question';
  q.textContent = words(c.follow_up);
  follow.append(q);
  for (const ch of c.choices) {
    const label = document.createElement('label');
    label.className = 'rate-choice';
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.name = `reason-${c.code}`;
    input.value = ch.code;
    input.checked = !!given?.reasons?.includes(ch.code);
    label.append(input, document.createTextNode(` ${words(ch.title)}`));
    follow.append(label);
  }
  const noteLabel = document.createElement('label');
  noteLabel.textContent = t('rate.follow_up.note');
  noteLabel.htmlFor = `note-${c.code}`;
  const note = document.createElement('textarea');
  note.id = `note-${c.code}`;
  note.name = `note-${c.code}`;
  note.maxLength = 1000;
  note.rows = 3;
  note.value = given?.note || '';
  follow.append(noteLabel, note);
  const err = document.createElement('p');
  err.className = 'field-error rate-field-error';
  err.hidden = true;
  box.append(follow, err);
  scale.addEventListener('change', () => {
    const v = Number(box.querySelector(`input[name="score-${c.code}"]:checked`)?.value || 0);
    follow.hidden = !(v > 0 && v < 5);
  });
  return box;
}

function render() {
  const v = page.view;
  $('rate-heading').textContent = v.title;
  $('rate-intro').textContent = t(`rate.intro.${v.side}`);
  const given = new Map((v.rating?.scores || []).map((s) => [s.criterion, s]));
  const list = $('rate-criteria');
  list.replaceChildren(...v.criteria.criteria.map((c) => criterionBlock(c, given.get(c.code))));
  const editable = v.can_rate || v.can_change;
  $('rate-submit').textContent = t(v.rating ? 'rate.change' : 'rate.submit');
  $('rate-submit').hidden = !editable;
  for (const input of list.querySelectorAll('input, textarea')) input.disabled = !editable;
  if (!v.finished) $('rate-window').textContent = t('rate.not_finished');
  else if (v.rating && v.can_change) $('rate-window').textContent = t('rate.until', { time: formatTime(v.editable_until) });
  else if (v.rating) $('rate-window').textContent = t('rate.final');
  else $('rate-window').textContent = '';
  $('rate-view').hidden = false;
}

function collect() {
  return page.view.criteria.criteria.map((c) => {
    const box = document.querySelector(`fieldset[data-criterion="${c.code}"]`);
    const score = Number(box.querySelector(`input[name="score-${c.code}"]:checked`)?.value || 0);
    const low = score > 0 && score < 5;
    return {
      criterion: c.code,
      score,
      reasons: low ? [...box.querySelectorAll(`input[name="reason-${c.code}"]:checked`)].map((i) => i.value) : [],
      note: low ? box.querySelector('textarea').value : null,
    };
  });
}

function showErrors(e) {
  for (const p of document.querySelectorAll('.rate-field-error')) { p.hidden = true; p.textContent = ''; }
  const rest = [];
  for (const fe of e.fields || []) {
    const m = fe.field.match(/^scores\.([a-z0-9_]+)\./);
    const box = m && document.querySelector(`fieldset[data-criterion="${m[1]}"]`);
    if (!box) { rest.push(fieldErrorText(fe)); continue; }
    const p = box.querySelector('.rate-field-error');
    const text = fieldErrorText(fe);
    if (!p.textContent.includes(text)) p.textContent = p.textContent ? `${p.textContent} ${text}` : text;
    p.hidden = false;
    box.setAttribute('aria-invalid', 'true');
  }
  fail(rest.length ? rest.join(' ') : errorText(e));
}

async function send(ev) {
  ev.preventDefault();
  $('rate-error').hidden = true;
  $('rate-done').hidden = true;
  const body = { criteria_version: page.view.criteria.version, scores: collect() };
  const first = !page.view.rating;
  $('rate-submit').disabled = true;
  try {
    page.view = first
      ? await api.post(`/api/inspections/${page.id}/rating`, body)
      : await api.put(`/api/inspections/${page.id}/rating`, body);
    render();
    $('rate-done-text').textContent = t(first ? 'rate.sent' : 'rate.changed');
    $('rate-done').hidden = false;
  } catch (e) {
    showErrors(e);
  } finally {
    $('rate-submit').disabled = false;
  }
}

async function load() {
  const r = location.hash.match(/[#&]r=([^&]+)/);
  const i = location.hash.match(/[#&]i=([\w-]+)/);
  try {
    if (r) {
      // The durable results link (also in the act's QR code): it sets the results cookie.
      const res = await api.post('/api/results/accept', { token: decodeURIComponent(r[1]) });
      page.id = res.inspection.id;
      history.replaceState(null, '', `${location.pathname}#i=${page.id}`);
    } else if (i) {
      page.id = i[1];
      const me = await api.get('/api/auth/me');
      api.setCsrf(me.csrf_token);
    }
    if (!page.id) { fail(t('rate.no_access')); return; }
    page.view = await api.get(`/api/inspections/${page.id}/rating`);
  } catch (e) {
    if (e.code === 'unauthenticated' || e.code === 'not_found') fail(t('rate.no_access'));
    else fail(errorText(e));
    return;
  }
  render();
}

applyI18n();
bindLangSwitch($('lang'));
window.addEventListener('langchange', () => { if (page.view) render(); });
$('rate-form').addEventListener('submit', send);
load();
