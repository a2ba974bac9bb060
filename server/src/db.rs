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

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

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
    Postgres(#[from] postgres::Error),
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
}

impl DbError {
    /// A unique or primary key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// A CHECK constraint refused the write.
    pub fn is_check_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
            }
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::CHECK_VIOLATION),
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
                        Some(c) if *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                            || *c == postgres::error::SqlState::ADMIN_SHUTDOWN
                            || *c == postgres::error::SqlState::CANNOT_CONNECT_NOW
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

impl Transact for rusqlite::Connection {
    fn transaction<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        // IMMEDIATE: the write lock is taken at the start, so two writers never deadlock on an
        // upgrade from a read lock.
        let tx = self
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(DbError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(DbError::from)?;
        Ok(out)
    }
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
}

// ---------------------------------------------------------------------------------------------
// SQLite

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Sql for rusqlite::Connection {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Row((0..n)
                .map(|i| r.get_ref(i).map(from_sqlite))
                .collect::<rusqlite::Result<_>>()?));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }
}

impl Sql for rusqlite::Transaction<'_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        Sql::execute(&**self, sql, params)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        Sql::query(&**self, sql, params)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Sql::batch(&**self, sql)
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                _ => r.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Integer(i64::from(u32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            _ => Value::Text(<String>::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC (what `SUM` of integers gives): an integer when it has no
/// fraction and fits, else a double.
fn numeric(raw: &[u8]) -> Result<Value, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> Result<i16, Box<dyn std::error::Error + Sync + Send>> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("numeric: too short")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "numeric: bad length")?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = word(3)?;
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut int: i128 = 0;
    let mut real = 0f64;
    let mut whole = true;
    for i in 0..ndigits {
        let d = i128::from(word(4 + i)?);
        let power = weight - i as i32;
        real += d as f64 * 10_000f64.powi(power);
        if power < 0 {
            whole &= d == 0;
        } else {
            int = int
                .checked_add(
                    d.checked_mul(
                        10_000i128
                            .checked_pow(power as u32)
                            .ok_or("numeric: too large")?,
                    )
                    .ok_or("numeric: too large")?,
                )
                .ok_or("numeric: too large")?;
        }
    }
    let negative = sign == 0x4000;
    if whole && (dscale == 0 || real.fract() == 0.0) {
        let v = if negative { -int } else { int };
        if let Ok(v) = i64::try_from(v) {
            return Ok(Value::Integer(v));
        }
    }
    Ok(Value::Real(if negative { -real } else { real }))
}

/// Rewrites `?N` placeholders to PostgreSQL's `$N` (and a bare `?` to the next number), leaving
/// string literals, quoted names and comments alone.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 1;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Statements prepared on one connection, by their SQL: each is parsed and planned once per
/// connection, not at every use (a class's merge runs hundreds of statements).
type Prepared = std::sync::Arc<std::sync::Mutex<HashMap<String, postgres::Statement>>>;

/// A PostgreSQL connection or transaction, behind the [`Sql`] interface.
pub struct Pg<C> {
    client: RefCell<C>,
    prepared: Prepared,
}

impl<C: postgres::GenericClient> Pg<C> {
    /// Wraps a client or a transaction.
    pub fn new(client: C) -> Self {
        Self {
            client: RefCell::new(client),
            prepared: Prepared::default(),
        }
    }

    /// The client or transaction back.
    pub fn into_inner(self) -> C {
        self.client.into_inner()
    }

    /// The client or transaction, for what only PostgreSQL has (a transaction, LISTEN).
    pub fn inner(&self) -> std::cell::RefMut<'_, C> {
        self.client.borrow_mut()
    }

    /// The statement for `sql`, prepared on this connection the first time.
    fn statement(&self, client: &mut C, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.prepared.lock().ok().and_then(|p| p.get(sql).cloned()) {
            return Ok(s);
        }
        let s = client.prepare(&to_postgres(sql))?;
        if let Ok(mut p) = self.prepared.lock() {
            p.insert(sql.to_owned(), s.clone());
        }
        Ok(s)
    }
}

impl Transact for Pg<postgres::Client> {
    fn transaction<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        let client = self.client.get_mut();
        // The transaction runs on the same connection: it shares the prepared statements.
        let tx = Pg {
            client: RefCell::new(client.transaction().map_err(DbError::from)?),
            prepared: self.prepared.clone(),
        };
        let out = f(&tx)?;
        tx.into_inner().commit().map_err(DbError::from)?;
        Ok(out)
    }
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl<C: postgres::GenericClient> Sql for Pg<C> {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut client = self.client.borrow_mut();
        let statement = self.statement(&mut client, sql)?;
        Ok(client.execute(&statement, &pg_params(params))?)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut client = self.client.borrow_mut();
        let statement = self.statement(&mut client, sql)?;
        let rows = client.query(&statement, &pg_params(params))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Value>(i).map_err(DbError::from))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }
}

/// The server's database: SQLite (the default) or PostgreSQL.
pub enum Db {
    /// SQLite in the data folder.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL database, and its URL to connect again.
    Postgres(Box<Pg<postgres::Client>>, String),
}

