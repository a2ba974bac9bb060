//! One SQL interface over the two databases the server runs on: SQLite (the zero-setup default,
//! through rusqlite) and PostgreSQL (several replicas on one cluster, through the synchronous
//! `postgres` client). The server's code runs on the blocking pool, so the interface is
//! synchronous, like both clients.
//!
//! Queries are written once, in the dialect both databases share, with numbered placeholders
//! (`?1`, `?2`, …); for PostgreSQL they are rewritten to `$1`, `$2`, … outside string literals,
//! quoted names and comments. Values cross as [`Value`], SQLite's five storage classes: on
//! PostgreSQL, integers are `BIGINT` (truth values too, stored 0/1 as on SQLite), reals `DOUBLE
//! PRECISION`, text `TEXT` and bytes `BYTEA`, so a row reads the same from either database.

/// Which database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A value in a row or a parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (truth values are 0 and 1).
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// From SQLite.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// From PostgreSQL.
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// A column held a value of another kind than the one asked for.
    #[error("column {index}: a {found} is not a {wanted}")]
    Type {
        /// Column, from 0.
        index: usize,
        /// What the code asked for.
        wanted: &'static str,
        /// What the row held.
        found: &'static str,
    },
    /// A row was required and there was none.
    #[error("no row")]
    NoRow,
    /// What is stored cannot be read back (a document that does not load).
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// Another server wrote the same document meanwhile; nothing was written, try again.
    #[error("document {0} was changed by another server meanwhile")]
    Stale(String),
    /// The database's address asks for something that cannot be done (an unknown `sslmode`, a
    /// certificate authority that does not read).
    #[error("{0}")]
    Config(String),
}

impl DbError {
    /// A unique or primary key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(e) => {
                e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }

    /// A CHECK constraint refused the write.
    pub fn is_check_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
            }
            DbError::Postgres(e) => e.code() == Some(&::postgres::error::SqlState::CHECK_VIOLATION),
            _ => false,
        }
    }

    /// Worth retrying: the database was busy, a serialisation or deadlock conflict, or the
    /// connection to PostgreSQL was lost (nothing of the transaction was committed).
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Stale(_) => true,
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            DbError::Postgres(e) => {
                e.is_closed()
                    || matches!(
                        e.code(),
                        Some(c) if *c == ::postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == ::postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                            || *c == ::postgres::error::SqlState::ADMIN_SHUTDOWN
                            || *c == ::postgres::error::SqlState::CANNOT_CONNECT_NOW
                    )
                    || e.code().is_none() && std::error::Error::source(e).is_some()
            }
            _ => false,
        }
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<&i64> for Value {
    fn from(v: &i64) -> Self {
        Value::Integer(*v)
    }
}

impl<const N: usize> From<[u8; N]> for Value {
    fn from(v: [u8; N]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Self {
        Value::Blob(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters of a query, from anything that converts into a [`Value`].
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::db::Value::from($v)),*] as &[$crate::db::Value]
    };
}

/// A type a column converts into.
pub trait FromValue: Sized {
    /// The type's name in errors.
    const NAME: &'static str;
    /// The conversion, or `None` when the value is of another kind.
    fn from_value(v: &Value) -> Option<Self>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            const NAME: &'static str = stringify!($t);
            fn from_value(v: &Value) -> Option<Self> {
                match v {
                    Value::Integer(i) => <$t>::try_from(*i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
int_from_value!(i32, i64, u32, u64, usize);

impl FromValue for bool {
    const NAME: &'static str = "bool";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Integer(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl FromValue for f64 {
    const NAME: &'static str = "f64";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(r) => Some(*r),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    const NAME: &'static str = "text";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const NAME: &'static str = "blob";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl FromValue for Value {
    const NAME: &'static str = "value";
    fn from_value(v: &Value) -> Option<Self> {
        Some(v.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const NAME: &'static str = T::NAME;
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A row of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `index` (from 0) as a `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let v = self.0.get(index).unwrap_or(&Value::Null);
        T::from_value(v).ok_or(DbError::Type {
            index,
            wanted: T::NAME,
            found: v.kind(),
        })
    }
}

/// A connection or a transaction of either database.
pub trait Sql {
    /// Which database.
    fn backend(&self) -> Backend;
    /// Runs a statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs a query; all its rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Runs statements without parameters, separated by semicolons (migrations).
    fn batch(&self, sql: &str) -> Result<(), DbError>;
    /// What seals the [`Sealed`] columns: on PostgreSQL, under the database key; none on SQLite,
    /// whose whole file is encrypted.
    fn sealer(&self) -> Option<&Sealer> {
        None
    }
}

/// A connection that can run a transaction: everything `f` writes is committed together when it
/// returns `Ok`, and nothing when it returns `Err` (or panics).
pub trait Transact: Sql {
    /// Runs `f` in a transaction.
    fn transaction<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E>,
    ) -> Result<T, E>;
}

impl dyn Sql + '_ {
    /// The first row, through `f`; [`DbError::NoRow`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, params, f)?.ok_or(DbError::NoRow)
    }

    /// The first row through `f`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        self.query(sql, params)?.first().map(f).transpose()
    }

    /// Every row through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// `plain` as written to the bytes `column`: sealed where the database seals it.
    pub fn seal(&self, column: Sealed, plain: &[u8]) -> Value {
        match self.sealer() {
            Some(s) => Value::Blob(s.seal(column, plain)),
            None => Value::Blob(plain.to_vec()),
        }
    }

    /// `plain` as written to the text `column`: sealed where the database seals it.
    pub fn seal_text(&self, column: Sealed, plain: &str) -> Value {
        match self.sealer() {
            Some(s) => Value::Text(s.seal_text(column, plain)),
            None => Value::Text(plain.to_owned()),
        }
    }

    /// What the bytes `column` held, as written.
    pub fn open(&self, column: Sealed, stored: Vec<u8>) -> Result<Vec<u8>, DbError> {
        match self.sealer() {
            Some(s) => s.open(column, &stored),
            None => Ok(stored),
        }
    }

    /// What the text `column` held, as written.
    pub fn open_text(&self, column: Sealed, stored: String) -> Result<String, DbError> {
        match self.sealer() {
            Some(s) => s.open_text(column, &stored),
            None => Ok(stored),
        }
    }
}

mod migrations;
mod postgres;
mod seal;
mod sqlite;

pub use migrations::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, refuse_newer_schema};
pub use postgres::{Pg, connect as connect_postgres, migrate_postgres, to_postgres};
pub use seal::{Sealed, Sealer, key_check, reseal, seal_in_place};

/// The server's database: SQLite (the default) or PostgreSQL.
pub enum Db {
    /// SQLite in the data folder.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL database, and its URL to connect again.
    Postgres(Box<Pg<::postgres::Client>>, String),
}

impl Db {
    fn sql(&self) -> &dyn Sql {
        match self {
            Db::Sqlite(c) => c,
            Db::Postgres(c, url) => {
                c.reconnect_if_closed(url);
                c.as_ref()
            }
        }
    }
}

impl Sql for Db {
    fn backend(&self) -> Backend {
        self.sql().backend()
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.sql().execute(sql, params)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.sql().query(sql, params)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.sql().batch(sql)
    }

    fn sealer(&self) -> Option<&Sealer> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(c, _) => c.sealer(),
        }
    }
}

impl Transact for Db {
    fn transaction<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Db::Sqlite(c) => Transact::transaction(c, f),
            Db::Postgres(c, url) => {
                c.reconnect_if_closed(url);
                c.transaction(f)
            }
        }
    }
}
