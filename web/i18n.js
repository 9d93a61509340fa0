// Interface language: Russian by default, English on request, remembered in localStorage.
// Markup carries keys in data-i18n (text), data-i18n-placeholder, data-i18n-aria-label and
// data-i18n-title; dynamic text calls t(key, vars).

const STORAGE_KEY = 'inspector.lang';

const DICT = {
  ru: {
    'app.name': 'Инспектор',
    'lang.switch': 'English',
    'lang.switch.label': 'Switch the interface to English',
    'common.loading': 'Загрузка…',
    'common.error': 'Ошибка',
    'common.retry': 'Повторить',
    'common.close': 'Закрыть',
    'common.copy': 'Копировать',
    'common.copied': 'Скопировано',
    'common.back': 'Назад',
    'common.skip': 'К содержимому',
    'common.none': 'нет',
    'common.unknown': 'неизвестно',

    'result.compliant': 'Соответствует',
    'result.violation': 'Нарушение',
    'result.not_applicable': 'Неприменимо',
    'result.unanswered': 'Нет ответа',
    'result.group': 'Результат по пункту {n}',
    'checklist.title': 'Проверочный лист',
    'checklist.empty': 'Проверка без проверочного листа',
    'checklist.comment': 'Комментарий',
    'checklist.notes': 'Комментарий и описание нарушения',
    'checklist.comment.placeholder': 'Комментарий к пункту',
    'checklist.violation': 'Описание нарушения',
    'checklist.violation.placeholder': 'Что именно нарушено',
    'checklist.requirement': 'Требование',
    'checklist.progress': 'Заполнено {done} из {total}',
    'checklist.save': 'Сохранить',
    'checklist.saved': 'Сохранено',

    'conn.connecting': 'Подключение…',
    'conn.open': 'На связи',
    'conn.reconnecting': 'Связь потеряна, переподключение через {s} с…',
    'conn.closed': 'Отключено',
    'conn.resumed': 'Связь восстановлена',
    'quality.label': 'Качество связи',
    'quality.good': 'хорошее',
    'quality.fair': 'среднее',
    'quality.poor': 'плохое',
    'quality.none': 'нет видео',

    'login.title': 'Вход для сотрудников',
    'login.username': 'Логин',
    'login.password': 'Пароль',
    'login.submit': 'Войти',
    'login.bad_credentials': 'Неверный логин или пароль',
    'login.too_many_attempts': 'Слишком много попыток, подождите',
    'nav.logout': 'Выйти',
    'nav.list': 'Проверки',
    'nav.new': 'Новая проверка',

    'list.title': 'Проверки',
    'list.filter.status': 'Статус',
    'list.filter.all': 'Все',
    'list.filter.q': 'Поиск',
    'list.filter.q.placeholder': 'Название, ИНН, адрес',
    'list.empty': 'Проверок нет',
    'list.col.title': 'Проверка',
    'list.col.business': 'Организация',
    'list.col.scheduled': 'Назначена',
    'list.col.status': 'Статус',
    'list.col.actions': 'Действия',
    'list.open': 'Открыть',
    'list.review': 'Запись',

    'status.scheduled': 'Назначена',
    'status.live': 'Идёт',
    'status.finished': 'Завершена',
    'status.signed': 'Подписана',
    'status.cancelled': 'Отменена',

    'kind.control': 'Контрольное мероприятие',
    'kind.preventive': 'Профилактический визит',
    'mode.remote': 'Дистанционно (видео)',
    'mode.on_site': 'Выездная',

    'create.title': 'Новая проверка',
    'create.kind': 'Вид мероприятия',
    'create.mode': 'Формат',
    'create.remote': 'Дистанционная проверка по видеосвязи',
    'create.name': 'Название',
    'create.template': 'Проверочный лист',
    'create.template.none': 'Без проверочного листа',
    'create.business': 'Контролируемое лицо',
    'create.business.name': 'Наименование',
    'create.business.inn': 'ИНН',
    'create.business.address': 'Адрес объекта',
    'create.business.lat': 'Широта объекта',
    'create.business.lon': 'Долгота объекта',
    'create.scheduled': 'Дата и время начала',
    'create.submit': 'Создать и пригласить',
    'invite.title': 'Приглашение для контролируемого лица',
    'invite.hint': 'Отправьте ссылку или покажите QR-код. Ссылка открывается в браузере телефона, приложение не нужно.',
    'invite.link': 'Ссылка-приглашение',
    'invite.qr': 'QR-код приглашения',
    'invite.expires': 'Действует до {t}',
    'invite.new': 'Новая ссылка',
    'invite.open_room': 'Перейти к проверке',

    'room.video': 'Видео с объекта',
    'room.waiting': 'Ожидаем подключения контролируемого лица…',
    'room.mic.on': 'Микрофон включён',
    'room.mic.off': 'Микрофон выключен',
    'room.mic.toggle': 'Включить или выключить микрофон',
    'room.start': 'Начать проверку',
    'room.finish': 'Завершить проверку',
    'room.finish.confirm': 'Завершить проверку? После завершения результаты нельзя изменить.',
    'room.finished': 'Проверка завершена',
    'room.participants': 'Участники',
    'room.participants.none': 'Пока никого',
    'room.events': 'Журнал событий',
    'room.invite': 'Пригласить',
    'room.review': 'Открыть запись',
    'room.online': 'в сети',
    'room.offline': 'не в сети',

    'geo.coords': 'Координаты',
    'geo.accuracy': 'Точность ±{m} м',
    'geo.distance': 'До объекта {d}',
    'geo.trusted': 'Местоположение достоверно',
    'geo.suspicious': 'Местоположение сомнительно',
    'geo.untrusted': 'Подозрение на подмену местоположения',
    'geo.unknown': 'Нет данных о местоположении',
    'geo.denied': 'Доступ к геолокации запрещён',
    'geo.no_fix': 'Местоположение не определено',

    'biz.title': 'Дистанционная проверка',
    'biz.intro': 'Инспектор проведёт проверку по видеосвязи. Вы будете показывать помещения камерой телефона, инспектор будет отмечать пункты проверочного листа, а вы увидите результаты сразу.',
    'biz.what.title': 'Что произойдёт',
    'biz.what.1': 'Телефон подключится к инспектору, звонок записывается.',
    'biz.what.2': 'Инспектор попросит показать помещения и документы — используйте основную (заднюю) камеру.',
    'biz.what.3': 'Результаты по каждому пункту появятся на вашем экране.',
    'biz.perm.title': 'Какие разрешения понадобятся',
    'biz.perm.camera': 'Камера — чтобы инспектор видел объект.',
    'biz.perm.mic': 'Микрофон — чтобы говорить с инспектором.',
    'biz.perm.geo': 'Геолокация — чтобы подтвердить, что вы находитесь на объекте.',
    'biz.start': 'Разрешить и подключиться',
    'biz.invalid': 'Ссылка-приглашение недействительна.',
    'biz.expired': 'Срок действия приглашения истёк или оно отозвано. Попросите инспектора прислать новую ссылку.',
    'biz.camera.switch': 'Переключить камеру',
    'biz.torch': 'Фонарик',
    'biz.zoom': 'Масштаб',
    'biz.mute': 'Выключить микрофон',
    'biz.unmute': 'Включить микрофон',
    'biz.camera.denied': 'Нет доступа к камере. Разрешите доступ в настройках браузера и обновите страницу.',
    'biz.geo.denied': 'Нет доступа к геолокации. Разрешите её в настройках браузера — без неё проверка может быть признана недействительной.',
    'biz.spoof': 'Похоже, ваше местоположение подменено. Отключите приложения для подмены геолокации (fake GPS, mock location) и режим разработчика, затем обновите страницу.',
    'biz.finished': 'Проверка завершена. Спасибо! Запись и результаты будут доступны вам позже.',
    'biz.you': 'Вы',
    'biz.waiting': 'Вы подключены. Инспектор скоро начнёт проверку — держите телефон под рукой.',
    'biz.location': 'Геолокация',

    'review.title': 'Запись проверки',
    'review.chapters': 'Пункты проверки',
    'review.chapters.hint': 'Клавиши: N или ↓ — следующий пункт, P или ↑ — предыдущий, пробел — пауза.',
    'review.timeline': 'Шкала времени',
    'review.events': 'Журнал событий',
    'review.download.video': 'Скачать запись',
    'review.download.log': 'Скачать журнал событий',
    'review.download.vtt': 'Главы (WebVTT)',
    'review.not_ready': 'Запись ещё не готова.',
    'review.no_id': 'Не указана проверка.',
    'review.prev': 'Предыдущий пункт',
    'review.next': 'Следующий пункт',
    'review.duration': 'Длительность {t}',
    'review.sha256': 'SHA-256',

    'event.join': 'подключился',
    'event.leave': 'отключился',
    'event.start': 'начал проверку',
    'event.finish': 'завершил проверку',
    'event.attach_evidence': 'приложил материалы',
    'event.request_photo': 'запросил фото',

    'evidence.title': 'Материалы',
    'evidence.request': 'Фото',
    'evidence.request.label': 'Запросить фото пункта {n} с телефона',
    'evidence.requested': 'Фото запрошено',
    'evidence.take': 'Сфотографировать',
    'evidence.take.label': 'Сфотографировать пункт {n}',
    'evidence.requested.biz': 'Инспектор просит фото пункта {n} — наведите камеру, снимок будет сделан автоматически',
    'evidence.sent': 'Фото отправлено инспектору',
    'evidence.failed': 'Не удалось отправить фото: {code}',
    'evidence.kind.photo': 'Фото',
    'evidence.kind.clip': 'Видеофрагмент',
    'evidence.kind.still': 'Кадр записи',
    'evidence.open': 'Открыть в полном размере: {what}',
    'evidence.by.server': 'сервер (из записи)',
    'evidence.sha256': 'SHA-256 {h}',
    'evidence.download': 'Скачать',
    'review.evidence': 'Фото и видео нарушений',
    'review.evidence.none': 'Фото и видеофрагментов нет.',
    'role.inspector': 'инспектор',
    'role.business': 'контролируемое лицо',
    'role.observer': 'наблюдатель',
    'device.desktop': 'компьютер',
    'device.phone': 'телефон',
    'device.tablet': 'планшет',
    'error.network': 'Нет связи с сервером',
    'error.unauthenticated': 'Требуется вход',
  },
  en: {
    'app.name': 'Inspector',
    'lang.switch': 'Русский',
    'lang.switch.label': 'Переключить интерфейс на русский',
    'common.loading': 'Loading…',
    'common.error': 'Error',
    'common.retry': 'Retry',
    'common.close': 'Close',
    'common.copy': 'Copy',
    'common.copied': 'Copied',
    'common.back': 'Back',
    'common.skip': 'Skip to content',
    'common.none': 'none',
    'common.unknown': 'unknown',

    'result.compliant': 'Compliant',
    'result.violation': 'Violation',
    'result.not_applicable': 'Not applicable',
    'result.unanswered': 'Unanswered',
    'result.group': 'Result for item {n}',
    'checklist.title': 'Checklist',
    'checklist.empty': 'Inspection without a checklist',
    'checklist.comment': 'Comment',
    'checklist.notes': 'Comment and violation description',
    'checklist.comment.placeholder': 'Comment on this item',
    'checklist.violation': 'Violation description',
    'checklist.violation.placeholder': 'What exactly is violated',
    'checklist.requirement': 'Requirement',
    'checklist.progress': '{done} of {total} answered',
    'checklist.save': 'Save',
    'checklist.saved': 'Saved',

    'conn.connecting': 'Connecting…',
    'conn.open': 'Connected',
    'conn.reconnecting': 'Connection lost, reconnecting in {s} s…',
    'conn.closed': 'Disconnected',
    'conn.resumed': 'Connection restored',
    'quality.label': 'Connection quality',
    'quality.good': 'good',
    'quality.fair': 'fair',
    'quality.poor': 'poor',
    'quality.none': 'no video',

    'login.title': 'Staff sign-in',
    'login.username': 'Username',
    'login.password': 'Password',
    'login.submit': 'Sign in',
    'login.bad_credentials': 'Wrong username or password',
    'login.too_many_attempts': 'Too many attempts, please wait',
    'nav.logout': 'Sign out',
    'nav.list': 'Inspections',
    'nav.new': 'New inspection',

    'list.title': 'Inspections',
    'list.filter.status': 'Status',
    'list.filter.all': 'All',
    'list.filter.q': 'Search',
    'list.filter.q.placeholder': 'Title, INN, address',
    'list.empty': 'No inspections',
    'list.col.title': 'Inspection',
    'list.col.business': 'Business',
    'list.col.scheduled': 'Scheduled',
    'list.col.status': 'Status',
    'list.col.actions': 'Actions',
    'list.open': 'Open',
    'list.review': 'Recording',

    'status.scheduled': 'Scheduled',
    'status.live': 'Live',
    'status.finished': 'Finished',
    'status.signed': 'Signed',
    'status.cancelled': 'Cancelled',

    'kind.control': 'Control event',
    'kind.preventive': 'Preventive visit',
    'mode.remote': 'Remote (video)',
    'mode.on_site': 'On site',

    'create.title': 'New inspection',
    'create.kind': 'Kind',
    'create.mode': 'Mode',
    'create.remote': 'Remote inspection over video',
    'create.name': 'Title',
    'create.template': 'Checklist',
    'create.template.none': 'No checklist',
    'create.business': 'Inspected business',
    'create.business.name': 'Name',
    'create.business.inn': 'INN (tax number)',
    'create.business.address': 'Site address',
    'create.business.lat': 'Site latitude',
    'create.business.lon': 'Site longitude',
    'create.scheduled': 'Start date and time',
    'create.submit': 'Create and invite',
    'invite.title': 'Invitation for the business',
    'invite.hint': 'Send the link or show the QR code. It opens in the phone browser, no app needed.',
    'invite.link': 'Invitation link',
    'invite.qr': 'Invitation QR code',
    'invite.expires': 'Valid until {t}',
    'invite.new': 'New link',
    'invite.open_room': 'Go to the inspection',

    'room.video': 'Video from the site',
    'room.waiting': 'Waiting for the business to join…',
    'room.mic.on': 'Microphone on',
    'room.mic.off': 'Microphone off',
    'room.mic.toggle': 'Turn the microphone on or off',
    'room.start': 'Start inspection',
    'room.finish': 'Finish inspection',
    'room.finish.confirm': 'Finish the inspection? Results cannot be changed afterwards.',
    'room.finished': 'Inspection finished',
    'room.participants': 'Participants',
    'room.participants.none': 'Nobody yet',
    'room.events': 'Event log',
    'room.invite': 'Invite',
    'room.review': 'Open recording',
    'room.online': 'online',
    'room.offline': 'offline',

    'geo.coords': 'Coordinates',
    'geo.accuracy': 'Accuracy ±{m} m',
    'geo.distance': '{d} from the site',
    'geo.trusted': 'Location trusted',
    'geo.suspicious': 'Location questionable',
    'geo.untrusted': 'Location spoofing suspected',
    'geo.unknown': 'No location data',
    'geo.denied': 'Location permission denied',
    'geo.no_fix': 'No location fix',

    'biz.title': 'Remote inspection',
    'biz.intro': 'The inspector will run the inspection over video. You show the premises with your phone camera, the inspector marks the checklist items, and you see every result immediately.',
    'biz.what.title': 'What will happen',
    'biz.what.1': 'Your phone connects to the inspector; the call is recorded.',
    'biz.what.2': 'The inspector asks you to show rooms and documents — use the main (rear) camera.',
    'biz.what.3': 'The result of every item appears on your screen.',
    'biz.perm.title': 'Permissions needed',
    'biz.perm.camera': 'Camera — so the inspector can see the site.',
    'biz.perm.mic': 'Microphone — to talk to the inspector.',
    'biz.perm.geo': 'Location — to confirm you are at the site.',
    'biz.start': 'Allow and connect',
    'biz.invalid': 'The invitation link is not valid.',
    'biz.expired': 'The invitation has expired or was revoked. Ask the inspector for a new link.',
    'biz.camera.switch': 'Switch camera',
    'biz.torch': 'Torch',
    'biz.zoom': 'Zoom',
    'biz.mute': 'Mute microphone',
    'biz.unmute': 'Unmute microphone',
    'biz.camera.denied': 'No camera access. Allow it in the browser settings and reload the page.',
    'biz.geo.denied': 'No location access. Allow it in the browser settings — without it the inspection may be declared invalid.',
    'biz.spoof': 'Your location looks spoofed. Turn off location-spoofing apps (fake GPS, mock location) and developer mode, then reload the page.',
    'biz.finished': 'The inspection is finished. Thank you! The recording and results will be available to you later.',
    'biz.you': 'You',
    'biz.waiting': 'You are connected. The inspector will start shortly — keep the phone at hand.',
    'biz.location': 'Location',

    'review.title': 'Inspection recording',
    'review.chapters': 'Checklist items',
    'review.chapters.hint': 'Keys: N or ↓ — next item, P or ↑ — previous, Space — pause.',
    'review.timeline': 'Timeline',
    'review.events': 'Event log',
    'review.download.video': 'Download recording',
    'review.download.log': 'Download event log',
    'review.download.vtt': 'Chapters (WebVTT)',
    'review.not_ready': 'The recording is not ready yet.',
    'review.no_id': 'No inspection given.',
    'review.prev': 'Previous item',
    'review.next': 'Next item',
    'review.duration': 'Duration {t}',
    'review.sha256': 'SHA-256',

    'event.join': 'joined',
    'event.leave': 'left',
    'event.start': 'started the inspection',
    'event.finish': 'finished the inspection',
    'event.attach_evidence': 'attached evidence',
    'event.request_photo': 'asked for a photo',

    'evidence.title': 'Evidence',
    'evidence.request': 'Photo',
    'evidence.request.label': 'Ask the phone for a photo of item {n}',
    'evidence.requested': 'Photo requested',
    'evidence.take': 'Take a photo',
    'evidence.take.label': 'Take a photo of item {n}',
    'evidence.requested.biz': 'The inspector asks for a photo of item {n} — point the camera, the picture is taken automatically',
    'evidence.sent': 'Photo sent to the inspector',
    'evidence.failed': 'Could not send the photo: {code}',
    'evidence.kind.photo': 'Photo',
    'evidence.kind.clip': 'Video clip',
    'evidence.kind.still': 'Recording still',
    'evidence.open': 'Open full size: {what}',
    'evidence.by.server': 'server (from the recording)',
    'evidence.sha256': 'SHA-256 {h}',
    'evidence.download': 'Download',
    'review.evidence': 'Photos and clips of violations',
    'review.evidence.none': 'No photos or clips.',
    'role.inspector': 'inspector',
    'role.business': 'business',
    'role.observer': 'observer',
    'device.desktop': 'computer',
    'device.phone': 'phone',
    'device.tablet': 'tablet',
    'error.network': 'Cannot reach the server',
    'error.unauthenticated': 'Sign-in required',
  },
};