impl Db {
    /// Connects to PostgreSQL and brings the schema up to date.
    pub fn postgres(url: &str) -> Result<Self, DbError> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        migrate_postgres(&mut client)?;
        Ok(Db::Postgres(Box::new(Pg::new(client)), url.to_owned()))
    }

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

impl Pg<postgres::Client> {
    /// After PostgreSQL restarted or a failover, the connection is closed: open a new one (the
    /// statement that found it closed failed, and its request is retried by the phone).
    fn reconnect_if_closed(&self, url: &str) {
        let mut c = self.client.borrow_mut();
        if c.is_closed()
            && let Ok(fresh) = postgres::Client::connect(url, postgres::NoTls)
        {
            *c = fresh;
            // Statements belong to the connection that prepared them.
            if let Ok(mut p) = self.prepared.lock() {
                p.clear();
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

/// The schema on PostgreSQL, version by version: the same tables as SQLite's
/// (`store::MIGRATIONS`) in PostgreSQL's types.
pub const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/001_documents.sql")),
    (2, include_str!("migrations/postgres/002_projections.sql")),
    (3, include_str!("migrations/postgres/003_accounts.sql")),
    (4, include_str!("migrations/postgres/004_signin.sql")),
    (
        5,
        include_str!("migrations/postgres/005_district_office.sql"),
    ),
    (
        6,
        include_str!("migrations/postgres/006_subsidy_lookups.sql"),
    ),
    (7, include_str!("migrations/postgres/007_erasure.sql")),
    (8, include_str!("migrations/postgres/008_pay.sql")),
];

/// Key of the advisory lock held while migrating, so replicas starting together migrate once.
const MIGRATION_LOCK: i64 = 0x736f_6e67_7065_6901;

/// Brings a PostgreSQL database up to the newest schema, each version in its own transaction
/// (PostgreSQL's DDL is transactional: a version is applied whole or not at all); the version
/// reached. Safe to run from several replicas at once.
pub fn migrate_postgres(client: &mut postgres::Client) -> Result<i64, DbError> {
    // Under the lock too: two replicas creating the table at once would collide in the catalog.
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    tx.commit()?;
    let mut reached = 0;
    for (version, sql) in POSTGRES_MIGRATIONS {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        let done: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = $1)",
                &[version],
            )?
            .get(0);
        if !done {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[version],
            )?;
        }
        tx.commit()?;
        reached = *version;
    }
    Ok(reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_literals_names_and_comments() {
        let cases = [
            ("SELECT ?1, ?2", "SELECT $1, $2"),
            ("SELECT ?, ?", "SELECT $1, $2"),
            ("WHERE a = ?12", "WHERE a = $12"),
            ("SELECT '?1' || ?1", "SELECT '?1' || $1"),
            ("SELECT 'it''s ?' , ?3", "SELECT 'it''s ?' , $3"),
            (
                "SELECT \"a?\" FROM t WHERE x = ?1",
                "SELECT \"a?\" FROM t WHERE x = $1",
            ),
            ("-- what ?1\nSELECT ?1", "-- what ?1\nSELECT $1"),
            (
                "SELECT 'conflict:' || c.path",
                "SELECT 'conflict:' || c.path",
            ),
            ("SELECT a - ?1", "SELECT a - $1"),
        ];
        for (lite, pg) in cases {
            assert_eq!(to_postgres(lite), pg, "{lite}");
        }
    }

    #[test]
    fn values_convert_the_sqlite_way() {
        let row = Row(vec![
            Value::Integer(1),
            Value::Null,
            Value::Text("x".into()),
            Value::Integer(-5),
        ]);
        assert!(row.get::<bool>(0).expect("bool"));
        assert_eq!(row.get::<Option<String>>(1).expect("null"), None);
        assert_eq!(row.get::<String>(2).expect("text"), "x");
        assert!(matches!(
            row.get::<i64>(2),
            Err(DbError::Type {
                index: 2,
                wanted: "i64",
                found: "text"
            })
        ));
        assert!(matches!(row.get::<u32>(3), Err(DbError::Type { .. })));
        assert_eq!(row.get::<f64>(0).expect("real from int"), 1.0);
    }

    #[test]
    fn numerics_decode_to_integers_when_whole() {
        // 12345678 = 1234·10000¹ + 5678·10000⁰: ndigits 2, weight 1, positive, dscale 0.
        let raw: Vec<u8> = [2i16, 1, 0, 0, 1234, 5678]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric(&raw).expect("numeric"), Value::Integer(12_345_678));
        // -0.5 = 5000·10000⁻¹: weight -1, negative, dscale 1.
        let raw: Vec<u8> = [1i16, -1, 0x4000, 1, 5000]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric(&raw).expect("numeric"), Value::Real(-0.5));
        // Zero has no digits.
        let raw: Vec<u8> = [0i16, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric(&raw).expect("numeric"), Value::Integer(0));
        assert!(numeric(&[0, 1]).is_err());
    }
}
