// Every stable error code the server can send has words in Russian and in English in web/.
// The codes are read from the server's own source, not from a hand-kept list: the codes of
// `ApiError` (`code: "…"`, the fixed ones in `status_and_code`), field errors
// (`FieldError::new(field, code)`), helpers that build `Invalid` errors (`invalid("…")`), the
// checklist protocol's and the rtc bridge's `mod codes`, and every `fn code(&self)` that maps
// an error enum to codes (geolocation parsing, the media hub, the INN).
// Run: node --test tests/web

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { hasText } from '../../web/i18n.js';
import { errorText } from '../../web/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Location-trust signals are not errors (web/signals.js words them, tested beside this).
const SKIP = [join('checklist-sync', 'src', 'trust'), join('checklist-sync', 'src', 'bin')];

function rustFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (SKIP.some((s) => relative(root, p).startsWith(s))) return [];
    if (statSync(p).isDirectory()) return rustFiles(p);
    return p.endsWith('.rs') ? [p] : [];
  });
}

/** The part of a source file that is not its unit tests. */
function productCode(text) {
  const i = text.indexOf('#[cfg(test)]');
  return i >= 0 ? text.slice(0, i) : text;
}

/** The bodies of functions with this name (up to the first line that closes at their indent). */
function bodies(text, fname) {
  const out = [];
  const re = new RegExp(`\\n(\\s*)(?:pub(?:\\(crate\\))? )?fn ${fname}\\b[^{]*\\{`, 'g');
  let m;
  while ((m = re.exec(text))) {
    const end = text.indexOf(`\n${m[1]}}`, m.index + m[0].length);
    out.push(text.slice(m.index, end < 0 ? undefined : end));
  }
  return out;
}

function scan() {
  const codes = new Map(); // code -> first file naming it
  const add = (code, file) => { if (!codes.has(code)) codes.set(code, relative(root, file)); };
  const files = ['signaling/src', 'checklist-sync/src', 'media-recorder/src'].flatMap((d) => rustFiles(join(root, d)));
  for (const file of files) {
    const text = productCode(readFileSync(file, 'utf8'));
    for (const m of text.matchAll(/\bcode:\s*"([a-z][a-z0-9_]*)"/g)) add(m[1], file);
    for (const m of text.matchAll(/FieldError::new\(\s*"[^"]*",\s*"([a-z][a-z0-9_]*)"\s*,?\s*\)/g)) add(m[1], file);
    for (const m of text.matchAll(/(?<![:\w])invalid\(\s*"([a-z][a-z0-9_]*)"/g)) add(m[1], file); // not OpError::invalid(field, …)
    for (const block of text.matchAll(/pub mod codes \{([\s\S]*?)\n\}/g)) {
      for (const m of block[1].matchAll(/pub const [A-Z0-9_]+: &str = "([a-z][a-z0-9_]*)";/g)) add(m[1], file);
    }
    for (const body of [...bodies(text, 'code'), ...bodies(text, 'status_and_code')]) {
      for (const m of body.matchAll(/"([a-z][a-z0-9_]*)"/g)) add(m[1], file);
    }
  }
  return codes;
}

const codes = scan();

test('the scan finds the server\'s codes', () => {
  // A few that certainly exist, from each kind of source: if the scan breaks, this fails.
  for (const c of ['unauthenticated', 'illegal_transition', 'inn_check_digits', 'not_live', 'sdp_invalid',
    'geo_not_finite', 'no_usable_codec', 'unsupported_image_type', 'validation_failed']) {
    assert.ok(codes.has(c), `the scan misses ${c}; found ${[...codes.keys()].join(', ')}`);
  }
});

for (const lang of ['ru', 'en']) {
  test(`every server error code has a message in ${lang}`, () => {
    const missing = [...codes].filter(([c]) => !hasText(lang, `error.${c}`)).map(([c, f]) => `${c} (${f})`);
    assert.deepEqual(missing, [], `codes without error.<code> in ${lang}`);
  });
}

test('messages are words, not the code, and differ by language', () => {
  for (const [c] of codes) {
    const ru = errorText({ code: c, message: 'English server prose' }, 'ru');
    const en = errorText({ code: c, message: 'English server prose' }, 'en');
    // No code shows (a plain word like "cancelled" may of course be said in English).
    assert.ok(ru !== c && en !== c && !(c.includes('_') && (ru.includes(c) || en.includes(c))), `${c}: ${ru} / ${en}`);
    assert.ok(/[а-яё]/i.test(ru), `${c} in Russian: ${ru}`);
    assert.notEqual(ru, en, c);
  }
});

test('an unknown code falls back to a generic message in the page language, never raw prose', () => {
  const ru = errorText({ code: 'some_future_code', message: 'internal detail' }, 'ru');
  assert.ok(/[а-яё]/i.test(ru) && !ru.includes('internal detail'), ru);
});
