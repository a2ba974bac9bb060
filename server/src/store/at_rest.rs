//! The server's SQLite database at rest (ADR 0009): encrypted whole by SQLCipher — pages, WAL and
//! all — under a 256-bit key kept apart from the data folder, and private to the server's user.
//!
//! The key comes from `SONGPEI_DB_KEY` (64 hex characters), or else from the file named by
//! `SONGPEI_DB_KEY_FILE`, or else from `<data folder>.db.key` beside the data folder: a copy of
//! the data folder, which is what a backup takes by default, holds no key. The key file is made
//! on first start (mode 0600) when the database is new or still plain; a database encrypted under a
//! key that cannot be found is refused, never recreated. A plain database from an earlier release
//! is encrypted in place at start: exported whole into an encrypted copy, which replaces it.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// The database file in the data folder.
pub(crate) const DB_FILE: &str = "songpei-server.db";

/// The database's key. Its `Debug` hides it.
#[derive(Clone)]
pub struct DbKey([u8; 32]);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(…)")
    }
}

impl DbKey {
    /// A key from its bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The file a data folder's key is kept in by default: beside the folder, not in it.
    pub fn default_file(data: &Path) -> PathBuf {
        let absolute = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
        let name = absolute.file_name().map_or_else(
            || "songpei-data".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        absolute.with_file_name(format!("{name}.db.key"))
    }

    /// The key of the database in `data`: `SONGPEI_DB_KEY`, the file `SONGPEI_DB_KEY_FILE`, or
    /// [`Self::default_file`]; made there when the database is new or plain.
    pub fn resolve(data: &Path) -> Result<Self, String> {
        let what = format!("the database in {}", data.display());
        Self::resolve_for(data, is_encrypted(&data.join(DB_FILE)), &what)
    }

    /// The key of a database (`what`) that is already encrypted or not: looked for in the same
    /// places as [`Self::resolve`], and made only when the database is not encrypted yet.
    pub fn resolve_for(data: &Path, encrypted: bool, what: &str) -> Result<Self, String> {
        if let Ok(hex) = std::env::var("SONGPEI_DB_KEY")
            && !hex.trim().is_empty()
        {
            return parse(&hex).ok_or_else(|| "SONGPEI_DB_KEY is not 64 hex characters".into());
        }
        let file = std::env::var_os("SONGPEI_DB_KEY_FILE")
            .filter(|f| !f.is_empty())
            .map_or_else(|| Self::default_file(data), PathBuf::from);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                parse(&text).ok_or_else(|| format!("{} is not 64 hex characters", file.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if encrypted {
                    return Err(format!(
                        "{what} is encrypted, and its key is not at {}: give it in \
                         SONGPEI_DB_KEY_FILE or SONGPEI_DB_KEY",
                        file.display()
                    ));
                }
                let key: [u8; 32] = rand::random();
                match write_private(&file, format!("{}\n", hex::encode(key)).as_bytes()) {
                    Ok(()) => Ok(Self(key)),
                    // Another process (an admin command, a replica) made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::resolve_for(data, encrypted, what)
                    }
                    Err(e) => Err(format!("cannot write the key {}: {e}", file.display())),
                }
            }
            Err(e) => Err(format!("cannot read the key {}: {e}", file.display())),
        }
    }

    /// Where [`Self::resolve`] takes the key of the data folder `data` from: `None` when it is
    /// `SONGPEI_DB_KEY`, else the key file.
    pub fn file_of(data: &Path) -> Option<PathBuf> {
        if std::env::var("SONGPEI_DB_KEY").is_ok_and(|k| !k.trim().is_empty()) {
            return None;
        }
        Some(
            std::env::var_os("SONGPEI_DB_KEY_FILE")
                .filter(|f| !f.is_empty())
                .map_or_else(|| Self::default_file(data), PathBuf::from),
        )
    }

    /// Writes the key to `file` in place of what it held, whole or not at all (mode 0600).
    pub fn write_to(&self, file: &Path) -> std::io::Result<()> {
        let tmp = file.with_extension(format!("new{}", std::process::id()));
        std::fs::remove_file(&tmp).ok();
        write_private(&tmp, format!("{}\n", hex::encode(self.0)).as_bytes())?;
        std::fs::rename(&tmp, file)
    }

    /// Re-encrypts an open SQLite database under `new` (`PRAGMA rekey`).
    pub(crate) fn rekey(conn: &Connection, new: &DbKey) -> rusqlite::Result<()> {
        conn.execute_batch(&format!("PRAGMA rekey = {};", new.sql()))
    }

