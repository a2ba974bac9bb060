//! The store key. On a phone the app keeps it in Android Keystore or iOS Keychain; on a laptop it
//! comes from `SONGPEI_KEY` (64 hex characters) or from a key file beside the store.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CliError;

const KEY_FILE: &str = "store.key";
const STORE_FILE: &str = "songpei.db";

/// Where the store file lives.
pub(crate) fn store_path(data: &Path) -> PathBuf {
    data.join(STORE_FILE)
}

fn key_file(data: &Path) -> PathBuf {
    data.join(KEY_FILE)
}

fn parse_hex_key(s: &str, source: &str) -> Result<[u8; 32], CliError> {
    let bytes = hex::decode(s.trim())
        .map_err(|_| CliError::usage(format!("{source} must be 64 hexadecimal characters")))?;
    bytes
        .try_into()
        .map_err(|_| CliError::usage(format!("{source} must be 64 hexadecimal characters")))
}

fn from_env() -> Result<Option<[u8; 32]>, CliError> {
    match std::env::var("SONGPEI_KEY") {
        Ok(v) if !v.trim().is_empty() => parse_hex_key(&v, "SONGPEI_KEY").map(Some),
        _ => Ok(None),
    }
}

/// The key of an existing store.
pub(crate) fn existing(data: &Path) -> Result<[u8; 32], CliError> {
    if let Some(k) = from_env()? {
        return Ok(k);
    }
    match std::fs::read_to_string(key_file(data)) {
        Ok(s) => parse_hex_key(&s, "the key file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::usage(format!(
            "no store key: set SONGPEI_KEY, or run init in {}",
            data.display()
        ))),
        Err(e) => Err(CliError::Io(e)),
    }
}

/// The key for a new store: `SONGPEI_KEY`, or a new random key written to a key file readable only
/// by its owner. Returns the key file's path when one was made.
pub(crate) fn for_new_store(data: &Path) -> Result<([u8; 32], Option<PathBuf>), CliError> {
    if let Some(k) = from_env()? {
        return Ok((k, None));
    }
    let path = key_file(data);
    if path.exists() {
        return Ok((existing(data)?, None));
    }
    let key: [u8; 32] = rand::random();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(CliError::Io)?;
    writeln!(f, "{}", hex::encode(key)).map_err(CliError::Io)?;
    f.sync_all().map_err(CliError::Io)?;
    Ok((key, Some(path)))
}
