//! A real SMTP server for tests: Python's `aiosmtpd` (from PyPI, in the virtual environment
//! `scripts/test` makes under `.cache/`; its interpreter is `$AIOSMTPD_PYTHON`) on a free
//! loopback port, storing every message it accepts in a Maildir. Killed when dropped.
//! Messages are read back with `mailparse`, their calendars with `ical`: parsers of their
//! own, not the server's writers.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running SMTP server.
pub struct SmtpServer {
    child: Child,
    /// The port on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The `To` header.
    pub to: String,
    /// The decoded subject.
    pub subject: String,
    /// The decoded text part.
    pub text: String,
    /// The `text/calendar` attachment: its `method` parameter and decoded text.
    pub calendar: Option<(String, String)>,
    /// Other attachments: MIME type and decoded bytes.
    pub attachments: Vec<(String, Vec<u8>)>,
}

fn python() -> String {
    std::env::var("AIOSMTPD_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("probe port")?;
    Ok(l.local_addr()?.port())
}

impl SmtpServer {
    /// Starts aiosmtpd on a free port.
    pub async fn start() -> Result<SmtpServer> {
        SmtpServer::start_on(free_port()?).await
    }

    /// Starts aiosmtpd on `port` and waits until it answers. Fails (never skips) when
    /// aiosmtpd is missing.
    pub async fn start_on(port: u16) -> Result<SmtpServer> {
        let dir = tempfile::tempdir().context("maildir")?;
        let maildir = dir.path().join("mail");
        let log = std::fs::File::create(dir.path().join("smtpd.log"))?;
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn aiosmtpd (run ./scripts/test, or set AIOSMTPD_PYTHON)")?;
        let mut server = SmtpServer {
            child,
            port,
            maildir,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(server._dir.path().join("smtpd.log"))
                    .unwrap_or_default();
                bail!("aiosmtpd exited with {status}: {log}");
            }
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::AsyncReadExt;
                let mut greeting = [0u8; 3];
                if s.read_exact(&mut greeting).await.is_ok() && &greeting == b"220" {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("aiosmtpd did not answer on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Result<Vec<Mail>> {
        let new = self.maildir.join("new");
        let mut files = match std::fs::read_dir(&new) {
            Ok(rd) => rd
                .map(|e| Ok(e?.path()))
                .collect::<std::io::Result<Vec<_>>>()?,
            Err(_) => Vec::new(),
        };
        // Maildir names begin with the delivery time in seconds: sort by modification time,
        // then name, for a stable order.
        files.sort_by_key(|p| {
            (
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
                p.clone(),
            )
        });
        files.iter().map(|p| parse(&std::fs::read(p)?)).collect()
    }

    /// Waits (for IO, not for a state machine) until at least `n` messages have arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Mail>> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages()?;
            if m.len() >= n {
                return Ok(m);
            }
            if Instant::now() > deadline {
                bail!("expected {n} messages, have {}: {m:#?}", m.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(raw: &[u8]) -> Result<Mail> {
    let m = mailparse::parse_mail(raw).context("parse mail")?;
    use mailparse::MailHeaderMap;
    let to = m.headers.get_first_value("To").unwrap_or_default();
    let subject = m.headers.get_first_value("Subject").unwrap_or_default();
    let mut text = String::new();
    let mut calendar = None;
    let mut attachments = Vec::new();
    for part in m.parts() {
        let ct = &part.ctype;
        if ct.mimetype == "text/plain" && text.is_empty() {
            text = part.get_body()?;
        } else if ct.mimetype == "text/calendar" {
            let method = ct.params.get("method").cloned().unwrap_or_default();
            calendar = Some((method, part.get_body()?));
        } else if !ct.mimetype.starts_with("multipart/") && ct.mimetype != "text/plain" {
            attachments.push((ct.mimetype.clone(), part.get_body_raw()?));
        }
    }
    Ok(Mail {
        to,
        subject,
        text,
        calendar,
        attachments,
    })
}

/// The one event of an `.ics` text, parsed with `ical`: the calendar's properties and the
/// event's, by name (the value, and the parameters of DTSTART).
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    /// METHOD.
    pub method: String,
    /// X-WR-TIMEZONE.
    pub time_zone: Option<String>,
    /// UID.
    pub uid: String,
    /// SEQUENCE.
    pub sequence: u32,
    /// DTSTART in UTC (`YYYYMMDDTHHMMSSZ`): as written when it is UTC, else its local time
    /// converted with the offset of the calendar's own VTIMEZONE for its TZID.
    pub dtstart: String,
    /// DTSTART's TZID parameter (its VTIMEZONE is in the calendar, or parsing fails).
    pub dtstart_tzid: Option<String>,
    /// STATUS.
    pub status: String,
    /// URL.
    pub url: Option<String>,
}

/// Parses an `.ics` holding exactly one VEVENT.
pub fn parse_ics(text: &str) -> Result<ParsedEvent> {
    let mut reader = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let cal = reader
        .next()
        .context("no calendar")?
        .context("parse calendar")?;
    if reader.next().is_some() {
        bail!("more than one calendar");
    }
    let prop = |props: &[ical::property::Property], name: &str| {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
    };
    if cal.events.len() != 1 {
        bail!("expected one event, found {}", cal.events.len());
    }
    let ev = &cal.events[0];
    let start = ev
        .properties
        .iter()
        .find(|p| p.name == "DTSTART")
        .context("DTSTART")?;
    let value = start.value.clone().context("DTSTART value")?;
    let tzid = start.params.as_ref().and_then(|ps| {
        ps.iter()
            .find(|(k, _)| k == "TZID")
            .and_then(|(_, v)| v.first().cloned())
    });
    let dtstart = match &tzid {
        None => value,
        Some(tzid) => {
            let zone = cal
                .timezones
                .iter()
                .find(|z| prop(&z.properties, "TZID").as_deref() == Some(tzid.as_str()))
                .with_context(|| format!("no VTIMEZONE for TZID {tzid}"))?;
            let local = chrono::NaiveDateTime::parse_from_str(&value, "%Y%m%dT%H%M%S")
                .with_context(|| format!("local DTSTART {value}"))?;
            // The observance in effect: the latest onset at or before the local time.
            let mut best: Option<(chrono::NaiveDateTime, String)> = None;
            for t in &zone.transitions {
                let onset = prop(&t.properties, "DTSTART").context("observance DTSTART")?;
                let onset = chrono::NaiveDateTime::parse_from_str(&onset, "%Y%m%dT%H%M%S")
                    .with_context(|| format!("observance DTSTART {onset}"))?;
                let to = prop(&t.properties, "TZOFFSETTO").context("TZOFFSETTO")?;
                if onset <= local && best.as_ref().is_none_or(|(b, _)| onset > *b) {
                    best = Some((onset, to));
                }
            }
            let (_, to) = best.context("no observance before DTSTART")?;
            let (sign, hm) = to.split_at(1);
            let mins = hm[..2].parse::<i64>()? * 60 + hm[2..4].parse::<i64>()?;
            let mins = if sign == "-" { -mins } else { mins };
            (local - chrono::Duration::minutes(mins))
                .format("%Y%m%dT%H%M%SZ")
                .to_string()
        }
    };
    Ok(ParsedEvent {
        dtstart,
        dtstart_tzid: tzid,
        method: prop(&cal.properties, "METHOD").context("METHOD")?,
        time_zone: prop(&cal.properties, "X-WR-TIMEZONE"),
        uid: prop(&ev.properties, "UID").context("UID")?,
        sequence: prop(&ev.properties, "SEQUENCE")
            .context("SEQUENCE")?
            .parse()
            .context("SEQUENCE number")?,
        status: prop(&ev.properties, "STATUS").unwrap_or_default(),
        url: prop(&ev.properties, "URL"),
    })
}
