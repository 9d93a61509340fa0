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
    'role.inspector': 'инспектор',
    'role.business': 'контролируемое лицо',
    'role.observer': 'наблюдатель',
    'device.desktop': 'компьютер',
    'device.phone': 'телефон',
    'device.tablet': 'планшет',
    'error.network': 'Нет связи с сервером',
    'error.unauthenticated': 'Требуется вход',

    'event.cancel': 'отменил проверку',
    'event.location_unavailable': 'нет координат',
    'event.verdict': 'оценка местоположения',
    'cancel.business_absent': 'контролируемое лицо не вышло на связь',
    'cancel.technical_failure': 'технический сбой',
    'cancel.rescheduled': 'перенесена',
    'cancel.withdrawn': 'отменена контрольным органом',
    'cancel.other': 'другая причина',
    'leave.closed': 'соединение закрыто',
    'leave.timeout': 'нет связи',
    'leave.server_restart': 'перезапуск сервера',
    'room.cancelled': 'Проверка отменена',
    'biz.cancelled': 'Проверка отменена. Инспектор свяжется с вами.',
    'nofix.permission_denied': 'доступ запрещён',
    'nofix.unavailable': 'местоположение недоступно',
    'nofix.timeout': 'время ожидания истекло',
    'nofix.awaiting_fix': 'ожидание первых координат',
    'nofix.none': 'причина не указана',

    'signal.no_fix.denied': 'Доступ к геолокации запрещён, поэтому местоположение не подтверждено. Разрешите сайту доступ к местоположению.',
    'signal.no_fix.lost': 'Устройство не может определить местоположение ({reason}); последние координаты получены {s} с назад.',
    'signal.no_fix.none_yet': 'Местоположение ещё не получено ({reason}).',
    'signal.impossible_speed': 'Перемещение на {km} км за {s} с ({kmh} км/ч с учётом заявленной точности) — {why}.',
    'signal.impossible_speed.spoofed': 'быстрее любого транспорта, включая самолёт; координаты, вероятно, подменены',
    'signal.impossible_speed.suspicious': 'быстрее автомобиля или поезда; это сбой GPS или подмена координат',
    'signal.frozen_position': 'Одни и те же координаты и точность ({acc} м) пришли {n} раз подряд за {s} с.',
    'signal.frozen_position.info': 'Такая точность означает определение по Wi-Fi или сотовой сети, где повторы нормальны; не учитывается.',
    'signal.frozen_position.mock': 'Настоящие спутниковые координаты «гуляют» на несколько метров, даже когда телефон лежит неподвижно; застывшая точка характерна для программ подмены местоположения.',
    'signal.accuracy_too_good': 'Заявленная точность {acc} м; телефоны не определяют положение точнее ~1 м, а в помещении — тем более. Программы подмены часто сообщают 0 или 1 м.',
    'signal.accuracy_constant': 'Точность была ровно {acc} м во всех {n} замерах за {s} с.',
    'signal.accuracy_constant.network': 'Такая точность означает определение по Wi-Fi или сотовой сети, где круглые значения обычны; не учитывается.',
    'signal.accuracy_constant.ios': 'iOS округляет точность до фиксированных значений, поэтому это лишь отмечено.',
    'signal.accuracy_constant.mock': 'Настоящий приёмник сообщает меняющуюся дробную точность; постоянное круглое значение характерно для программ подмены.',
    'signal.coarse_fix': 'Точность {acc} м: положение определено по сотовой сети или IP-адресу, а не по спутникам.',
    'signal.clock_skew': 'Часы устройства {dir} на {s} с (медиана по {n} замерам). Телефоны берут время из сети; большое расхождение говорит о вручную выставленных часах или о воспроизведении записанных координат.',
    'signal.clock_skew.behind': 'отстают от сервера',
    'signal.clock_skew.ahead': 'спешат относительно сервера',
    'signal.clock_skew.hours': 'Расхождение близко к целому числу часов ({h}) — так бывает, когда часовой пояс и время выставлены вручную.',
    'signal.timezone_unknown.missing': 'Браузер не сообщил часовой пояс; проверка пояса пропущена.',
    'signal.timezone_unknown.unknown': 'Неизвестный часовой пояс браузера «{tz}»; проверка пояса пропущена.',
    'signal.timezone_mismatch': 'Часовой пояс браузера — {browser} (UTC{bo}), а переданные координаты находятся в поясе {zone} (UTC{zo}). Телефон обычно берёт пояс из сотовой сети там, где находится на самом деле; координаты в другом поясе указывают на подмену.',
    'signal.far_from_site': 'Местоположение в {d} от объекта проверки (точность {acc} м, допустимый радиус {r} м).',
    'signal.site_unconfirmed': 'Точность {acc} м слишком низкая, чтобы подтвердить нахождение в радиусе {r} м от объекта (до объекта {d}).',
    'signal.on_site': 'В {d} от объекта проверки (точность {acc} м).',
    'signal.automation': 'Браузером управляет программа автоматизации ({list}); такому браузеру можно задать любые координаты.',
    'signal.emulator': 'Признаки эмулятора телефона ({list}); в эмуляторе местоположение задаётся вручную.',
    'signal.emulator.user_agent': 'строка браузера: {v}',
    'signal.emulator.hint': 'признак страницы: {v}',
    'signal.emulator.platform': 'платформа: {v}',
    'signal.platform_mismatch': 'Браузер представляется телефоном {os}, но работает на платформе {platform}; так выглядит эмуляция устройства в настольном браузере.',
    'signal.desktop_browser': 'Настольный браузер: его местоположение определяется по Wi-Fi или IP-адресу, а не по спутникам.',
    'signal.client_hint': 'Браузер сообщил дополнительные признаки: {list}.',
    'unit.m': 'м',
    'unit.km': 'км',
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
    'role.inspector': 'inspector',
    'role.business': 'business',
    'role.observer': 'observer',
    'device.desktop': 'computer',
    'device.phone': 'phone',
    'device.tablet': 'tablet',
    'error.network': 'Cannot reach the server',
    'error.unauthenticated': 'Sign-in required',

    'event.cancel': 'cancelled the inspection',
    'event.location_unavailable': 'no position',
    'event.verdict': 'location assessment',
    'cancel.business_absent': 'the business did not join',
    'cancel.technical_failure': 'technical failure',
    'cancel.rescheduled': 'rescheduled',
    'cancel.withdrawn': 'called off by the control body',
    'cancel.other': 'other reason',
    'leave.closed': 'connection closed',
    'leave.timeout': 'connection lost',
    'leave.server_restart': 'server restart',
    'room.cancelled': 'Inspection cancelled',
    'biz.cancelled': 'The inspection was cancelled. The inspector will contact you.',
    'nofix.permission_denied': 'access denied',
    'nofix.unavailable': 'position unavailable',
    'nofix.timeout': 'timed out',
    'nofix.awaiting_fix': 'waiting for the first fix',
    'nofix.none': 'no reason given',

    'signal.no_fix.denied': 'Access to geolocation was denied, so the position is not confirmed. Allow this site to use your location.',
    'signal.no_fix.lost': 'The device cannot determine its position ({reason}); the last fix arrived {s} s ago.',
    'signal.no_fix.none_yet': 'No position has been received yet ({reason}).',
    'signal.impossible_speed': 'Moved {km} km in {s} s ({kmh} km/h after allowing for the reported accuracy) — {why}.',
    'signal.impossible_speed.spoofed': 'faster than any vehicle, aircraft included; the position was most likely injected',
    'signal.impossible_speed.suspicious': 'faster than any car or train; a GPS glitch or a spoofed position',
    'signal.frozen_position': 'The same coordinates and accuracy ({acc} m) arrived {n} times in a row over {s} s.',
    'signal.frozen_position.info': 'Such accuracy means Wi-Fi or cell positioning, which legitimately repeats; not counted.',
    'signal.frozen_position.mock': 'Real satellite fixes wander by a few metres even when the phone lies still; a frozen position is typical of a mock-location app.',
    'signal.accuracy_too_good': 'Reported accuracy {acc} m; phones do not locate themselves better than about 1 m, indoors never. Mock-location apps often report 0 or 1 m.',
    'signal.accuracy_constant': 'Accuracy was exactly {acc} m in all {n} fixes over {s} s.',
    'signal.accuracy_constant.network': 'Such accuracy means Wi-Fi or cell positioning, where round values are common; not counted.',
    'signal.accuracy_constant.ios': 'iOS rounds accuracy to fixed steps, so this is only noted.',
    'signal.accuracy_constant.mock': 'A real receiver reports a varying fractional accuracy; a fixed round value is typical of mock-location apps.',
    'signal.coarse_fix': 'Accuracy {acc} m: the position comes from the cell network or the IP address, not from satellites.',
    'signal.clock_skew': 'The device clock is {s} s {dir} the server (median of {n} fixes). Phones take their time from the network; a large difference suggests a hand-set clock or replayed positions.',
    'signal.clock_skew.behind': 'behind',
    'signal.clock_skew.ahead': 'ahead of',
    'signal.clock_skew.hours': 'The difference is close to a whole number of hours ({h}), which is what a hand-set time zone and clock produce.',
    'signal.timezone_unknown.missing': 'The browser did not report its time zone; the time-zone check was skipped.',
    'signal.timezone_unknown.unknown': 'Unknown browser time zone "{tz}"; the time-zone check was skipped.',
    'signal.timezone_mismatch': "The browser's time zone is {browser} (UTC{bo}), but the reported position lies in {zone} (UTC{zo}). A phone normally takes its zone from the mobile network where it really is; a position in another zone points to spoofing.",
    'signal.far_from_site': 'The position is {d} from the inspection site (accuracy {acc} m, allowed radius {r} m).',
    'signal.site_unconfirmed': 'Accuracy {acc} m is too coarse to confirm presence within {r} m of the site (the fix is {d} away).',
    'signal.on_site': 'Within {d} of the inspection site (accuracy {acc} m).',
    'signal.automation': 'The browser is driven by automation software ({list}); such a browser can be given any position at will.',
    'signal.emulator': "Signs of a phone emulator ({list}); an emulator's location is set by hand.",
    'signal.emulator.user_agent': 'user agent: {v}',
    'signal.emulator.hint': 'page hint: {v}',
    'signal.emulator.platform': 'platform: {v}',
    'signal.platform_mismatch': 'The browser claims to be an {os} phone but runs on platform {platform}; this is what device emulation in a desktop browser looks like.',
    'signal.desktop_browser': 'A desktop browser: its position comes from Wi-Fi or the IP address, not from satellites.',
    'signal.client_hint': 'The browser reported additional hints: {list}.',
    'unit.m': 'm',
    'unit.km': 'km',
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

/** Translate a key in the current language, substituting {name} placeholders from vars. */
export function t(key, vars) {
  return translate(getLang(), key, vars);
}

/** Translate a key in the given language ('ru' or 'en'). */
export function translate(lang, key, vars) {
  let s = DICT[lang]?.[key] ?? DICT.ru[key] ?? key;
  if (vars) {
    s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
  }
  return s;
}

/** Whether a key has a text in the given language. */
export function hasText(lang, key) {
  return DICT[lang]?.[key] !== undefined;
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
