// The ratings' statistics (/ratings/; /ratings/#public is the public page when the server
// serves one): per control body and per inspector (names only where the server gives them),
// per criterion, overall and month by month; the chart is the server's SVG; CSV from the
// server. The page computes nothing: it renders the numbers the server sends.

import * as api from './api.js';
import { t, getLang, applyI18n, bindLangSwitch } from './i18n.js';
import { errorText } from './errors.js';

const $ = (id) => document.getElementById(id);
const isPublic = location.hash === '#public';
const page = { view: null };

function fail(e) {
  $('ratings-error-text').textContent = typeof e === 'string' ? e : errorText(e);
  $('ratings-error').hidden = false;
}

function titleOf(code) {
  const c = page.view.criteria.criteria.find((x) => x.code === code);
  if (!c) return code;
  return (getLang() === 'en' ? c.title.en : c.title.ru) || code;
}

function reasonOf(criterion, code) {
  const c = page.view.criteria.criteria.find((x) => x.code === criterion);
  const ch = c?.choices.find((x) => x.code === code);
  if (!ch) return code;
  return (getLang() === 'en' ? ch.title.en : ch.title.ru) || code;
}

function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}

function summaryRow(label, criterion, s) {
  const tr = document.createElement('tr');
  tr.append(
    cell('th', label),
    cell('td', String(s.count)),
    cell('td', s.mean.toFixed(2)),
    cell('td', String(s.median)),
    cell('td', `${Math.round(s.share_below_5 * 100)}%`),
    cell('td', s.top_reasons.map((r) => `${reasonOf(criterion, r.reason)} (${r.count})`).join(', ')),
    cell('td', s.distribution.join(' · ')),
  );
  return tr;
}

function subjectLabel(s, level) {
  if (s.name) return s.name;
  if (s.anonymous_number) return t('ratings.inspector_n', { n: s.anonymous_number });
  return s.id || '—';
}

function subjectBlock(s, level) {
  const art = document.createElement('article');
  art.className = 'ratings-subject';
  art.dataset.level = level;
  const h = cell('h3', `${subjectLabel(s, level)} — ${t('ratings.n_ratings', { n: s.ratings })}`);
  art.append(h);
  const table = document.createElement('table');
  table.className = 'ratings-table';
  const head = document.createElement('tr');
  for (const k of ['ratings.criterion', 'ratings.count', 'ratings.mean', 'ratings.median', 'ratings.below5', 'ratings.reasons', 'ratings.distribution']) {
    head.append(cell('th', t(k)));
  }
  const thead = document.createElement('thead');
  thead.append(head);
  const body = document.createElement('tbody');
  for (const c of s.criteria) {
    body.append(summaryRow(`${titleOf(c.criterion)} — ${t('ratings.all')}`, c.criterion, c.overall));
    for (const m of c.months) body.append(summaryRow(`  ${m.month}`, c.criterion, m));
  }
  table.append(thead, body);
  art.append(table);
  return art;
}

function render() {
  const v = page.view;
  const side = v.side;
  const bodies = $('ratings-bodies');
  bodies.replaceChildren(cell('h2', t('ratings.control_bodies')));
  if (!v.control_bodies.length) bodies.append(cell('p', t('ratings.empty')));
  for (const s of v.control_bodies) bodies.append(subjectBlock(s, 'control_body'));
  const rated = $('ratings-rated');
  rated.replaceChildren();
  if (!isPublic) {
    rated.append(cell('h2', t(side === 'business' ? 'ratings.inspectors' : 'ratings.businesses')));
    if (!v.rated.length) rated.append(cell('p', t('ratings.empty')));
    for (const s of v.rated) rated.append(subjectBlock(s, side === 'business' ? 'inspector' : 'business'));
  }
  $('ratings-names').hidden = isPublic || v.names_visible || side !== 'business';
  // The server's charts: by criterion, by inspector (or business; not on the public page),
  // by month.
  const base = isPublic ? `/api/public/ratings.svg?lang=${getLang()}` : `/api/ratings/stats.svg?side=${side}&lang=${getLang()}`;
  $('ratings-chart').src = base;
  $('ratings-chart').alt = t('ratings.chart');
  $('ratings-chart-subjects').parentElement.hidden = isPublic;
  if (!isPublic) $('ratings-chart-subjects').src = `${base}&chart=subjects`;
  $('ratings-chart-subjects').alt = t(side === 'business' ? 'ratings.chart.inspectors' : 'ratings.chart.businesses');
  $('ratings-chart-months').src = `${base}&chart=months`;
  $('ratings-chart-months').alt = t('ratings.chart.months');
  $('ratings-csv').href = `/api/ratings/stats.csv?side=${side}`;
}

async function load() {
  $('ratings-error').hidden = true;
  try {
    page.view = isPublic
      ? await api.get('/api/public/ratings')
      : await api.get(`/api/ratings/stats?side=${$('ratings-side').value}`);
  } catch (e) {
    fail(e);
    return;
  }
  render();
}

applyI18n();
bindLangSwitch($('lang'));
if (isPublic) {
  $('ratings-heading').textContent = t('ratings.public.title');
  $('ratings-controls').hidden = true;
}
window.addEventListener('langchange', () => { if (page.view) render(); });
$('ratings-side').addEventListener('change', load);
load();
