//! The `inspector` command: serve, migrate, manage users, audit event logs, back up and
//! restore.

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use signaling::auth::Role;
use signaling::config::{Config, ServeArgs};
use signaling::{db, users, Application};

#[derive(Parser)]
#[command(
    name = "inspector",
    version,
    about = "Remote inspections over live video"
)]
struct Cli {
    /// Log format.
    #[arg(long, env = "INSPECTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServeArgs),
    /// Check or export an inspection's hash-chained event log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Copy the database, recordings, evidence and keys into a new directory while the
    /// server runs (SQLite: VACUUM INTO; PostgreSQL: pg_dump).
    Backup {
        /// The backup directory (absent or empty; not inside the data directory).
        #[arg(long)]
        out: std::path::PathBuf,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Restore a backup into an empty data directory and a new database, checking every
    /// hash first; then apply newer migrations.
    Restore {
        /// The backup directory made by `inspector backup`.
        #[arg(long)]
        from: std::path::PathBuf,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Check an evidence bundle offline (no server, no database).
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Manage staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        db: ServeArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the chain and re-hash every evidence blob; exit 0 if all is intact, 1
    /// naming the first broken link or each missing or altered blob.
    Verify {
        /// Inspection id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        inspection: Option<uuid::Uuid>,
        /// Every inspection in the database: one line each, exit 1 if any is broken.
        #[arg(long)]
        all: bool,
    },
    /// Print the event log as JSON Lines.
    Export {
        /// Inspection id.
        inspection: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Check every hash, the hash chain against the head printed in the act, and every
    /// signature; exit 0 if all match, 1 naming the first thing that does not.
    Verify {
        /// The bundle (ZIP) downloaded from the server.
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from INSPECTOR_PASSWORD or standard input.
    Add {
        /// Login name.
        username: String,
        /// Role.
        #[arg(long, value_enum)]
        role: Role,
        /// Shown name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List accounts.
    List,
    /// Disable an account and end its sessions.
    Disable {
        /// Login name or id.
        username: String,
    },
    /// Link an account to a subject of the identity provider (`[oidc]`), so that it signs in
    /// there even with just-in-time provisioning off.
    LinkOidc {
        /// Login name or id.
        username: String,
        /// The provider's `sub` of this person.
        #[arg(long)]
        subject: String,
        /// The provider's issuer [default: `oidc.issuer` of the configuration].
        #[arg(long)]
        issuer: Option<String>,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,webrtc=error,rtc=error,sqlx=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(Config::resolve(&args)?).await,
        Command::Migrate(args) => {
            let config = Config::resolve(&args)?;
            std::fs::create_dir_all(&config.data_dir)?;
            let pool = db::connect(&config.database_url).await?;
            db::migrate(&pool).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::User { command, db: args } => user(command, Config::resolve(&args)?).await,
        Command::Audit { command, db: args } => audit(command, Config::resolve(&args)?).await,
        Command::Backup { out, db: args } => {
            let s = signaling::backup::backup(&Config::resolve(&args)?, &out).await?;
            println!(
                "backup written to {}: database with {} inspections, {} files ({} bytes){}",
                out.display(),
                s.inspections,
                s.files,
                s.bytes,
                remote_note(s.remote_blobs)
            );
            Ok(())
        }
        Command::Restore { from, db: args } => {
            let config = Config::resolve(&args)?;
            let s = signaling::backup::restore(&config, &from).await?;
            println!(
                "restored into {}: database with {} inspections, {} files ({} bytes){}",
                config.data_dir.display(),
                s.inspections,
                s.files,
                s.bytes,
                remote_note(s.remote_blobs)
            );
            println!(
                "check it: inspector audit verify --all --data-dir {}",
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Bundle {
            command: BundleCommand::Verify { file },
        } => match signaling::act::bundle::verify(&file) {
            Ok(v) => {
                println!(
                    "bundle of inspection {} verified: {} files, {} events, head {}",
                    v.inspection_id, v.files, v.events, v.head_hash
                );
                println!(
                    "signed by: {}",
                    if v.signed_by.is_empty() {
                        "nobody".to_string()
                    } else {
                        v.signed_by.join(", ")
                    }
                );
                for r in &v.refused_by {
                    println!("refused: {r}");
                }
                println!("CA certificate SHA-256: {}", v.ca_fingerprint);
                Ok(())
            }
            Err(m) => {
                println!("MISMATCH: {m}");
                std::process::exit(1);
            }
        },
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let state = app.state().clone();
    if users::count_users(&state.db).await? == 0 {
        tracing::warn!("no users yet");
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "inspector".into());
        eprintln!(
            "\nNo accounts exist yet. Create the first administrator in another terminal:\n  \
             {exe} user add admin --role admin --data-dir {}\n",
            state.config.data_dir.display()
        );
    }
    eprintln!("Inspector is running. Open {}/", state.config.public_url);
    tracing::info!(url = %state.config.public_url, "listening");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}

async fn user(command: UserCommand, config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    match command {
        UserCommand::Add {
            username,
            role,
            name,
        } => {
            let password = match std::env::var("INSPECTOR_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    if std::io::stdin().is_terminal() {
                        eprint!("Password for {username} (at least 10 characters): ");
                    }
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let user = users::create_user(
                &pool,
                users::NewUser {
                    username,
                    display_name: name,
                    role,
                    password,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} ({}) with role {}",
                user.username,
                user.id,
                user.role.as_str()
            );
        }
        UserCommand::List => {
            for u in users::list_users(&pool)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!(
                    "{}\t{}\t{}\t{}{}",
                    u.id,
                    u.username,
                    u.role.as_str(),
                    u.display_name,
                    if u.disabled { "\t(disabled)" } else { "" }
                );
            }
        }
        UserCommand::Disable { username } => {
            // On PostgreSQL the running nodes hear of it and close its sockets at once.
            let bus = signaling::signals::bus_for(&pool, &config.database_url)?;
            if users::disable_user(&pool, bus.as_ref(), &username)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!("disabled {username}");
            } else {
                anyhow::bail!("no user {username}");
            }
        }
        UserCommand::LinkOidc {
            username,
            subject,
            issuer,
        } => {
            let Some(issuer) = issuer.or(config.oidc.issuer.clone()) else {
                anyhow::bail!("no issuer: pass --issuer or configure [oidc] issuer");
            };
            if signaling::oidc::link(&pool, &username, &issuer, &subject)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!("linked {username} to {subject} at {issuer}");
            } else {
                anyhow::bail!("no user {username}");
            }
        }
    }
    Ok(())
}

async fn audit(command: AuditCommand, config: Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    match command {
        AuditCommand::Verify { inspection, all } => {
            let blobs = signaling::blobs::BlobStore::open(&config.blob, &config.blobs_dir())?;
            if all {
                let ids: Vec<String> =
                    sqlx::query_scalar("SELECT id FROM inspections ORDER BY created_at, id")
                        .fetch_all(&pool)
                        .await?;
                let mut broken = 0usize;
                for id in &ids {
                    let id: uuid::Uuid = id.parse()?;
                    let (lines, first) = verify_one(&pool, &blobs, &config, id).await?;
                    match first {
                        None => println!("{id}: OK ({})", lines.first().map_or("", String::as_str)),
                        Some(code) => {
                            broken += 1;
                            println!("{id}: BROKEN {code}");
                            for l in &lines {
                                println!("  {l}");
                            }
                        }
                    }
                }
                if broken > 0 {
                    println!("{broken} of {} inspections BROKEN", ids.len());
                    std::process::exit(1);
                }
                println!("OK: {} inspections intact", ids.len());
            } else {
                let id = inspection.expect("clap requires an inspection without --all");
                let (lines, first) = verify_one(&pool, &blobs, &config, id).await?;
                for l in &lines {
                    println!("{l}");
                }
                match first {
                    Some(code) => {
                        println!("FIRST BROKEN: {code}");
                        std::process::exit(1);
                    }
                    None => println!("OK"),
                }
            }
        }
        AuditCommand::Export { inspection } => {
            let mut out = tokio::io::stdout();
            checklist_sync::export_jsonl(&pool, inspection, &mut out).await?;
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
        }
    }
    Ok(())
}

fn remote_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("; {n} evidence objects in the remote store")
    }
}

/// One inspection's audit as lines of text, and the code of the first thing broken.
async fn verify_one(
    pool: &sqlx::AnyPool,
    blobs: &signaling::blobs::BlobStore,
    config: &Config,
    inspection: uuid::Uuid,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    let report = signaling::audit::verify_all(pool, blobs, config, inspection).await?;
    let chain = &report.base.chain;
    if chain.first_broken.is_none() {
        out.push(format!(
            "intact: {} events, head {}",
            chain.events,
            chain.head_hash.as_deref().unwrap_or("(empty log)")
        ));
    }
    out.push(match &report.last_checkpoint {
        Some((seq, hash)) => format!(
            "checkpoints: {} checked, the latest signs event {seq} (hash {hash}); {} events after it",
            report.checkpoints_checked, report.unanchored_events
        ),
        None => "checkpoints: none".into(),
    });
    out.push(match &report.recording {
        Some(r) => format!(
            "recording: {} logged at event {} (sha256 {}, {} bytes, {} ms)",
            r.file, r.seq, r.sha256, r.size, r.duration_ms
        ),
        None => "recording: none logged".into(),
    });
    out.push(match &report.act {
        signaling::act::audit::ActCheck::NoAct => "no act".into(),
        signaling::act::audit::ActCheck::Matches { seq } => {
            format!("the act's head (event {seq}) is in the log")
        }
        signaling::act::audit::ActCheck::Mismatch(why) => format!("BROKEN against the act: {why}"),
    });
    for f in &report.base.evidence_problems {
        out.push(format!(
            "EVIDENCE {:?} at seq {} (evidence {}, sha256 {})",
            f.problem, f.seq, f.evidence_id, f.sha256
        ));
    }
    if report.base.evidence_problems.is_empty() {
        out.push(format!(
            "evidence: {} blobs match their hashes",
            report.base.evidence_checked
        ));
    }
    // The prescriptions that follow the inspection up: their chains and proofs.
    let mut prescriptions_clean = true;
    for pid in signaling::prescriptions::log::of_inspection(pool, inspection)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        let p = signaling::prescriptions::log::verify(pool, blobs, pid).await?;
        out.push(match &p.chain.first_broken {
            None => format!(
                "prescription {pid}: intact, {} events, head {}; {} proofs match their hashes",
                p.chain.events,
                p.chain.head_hash.as_deref().unwrap_or("(empty log)"),
                p.proofs_checked - p.proof_problems.len()
            ),
            Some(b) => format!(
                "prescription {pid}: BROKEN at seq {}: {:?}",
                b.seq, b.reason
            ),
        });
        for f in &p.proof_problems {
            out.push(format!(
                "PROOF {:?} at seq {} (proof {}, sha256 {})",
                f.problem, f.seq, f.evidence_id, f.sha256
            ));
        }
        prescriptions_clean &= p.is_clean();
    }
    for f in &report.findings {
        out.push(format!("BROKEN {}: {}", f.code, f.message));
    }
    let first = match report.findings.first() {
        Some(f) => Some(f.code.to_string()),
        None if !prescriptions_clean => Some("prescription_broken".into()),
        None => None,
    };
    Ok((out, first))
}
