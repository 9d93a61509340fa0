// Server error codes in the reader's words. The server answers every refusal with a stable
// code (REST: {error: {code, message, fields?}}; socket: {type: "error", code, field?});
// its English `message` is for logs and never shown. tests/web/error_codes.test.mjs scans the
// server's source for every code and requires both languages here (web/i18n.js, `error.*`).
// No DOM: the test runs it under Node.

import { translate, getLang, hasText } from './i18n.js';

/** The message for an error `{code, field?}` in `lang` (default: the page's). */
export function errorText(err, lang = getLang()) {
  const code = err?.code || 'unknown';
  if (code === 'invalid_field' && err.field && hasText(lang, `error.invalid_field.${err.field}`)) {
    return translate(lang, `error.invalid_field.${err.field}`);
  }
  if (hasText(lang, `error.${code}`)) return translate(lang, `error.${code}`);
  // http_502 and the like: a proxy or an old server, not one of ours.
  return translate(lang, 'error.unknown');
}

/** The message of one field error `{field, code}`. */
export function fieldErrorText(fe, lang = getLang()) {
  return errorText({ code: fe.code }, lang);
}

/**
 * Show a form's field errors at their fields, all at once. `fieldIds` maps the server's
 * field paths (e.g. `business.inn`) to input ids. Each input gets aria-invalid and a message
 * below it, linked by aria-describedby; errors of fields the form does not show go to `box`.
 * Returns the first invalid input (to focus).
 */
export function showFieldErrors(form, fieldIds, err, box) {
  clearFieldErrors(form);
  const fields = Array.isArray(err?.fields) ? err.fields : [];
  const rest = [];
  let first = null;
  for (const fe of fields) {
    const input = fieldIds[fe.field] ? document.getElementById(fieldIds[fe.field]) : null;
    if (!input) { rest.push(fieldErrorText(fe)); continue; }
    input.setAttribute('aria-invalid', 'true');
    const msg = document.createElement('p');
    msg.className = 'field-error';
    msg.id = `${input.id}-error`;
    msg.dataset.code = fe.code;
    msg.textContent = fieldErrorText(fe);
    input.setAttribute('aria-describedby', msg.id);
    input.closest('.field')?.classList.add('invalid');
    (input.closest('.field') || input.parentElement).append(msg);
    first = first || input;
  }
  if (box) {
    const lines = fields.length ? rest : [errorText(err)];
    if (fields.length && !rest.length) lines.push(errorText(err));
    box.textContent = lines.join(' ');
    box.hidden = lines.length === 0;
  }
  return first;
}

/** Remove every field error of a form. */
export function clearFieldErrors(form) {
  for (const m of form.querySelectorAll('.field-error')) m.remove();
  for (const f of form.querySelectorAll('.field.invalid')) f.classList.remove('invalid');
  for (const i of form.querySelectorAll('[aria-invalid]')) {
    i.removeAttribute('aria-invalid');
    i.removeAttribute('aria-describedby');
  }
}