/** The current language code, 'ru' unless the user chose English. */
export function getLang() {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    if (v === 'en' || v === 'ru') return v;
  } catch (_) { /* Storage can be blocked; Russian is the default then. */ }
  return 'ru';
}

/** Translate a key, substituting {name} placeholders from vars. */
export function t(key, vars) {
  const lang = getLang();
  let s = DICT[lang][key] ?? DICT.ru[key] ?? key;
  if (vars) {
    s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
  }
  return s;
}

/** Fill every data-i18n* attribute under root with the current language's text. */
export function applyI18n(root = document) {
  document.documentElement.lang = getLang();
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}

/** Switch language, persist it and re-render static and dynamic text. */
export function setLang(lang) {
  try { localStorage.setItem(STORAGE_KEY, lang); } catch (_) { /* Not persisted, still switched. */ }
  applyI18n();
  window.dispatchEvent(new CustomEvent('langchange', { detail: { lang } }));
}

/** Wire a button that toggles between Russian and English. */
export function bindLangSwitch(button) {
  button.addEventListener('click', () => setLang(getLang() === 'ru' ? 'en' : 'ru'));
}

/** Format an RFC 3339 time for display in the user's locale and time zone. */
export function formatTime(iso, opts = { dateStyle: 'medium', timeStyle: 'short' }) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(getLang() === 'ru' ? 'ru-RU' : 'en-GB', opts).format(d);
}

/** Format milliseconds as h:mm:ss or m:ss. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor((ms || 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** Format a distance in metres with a unit in the current language. */
export function formatDistance(m) {
  if (m === null || m === undefined || Number.isNaN(m)) return '—';
  const ru = getLang() === 'ru';
  if (m >= 1000) return `${(m / 1000).toFixed(m >= 10000 ? 0 : 1)} ${ru ? 'км' : 'km'}`;
  return `${Math.round(m)} ${ru ? 'м' : 'm'}`;
}
