//! The message texts: built-in templates in Russian and English, which an administrator may
//! replace (`message_templates`, every change a new version), rendered with `{name}`
//! placeholders. Stored are the templates; words reach a message only when it is composed.

use std::collections::BTreeMap;

use sqlx::AnyPool;

use super::core::Purpose;
use crate::db::RowExt;
use crate::error::ApiResult;

/// A subject and a body with `{placeholders}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// The placeholders a template may use (anything else in braces is left as it is).
pub const PLACEHOLDERS: &[&str] = &[
    "check_link",
    "check",
    "title",
    "kind",
    "business",
    "inn",
    "address",
    "when",
    "zone",
    "inspector",
    "legal_basis",
    "control_body",
    "link",
    "lead",
    "update",
];

/// The built-in text of a purpose in a language (`ru` or `en`).
pub fn builtin(purpose: Purpose, language: &str) -> Template {
    let en = language == "en";
    let (subject, body) = match (purpose, en) {
        (Purpose::Notice, false) => (
            "{update}Уведомление о дистанционном мероприятии: {title}",
            "Здравствуйте!\n\n{control_body} уведомляет о проведении дистанционного \
             мероприятия.\n{update}\nЧто: {title} ({kind})\nКого: {business}, ИНН {inn}\n\
             Адрес: {address}\nКогда: {when} ({zone})\nИнспектор: {inspector}\n\
             Правовое основание: {legal_basis}\n\nСсылка для подключения: {link}\n{check}\n\
             Событие для календаря — во вложении (invite.ics).\n",
        ),
        (Purpose::Notice, true) => (
            "{update}Notice of a remote inspection: {title}",
            "Hello,\n\n{control_body} gives notice of a remote inspection.\n{update}\n\
             What: {title} ({kind})\nWho: {business}, INN {inn}\nAddress: {address}\n\
             When: {when} ({zone})\nInspector: {inspector}\nLegal basis: {legal_basis}\n\n\
             Join link: {link}\n{check}\nThe calendar event is attached (invite.ics).\n",
        ),
        (Purpose::Cancel, false) => (
            "Мероприятие отменено: {title}",
            "Здравствуйте!\n\nМероприятие «{title}» ({business}, ИНН {inn}), назначенное на \
             {when} ({zone}), отменено.\n",
        ),
        (Purpose::Cancel, true) => (
            "Cancelled: {title}",
            "Hello,\n\nThe inspection \"{title}\" ({business}, INN {inn}) planned for {when} \
             ({zone}) is cancelled.\n",
        ),
        (Purpose::Reminder, false) => (
            "Напоминание: {title} — {lead}",
            "Напоминаем: {lead} начнётся мероприятие «{title}» ({business}, ИНН {inn}).\n\
             Когда: {when} ({zone})\nИнспектор: {inspector}\n\nСсылка: {link}\n{check}",
        ),
        (Purpose::Reminder, true) => (
            "Reminder: {title} — {lead}",
            "A reminder: the inspection \"{title}\" ({business}, INN {inn}) begins {lead}.\n\
             When: {when} ({zone})\nInspector: {inspector}\n\nLink: {link}\n{check}",
        ),
    };
    Template {
        subject: subject.into(),
        body: body.into(),
    }
}

/// The words for "in N days/hours" of a reminder's offset.
pub fn lead(offset_secs: i64, language: &str) -> String {
    let en = language == "en";
    let (n, unit_ru, unit_en) = if offset_secs >= 86_400 && offset_secs % 86_400 == 0 {
        let n = offset_secs / 86_400;
        (
            n,
            plural_ru(n, "день", "дня", "дней"),
            if n == 1 { "day" } else { "days" },
        )
    } else if offset_secs >= 3600 && offset_secs % 3600 == 0 {
        let n = offset_secs / 3600;
        (
            n,
            plural_ru(n, "час", "часа", "часов"),
            if n == 1 { "hour" } else { "hours" },
        )
    } else if offset_secs >= 60 && offset_secs % 60 == 0 {
        let n = offset_secs / 60;
        (
            n,
            plural_ru(n, "минуту", "минуты", "минут"),
            if n == 1 { "minute" } else { "minutes" },
        )
    } else {
        let n = offset_secs.max(1);
        (
            n,
            plural_ru(n, "секунду", "секунды", "секунд"),
            if n == 1 { "second" } else { "seconds" },
        )
    };
    if en {
        format!("in {n} {unit_en}")
    } else {
        format!("через {n} {unit_ru}")
    }
}

fn plural_ru(n: i64, one: &'static str, few: &'static str, many: &'static str) -> &'static str {
    let (d, h) = (n % 10, n % 100);
    if d == 1 && h != 11 {
        one
    } else if (2..=4).contains(&d) && !(12..=14).contains(&h) {
        few
    } else {
        many
    }
}

/// Replaces each `{name}` of `values` in `text`.
pub fn render(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if values.contains_key(&after[..close]) => {
                out.push_str(&values[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The template in force: the newest stored version, else the built-in one.
pub async fn current(db: &AnyPool, purpose: Purpose, language: &str) -> ApiResult<Template> {
    let row = sqlx::query(
        "SELECT subject, body FROM message_templates WHERE purpose = $1 AND language = $2 \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(purpose.as_str())
    .bind(language)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some(r) => Template {
            subject: r.col(0)?,
            body: r.col(1)?,
        },
        None => builtin(purpose, language),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_braces_kept() {
        let mut v = BTreeMap::new();
        v.insert("title", "Склад {1}".to_string());
        v.insert("lead", "через 1 час".to_string());
        assert_eq!(
            render("{title}: {lead} {nope} {", &v),
            "Склад {1}: через 1 час {nope} {"
        );
    }

    #[test]
    fn leads_in_both_languages() {
        assert_eq!(lead(7 * 86_400, "ru"), "через 7 дней");
        assert_eq!(lead(86_400, "ru"), "через 1 день");
        assert_eq!(lead(3600, "ru"), "через 1 час");
        assert_eq!(lead(2 * 3600, "en"), "in 2 hours");
        assert_eq!(lead(120, "en"), "in 2 minutes");
        assert_eq!(lead(90, "ru"), "через 90 секунд");
        assert_eq!(lead(3, "ru"), "через 3 секунды");
    }

    #[test]
    fn every_builtin_uses_only_known_placeholders() {
        for p in [Purpose::Notice, Purpose::Cancel, Purpose::Reminder] {
            for l in ["ru", "en"] {
                let t = builtin(p, l);
                let all: BTreeMap<&str, String> =
                    PLACEHOLDERS.iter().map(|k| (*k, String::new())).collect();
                let text = render(&format!("{}{}", t.subject, t.body), &all);
                assert!(!text.contains('{'), "{p:?} {l}: {text}");
            }
        }
    }
}
