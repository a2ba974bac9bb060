//! The command line of `songpei-server`: `serve`, `admin` and `report`, parsed with clap and
//! dispatched to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use songpei_server::Config;
use songpei_server::FileConfig;

/// songpei's district server.
#[derive(Debug, Parser)]
#[command(name = "songpei-server", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve phones' syncs (and the district office), on the embedded SQLite store or PostgreSQL.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "SONGPEI_LISTEN")]
        listen: Option<SocketAddr>,
        /// Folder of the database and keys [default: ./songpei-data].
        #[arg(long, env = "SONGPEI_DATA")]
        data: Option<PathBuf>,
        /// Documents kept loaded in memory [default: 256].
        #[arg(long, env = "SONGPEI_CACHE_DOCS")]
        cache_docs: Option<usize>,
        /// A TOML file with any of these settings (and `[limits]`, `[[policy]]`).
        #[arg(long, env = "SONGPEI_CONFIG")]
        config: Option<PathBuf>,
        /// Run on PostgreSQL (`postgres://user@host:port/db`) instead of SQLite in the data folder;
        /// several servers may share one database (the data folder's keys must be the same).
        #[arg(long, env = "SONGPEI_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// The district admin's commands, on this machine's data folder.
    Admin {
        /// Folder of the database and keys [default: ./songpei-data].
        #[arg(long, env = "SONGPEI_DATA", global = true)]
        data: Option<PathBuf>,
        /// The server's PostgreSQL database, when it runs on one.
        #[arg(long, env = "SONGPEI_DATABASE_URL", global = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Reports, made from this machine's data folder.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// The monthly report (月报) of the district.
    Monthly {
        /// Folder of the database and keys [default: ./songpei-data].
        #[arg(long, env = "SONGPEI_DATA")]
        data: Option<PathBuf>,
        /// Six-digit district code.
        #[arg(long)]
        district: String,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// xlsx, csv or json.
        #[arg(long, default_value = "xlsx")]
        format: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// The server's TOML configuration, for its `[[policy]]` table.
        #[arg(long, env = "SONGPEI_CONFIG")]
        config: Option<PathBuf>,
        /// The server's PostgreSQL database, when it runs on one.
        #[arg(long, env = "SONGPEI_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Sets up the district and prints the admin's one-time password.
    Init {
        /// Six-digit district code.
        #[arg(long)]
        district: String,
        /// District name.
        #[arg(long)]
        name: String,
    },
    /// Townships and villages.
    Village {
        #[command(subcommand)]
        command: VillageCommand,
    },
    /// Accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// A one-time enrollment code (and QR PNG) for a coordinator's or instructor's phone.
    EnrollCode {
        /// The account.
        #[arg(long)]
        username: String,
        /// Write the QR code to this PNG file.
        #[arg(long)]
        qr: Option<PathBuf>,
        /// The server address phones use, put in the QR code.
        #[arg(long)]
        server: Option<String>,
    },
    /// Enrolled phones.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Erases a trainee's personal data on request: from the server now, from every phone at its
    /// next sync. Attendance and payments stay under the trainee's id; the audit keeps the event.
    EraseTrainee {
        /// The trainee's id.
        #[arg(long)]
        trainee: String,
        /// Why (kept in the audit log; no personal data here).
        #[arg(long)]
        reason: String,
    },
    /// The database's encryption at rest.
    Database {
        #[command(subcommand)]
        command: DatabaseCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Call-back sampling (电话回访).
    Callbacks {
        #[command(subcommand)]
        command: CallbacksCommand,
    },
    /// Attendance records flagged for review (invalid proofs, replays, unverified times …).
    Flags {
        /// Only this class.
        #[arg(long)]
        class: Option<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// The district's card-signing key.
    CardKey {
        #[command(subcommand)]
        command: CardKeyCommand,
    },
    /// Print the trainee cards of a class on A4 sheets (PNG), names masked.
    Cards {
        /// Class id.
        #[arg(long)]
        class: String,
        /// The PNG to write; a second sheet goes to NAME-2.png, and so on.
        #[arg(long)]
        out: PathBuf,
        /// A font with Chinese characters [default: the system's].
        #[arg(long, env = "SONGPEI_FONT")]
        font: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum DatabaseCommand {
    /// Encrypts the database again under a new key (64 hex characters in a file, made for
    /// example by `openssl rand -hex 32`) and puts it where the server reads its key, the old key
    /// kept beside it as `….old`. Stop every server on the database first.
    Rekey {
        /// The new key.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CardKeyCommand {
    /// Withdraws the key in use and makes a new one (after cards were lost or stolen).
    Rotate,
}

#[derive(Debug, Subcommand)]
enum VillageCommand {
    /// Adds (or renames) a village; its township is the first nine digits of its code.
    Add {
        /// Twelve-digit village code.
        #[arg(long)]
        code: String,
        /// Village name.
        #[arg(long)]
        name: String,
        /// Township name.
        #[arg(long)]
        township_name: Option<String>,
    },
    /// Imports villages from a CSV file: `code,name[,township name]`; all rows or none.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Adds an account.
    Add {
        /// Login name.
        #[arg(long)]
        username: String,
        /// district_admin, district_viewer, coordinator or instructor.
        #[arg(long)]
        role: String,
        /// A village of a coordinator or instructor (repeat for several).
        #[arg(long = "village")]
        villages: Vec<String>,
    },
    /// Gives a district account a new one-time password and ends its dashboard sessions.
    ResetPassword {
        /// Login name.
        #[arg(long)]
        username: String,
    },
    /// Replaces a coordinator's or instructor's villages.
    Villages {
        /// Login name.
        #[arg(long)]
        username: String,
        /// A village (repeat for several).
        #[arg(long = "village", required = true)]
        villages: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Lists enrolled phones.
    List,
    /// Revokes a phone at once.
    Revoke {
        /// Device id.
        #[arg(long)]
        device: String,
    },
}

#[derive(Debug, Subcommand)]
enum CallbacksCommand {
    /// Draws the sample again under a call-back key and compares it with the call list; exit 1
    /// when they differ. An auditor given a copy of `callback.key` runs it on a copy of the data.
    Verify {
        /// The key (64 hex characters) [default: callback.key in the data folder].
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The rate, 0–1 [default: the rate the latest call was drawn at].
        #[arg(long)]
        rate: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Checks the hash chain; exit 1 with the first broken entry.
    Verify,
}

/// The TOML configuration file, if one is named; a file that cannot be read or is not valid ends
/// the command with exit code 2 and the reason.
fn file_config(path: Option<&std::path::Path>) -> Result<FileConfig, ExitCode> {
    path.map(FileConfig::read)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
}

fn admin(data: &songpei_server::StoreLocation, command: AdminCommand) -> ExitCode {
    use songpei_server::admin as a;
    let result = match command {
        AdminCommand::Init { district, name } => a::init(data, &district, &name),
        AdminCommand::Village {
            command:
                VillageCommand::Add {
                    code,
                    name,
                    township_name,
                },
        } => a::village_add(data, &code, &name, township_name.as_deref()),
        AdminCommand::Village {
            command: VillageCommand::Import { file },
        } => a::village_import(data, &file),
        AdminCommand::Account {
            command:
                AccountCommand::Add {
                    username,
                    role,
                    villages,
                },
        } => a::account_add(data, &username, &role, &villages),
        AdminCommand::Account {
            command: AccountCommand::Villages { username, villages },
        } => a::account_villages(data, &username, &villages),
        AdminCommand::Account {
            command: AccountCommand::ResetPassword { username },
        } => a::reset_password(data, &username),
        AdminCommand::EnrollCode {
            username,
            qr,
            server,
        } => a::enroll_code(data, &username, qr.as_deref(), server.as_deref()),
        AdminCommand::Device {
            command: DeviceCommand::List,
        } => a::device_list(data),
        AdminCommand::Device {
            command: DeviceCommand::Revoke { device },
        } => a::device_revoke(data, &device),
        AdminCommand::EraseTrainee { trainee, reason } => a::erase_trainee(data, &trainee, &reason),
        AdminCommand::Database {
            command: DatabaseCommand::Rekey { new_key_file },
        } => a::database_rekey(data, &new_key_file),
        AdminCommand::Audit {
            command: AuditCommand::Verify,
        } => a::audit_verify(data),
        AdminCommand::Callbacks {
            command: CallbacksCommand::Verify { key_file, rate },
        } => a::callbacks_verify(data, key_file.as_deref(), rate),
        AdminCommand::Flags { class, json } => a::flags(data, class.as_deref(), json),
        AdminCommand::CardKey {
            command: CardKeyCommand::Rotate,
        } => a::card_key_rotate(data),
        AdminCommand::Cards { class, out, font } => a::cards(data, &class, &out, font.as_deref()),
    };
    match result {
        Ok(o) => {
            print!("{}", o.out);
            ExitCode::from(o.code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one command line.
pub(crate) fn run(cli: Cli) -> ExitCode {
    let (listen, data, cache_docs, config, database_url) = match cli.command {
        Command::Serve {
            listen,
            data,
            cache_docs,
            config,
            database_url,
        } => (listen, data, cache_docs, config, database_url),
        Command::Admin {
            data,
            database_url,
            command,
        } => {
            let at = songpei_server::StoreLocation {
                data: data.unwrap_or_else(|| songpei_server::Config::default().data),
                database_url,
            };
            return admin(&at, command);
        }
        Command::Report {
            command:
                ReportCommand::Monthly {
                    data,
                    district,
                    month,
                    format,
                    out,
                    config,
                    database_url,
                },
        } => {
            let file = match file_config(config.as_deref()) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let config = Config::resolve(None, data, None, database_url, file);
            let report = songpei_server::write_monthly_report(
                &songpei_server::StoreLocation::of(&config),
                &district,
                &month,
                &format,
                &out,
                &config.policy,
            );
            return match report {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    let file = match file_config(config.as_deref()) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let config = Config::resolve(listen, data, cache_docs, database_url, file);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%addr, data = %config.data.display(), "songpei-server listening");
        // One line on stdout that scripts and tests wait for.
        println!("listening on http://{addr}");
        match songpei_server::run(config, listener, shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
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
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