    /// A key read from a file (64 hex characters), such as a new key for rotation.
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the key {}: {e}", file.display()))?;
        parse(&text).ok_or_else(|| format!("{} is not 64 hex characters", file.display()))
    }

    /// What seals the sealed columns on PostgreSQL under this key.
    pub fn sealer(&self) -> crate::db::Sealer {
        crate::db::Sealer::new(&self.0)
    }

    /// The `PRAGMA key` / `KEY` value: the raw key, no derivation.
    fn sql(&self) -> String {
        format!("\"x'{}'\"", hex::encode(self.0))
    }

    /// Keys an open connection: its first statement. (Memory wiping is left off: the threat is a
    /// copy of the files, not the running process's memory.)
    pub fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "PRAGMA key = {}; PRAGMA cipher_memory_security = OFF;",
            self.sql()
        ))
    }
}

fn parse(text: &str) -> Option<DbKey> {
    hex::decode(text.trim()).ok()?.try_into().ok().map(DbKey)
}

/// Whether `path` is a database that is not plain SQLite (an encrypted one starts with random
/// bytes, a plain one with `SQLite format 3`). A missing or empty file is neither.
fn is_encrypted(path: &Path) -> bool {
    let mut head = [0u8; 16];
    match std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read(&mut head)
    }) {
        Ok(n) if n >= 16 => &head != b"SQLite format 3\0",
        _ => false,
    }
}

/// Writes a file readable by its owner only, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp).ok();
    linked
}

/// Makes the data folder and everything in it private to the server's user (0700 and 0600).
pub(crate) fn privatise(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let done = match entry.file_type() {
                Ok(t) if t.is_file() => {
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            match done {
                // Another process (a starting server, an admin command) removed it meanwhile:
                // a WAL checkpointed away, a temporary copy renamed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Opens the database in `dir` under `key`, creating it (0600) or encrypting a plain one in place.
pub(crate) fn open(dir: &Path, key: &DbKey) -> rusqlite::Result<Connection> {
    let path = dir.join(DB_FILE);
    if !path.exists() {
        // Created private, so its WAL and shared-memory files are too (SQLite gives them the
        // database file's mode).
        write_private(&path, b"").map_err(|e| cant_open(&e.to_string()))?;
    }
    if path.metadata().is_ok_and(|m| m.len() > 0) && !is_encrypted(&path) {
        // One process encrypts; another opening meanwhile (an admin command) waits, then finds
        // the database encrypted.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{DB_FILE}.lock")))
            .map_err(|e| cant_open(&e.to_string()))?;
        lock.lock().map_err(|e| cant_open(&e.to_string()))?;
        if !is_encrypted(&path) {
            encrypt_in_place(dir, key)?;
        }
        drop(lock);
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    key.apply(&conn)?;
    // A wrong key shows here, not at the first real query.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|_| {
            cant_open("the database's key is wrong: it does not open the encrypted database")
        })?;
    Ok(conn)
}

fn cant_open(why: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
        Some(why.to_owned()),
    )
}

/// Exports a plain database, WAL included, into an encrypted copy, which replaces it; the plain
/// file and its WAL are removed.
fn encrypt_in_place(dir: &Path, key: &DbKey) -> rusqlite::Result<()> {
    let path = dir.join(DB_FILE);
    let tmp = dir.join(format!("{DB_FILE}.encrypting"));
    std::fs::remove_file(&tmp).ok();
    {
        let plain = Connection::open(&path)?;
        plain.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let version: i64 = plain.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        write_private(&tmp, b"").map_err(|e| cant_open(&e.to_string()))?;
        let quoted = tmp.to_string_lossy().replace('\'', "''");
        plain.execute_batch(&format!(
            "ATTACH DATABASE '{quoted}' AS encrypted KEY {};
             SELECT sqlcipher_export('encrypted');
             PRAGMA encrypted.user_version = {version};
             DETACH DATABASE encrypted;",
            key.sql()
        ))?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| cant_open(&e.to_string()))?;
    std::fs::rename(&tmp, &path).map_err(|e| cant_open(&e.to_string()))?;
    for old in ["-wal", "-shm"] {
        std::fs::remove_file(dir.join(format!("{DB_FILE}{old}"))).ok();
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| cant_open(&e.to_string()))?;
    tracing::info!("the plain database was encrypted in place");
    Ok(())
}
