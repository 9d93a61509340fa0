// Location-trust signals in words. The server stores each signal as a code with parameters
// (docs/geolocation.md, "Codes and parameters"); the words are rendered here, in the reader's
// language, from web/i18n.js. No DOM: tests/web/signals.test.mjs runs it under Node.

import { translate, getLang } from './i18n.js';

const num = (x, digits = 0) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '?');
const plain = (x) => (typeof x === 'number' ? String(x) : '?');

function offset(minutes) {
  const m = Math.abs(minutes);
  const pad = (n) => String(n).padStart(2, '0');
  return `${minutes < 0 ? '-' : '+'}${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}

/** A distance as the signals say it: kilometres from 10 km on, metres below. */
function distance(lang, m) {
  if (typeof m !== 'number') return '?';
  return m >= 10000 ? `${num(m / 1000)} ${translate(lang, 'unit.km')}` : `${num(m)} ${translate(lang, 'unit.m')}`;
}

/** A page or browser trace (`software_renderer`, `navigator.webdriver`, …) in words; a
 * trace this page does not know is named generically, never by its internal name. */
function hintText(lang, h) {
  const key = `hint.${h}`;
  const s = translate(lang, key);
  return s === key ? translate(lang, 'hint.other') : s;
}

function hints(lang, v) {
  return (Array.isArray(v) ? v : [v]).map((h) => hintText(lang, String(h ?? ''))).join(', ');
}

/** The sentence for one signal `{name, value, severity}` in `lang` (default: the page's). */
export function signalText(signal, lang = getLang()) {
  const tr = (key, vars) => translate(lang, key, vars);
  const v = signal.value;
  const o = v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  switch (signal.name) {
    case 'no_fix': {
      const reason = tr(`nofix.${o.reason}`);
      if (o.reason === 'permission_denied') return tr('signal.no_fix.denied');
      if (typeof o.seconds_since_fix === 'number') return tr('signal.no_fix.lost', { reason, s: num(o.seconds_since_fix) });
      return tr('signal.no_fix.none_yet', { reason });
    }
    case 'impossible_speed':
      return tr('signal.impossible_speed', {
        km: num(o.distance_m / 1000, 1),
        s: num(o.seconds),
        kmh: num(o.speed_mps * 3.6),
        why: tr(signal.severity === 'spoofed' ? 'signal.impossible_speed.spoofed' : 'signal.impossible_speed.suspicious'),
      });
    case 'frozen_position':
      return `${tr('signal.frozen_position', { acc: plain(o.accuracy_m), n: plain(o.count), s: num(o.seconds) })} ${
        tr(signal.severity === 'info' ? 'signal.frozen_position.info' : 'signal.frozen_position.mock')}`;
    case 'accuracy_too_good':
      return tr('signal.accuracy_too_good', { acc: plain(v) });
    case 'accuracy_constant': {
      const tail = o.cause === 'network' || o.cause === 'ios' ? o.cause : 'mock';
      return `${tr('signal.accuracy_constant', { acc: plain(o.accuracy_m), n: plain(o.count), s: num(o.seconds) })} ${
        tr(`signal.accuracy_constant.${tail}`)}`;
    }
    case 'coarse_fix':
      return tr('signal.coarse_fix', { acc: num(v) });
    case 'clock_skew': {
      const text = tr('signal.clock_skew', {
        dir: tr(o.median_skew_s > 0 ? 'signal.clock_skew.behind' : 'signal.clock_skew.ahead'),
        s: num(Math.abs(o.median_skew_s)),
        n: plain(o.samples),
      });
      return typeof o.whole_hours === 'number' ? `${text} ${tr('signal.clock_skew.hours', { h: num(o.whole_hours) })}` : text;
    }
    case 'timezone_unknown':
      return typeof v === 'string' ? tr('signal.timezone_unknown.unknown', { tz: v }) : tr('signal.timezone_unknown.missing');
    case 'timezone_mismatch':
      return tr('signal.timezone_mismatch', {
        browser: o.browser, bo: offset(o.browser_offset_min), zone: o.position, zo: offset(o.position_offset_min),
      });
    case 'far_from_site':
    case 'site_unconfirmed':
    case 'on_site':
      return tr(`signal.${signal.name}`, { d: distance(lang, o.distance_m), acc: num(o.accuracy_m), r: num(o.radius_m) });
    case 'automation':
      return tr('signal.automation', { list: hints(lang, v) });
    case 'emulator': {
      // Today each trace is {source, value}; logs from before codes hold sentences like
      // "hint: emulator_gpu", shown as they are.
      const traces = (Array.isArray(v) ? v : []).map((x) => (x && typeof x === 'object'
        ? tr(`signal.emulator.${x.source}`, { v: x.source === 'hint' ? hintText(lang, x.value) : x.value })
        : String(x)));
      return tr('signal.emulator', { list: traces.join('; ') });
    }
    case 'platform_mismatch':
      return tr('signal.platform_mismatch', { os: o.user_agent_os, platform: o.platform });
    case 'desktop_browser':
      return tr('signal.desktop_browser');
    case 'client_hint':
      return tr('signal.client_hint', { list: hints(lang, v) });
    default:
      // A code this page does not know yet: an old event's own sentence, else the code.
      return signal[`explanation_${lang}`] || signal.explanation_en || signal.name;
  }
}
