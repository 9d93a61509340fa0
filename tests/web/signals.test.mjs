// Location-trust signals are codes with parameters in the log; web/signals.js puts them into
// words. Every signal of the recorded logs must read as a sentence in Russian and in English,
// with every placeholder filled and no code left in the text.
// Run: node --test tests/web

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { signalText } from '../../web/signals.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'folds');
const signals = readdirSync(dir)
  .filter((f) => f.endsWith('.jsonl'))
  .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)))
  .filter((e) => e.kind === 'verdict')
  .flatMap((e) => e.payload.signals);

test('the recorded logs carry signals', () => {
  assert.ok(signals.length >= 5, `${signals.length} signals`);
});

for (const lang of ['ru', 'en']) {
  test(`every recorded signal reads as words in ${lang}`, () => {
    for (const s of signals) {
      const text = signalText(s, lang);
      assert.ok(text.length > 20, `${s.name}: ${text}`);
      assert.ok(!/[{}]/.test(text), `unfilled placeholder in ${s.name}: ${text}`);
      assert.ok(!text.includes('?'), `missing parameter in ${s.name}: ${text}`);
      // A code like `impossible_speed` must not show through (`emulator` is also a word).
      if (s.name.includes('_')) assert.ok(!text.includes(s.name), `the code shows through: ${text}`);
      if (lang === 'ru') assert.match(text, /[а-яё]/i, text);
    }
  });
}

const cases = [
  [{ name: 'impossible_speed', severity: 'spoofed', value: { speed_mps: 4821.3, distance_m: 600012, beyond_accuracy_m: 599994, seconds: 124.5 } },
    'Перемещение на 600.0 км за 125 с (17357 км/ч с учётом заявленной точности) — быстрее любого транспорта, включая самолёт; координаты, вероятно, подменены.',
    'Moved 600.0 km in 125 s (17357 km/h after allowing for the reported accuracy) — faster than any vehicle, aircraft included; the position was most likely injected.'],
  [{ name: 'far_from_site', severity: 'suspicious', value: { distance_m: 600012, accuracy_m: 9, radius_m: 300 } },
    'Местоположение в 600 км от объекта проверки (точность 9 м, допустимый радиус 300 м).',
    'The position is 600 km from the inspection site (accuracy 9 m, allowed radius 300 m).'],
  [{ name: 'on_site', severity: 'info', value: { distance_m: 3, accuracy_m: 9, radius_m: 300 } },
    'В 3 м от объекта проверки (точность 9 м).', 'Within 3 m of the inspection site (accuracy 9 m).'],
  [{ name: 'clock_skew', severity: 'suspicious', value: { median_skew_s: -3601.2, samples: 5, whole_hours: 1 } },
    'Часы устройства спешат относительно сервера на 3601 с (медиана по 5 замерам). Телефоны берут время из сети; большое расхождение говорит о вручную выставленных часах или о воспроизведении записанных координат. Расхождение близко к целому числу часов (1) — так бывает, когда часовой пояс и время выставлены вручную.',
    'The device clock is 3601 s ahead of the server (median of 5 fixes). Phones take their time from the network; a large difference suggests a hand-set clock or replayed positions. The difference is close to a whole number of hours (1), which is what a hand-set time zone and clock produce.'],
  [{ name: 'timezone_mismatch', severity: 'suspicious', value: { browser: 'Europe/Moscow', browser_offset_min: 180, position: 'Asia/Novosibirsk', position_offset_min: 420 } },
    'Часовой пояс браузера — Europe/Moscow (UTC+03:00), а переданные координаты находятся в поясе Asia/Novosibirsk (UTC+07:00). Телефон обычно берёт пояс из сотовой сети там, где находится на самом деле; координаты в другом поясе указывают на подмену.',
    "The browser's time zone is Europe/Moscow (UTC+03:00), but the reported position lies in Asia/Novosibirsk (UTC+07:00). A phone normally takes its zone from the mobile network where it really is; a position in another zone points to spoofing."],
  [{ name: 'emulator', severity: 'suspicious', value: [{ source: 'hint', value: 'emulator_gpu' }, { source: 'platform', value: 'Linux x86_64' }] },
    // The page's hint in words: internal names (emulator_gpu) never reach a reader.
    'Признаки эмулятора телефона (признак страницы: видеочип эмулятора; платформа: Linux x86_64); в эмуляторе местоположение задаётся вручную.',
    "Signs of a phone emulator (page hint: an emulator's graphics chip; platform: Linux x86_64); an emulator's location is set by hand."],
  [{ name: 'emulator', severity: 'suspicious', value: ['hint: emulator_gpu'], explanation_ru: 'старая фраза', explanation_en: 'old sentence' },
    'Признаки эмулятора телефона (hint: emulator_gpu); в эмуляторе местоположение задаётся вручную.',
    "Signs of a phone emulator (hint: emulator_gpu); an emulator's location is set by hand."],
  [{ name: 'no_fix', severity: 'info', value: { reason: 'timeout', seconds_since_fix: 30 } },
    'Устройство не может определить местоположение (время ожидания истекло); последние координаты получены 30 с назад.',
    'The device cannot determine its position (timed out); the last fix arrived 30 s ago.'],
  [{ name: 'accuracy_constant', severity: 'info', value: { accuracy_m: 65, count: 12, seconds: 60, cause: 'ios' } },
    'Точность была ровно 65 м во всех 12 замерах за 60 с. iOS округляет точность до фиксированных значений, поэтому это лишь отмечено.',
    'Accuracy was exactly 65 m in all 12 fixes over 60 s. iOS rounds accuracy to fixed steps, so this is only noted.'],
  [{ name: 'some_future_code', severity: 'info', value: null, explanation_ru: 'Старое объяснение.', explanation_en: 'An old explanation.' },
    'Старое объяснение.', 'An old explanation.'],
];

test('signals read as the sentences the assessor used to store, in both languages', () => {
  for (const [signal, ru, en] of cases) {
    assert.equal(signalText(signal, 'ru'), ru);
    assert.equal(signalText(signal, 'en'), en);
  }
});
