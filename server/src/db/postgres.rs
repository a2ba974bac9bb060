//! The SQL interface on PostgreSQL, through the synchronous `postgres` client: placeholders
//! rewritten, values converted, statements prepared once per connection, the schema migrated under
//! an advisory lock.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::migrations::POSTGRES_MIGRATIONS;
use super::{Backend, DbError, Row, Sealer, Sql, Transact, Value};

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
    pub(super) client: RefCell<C>,
    prepared: Prepared,
    pub(super) sealer: Option<std::sync::Arc<Sealer>>,
}

impl<C: postgres::GenericClient> Pg<C> {
    /// Wraps a client or a transaction.
    pub fn new(client: C) -> Self {
        Self {
            client: RefCell::new(client),
            prepared: Prepared::default(),
            sealer: None,
        }
    }

    /// Wraps a client or a transaction that seals the [`Sealed`] columns with `sealer`.
    pub fn sealed(client: C, sealer: Sealer) -> Self {
        Self {
            sealer: Some(std::sync::Arc::new(sealer)),
            ..Self::new(client)
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
            sealer: self.sealer.clone(),
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

    fn sealer(&self) -> Option<&Sealer> {
        self.sealer.as_deref()
    }
}

impl Pg<postgres::Client> {
    /// After PostgreSQL restarted or a failover, the connection is closed: open a new one (the
    /// statement that found it closed failed, and its request is retried by the phone).
    pub(super) fn reconnect_if_closed(&self, url: &str) {
        let mut c = self.client.borrow_mut();
        if c.is_closed()
            && let Ok(fresh) = connect(url)
        {
            *c = fresh;
            // Statements belong to the connection that prepared them.
            if let Ok(mut p) = self.prepared.lock() {
                p.clear();
            }
        }
    }
}

/// Key of the advisory lock held while migrating, so replicas starting together migrate once.
pub(super) const MIGRATION_LOCK: i64 = 0x736f_6e67_7065_6901;

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
    let found: Option<i64> = tx
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    tx.commit()?;
    super::migrations::refuse_newer_schema(found.unwrap_or(0), POSTGRES_MIGRATIONS)?;
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

/// Connects to PostgreSQL at `url`, over TLS (rustls) when the URL asks for it with `sslmode`:
///
/// - `require`: encrypted; the server's certificate is checked only when `sslrootcert=FILE` names
///   the certificate authority to check it against (as libpq does);
/// - `verify-ca`, `verify-full`: encrypted, the certificate checked against `sslrootcert` (or the
///   web's root authorities) and the host name checked too;
/// - `disable`, `allow`, `prefer`, or none: plain.
pub fn connect(url: &str) -> Result<postgres::Client, DbError> {
    let (url, tls) = tls_of(url)?;
    Ok(match tls {
        Some(config) => {
            postgres::Client::connect(&url, tokio_postgres_rustls::MakeRustlsConnect::new(config))?
        }
        None => postgres::Client::connect(&url, postgres::NoTls)?,
    })
}

/// The URL as the PostgreSQL client takes it (`sslrootcert` taken out, `sslmode` reduced to the
/// modes it knows), and the TLS configuration the URL asks for.
fn tls_of(url: &str) -> Result<(String, Option<rustls::ClientConfig>), DbError> {
    let bad = |why: String| DbError::Config(why);
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut mode = None;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => root = Some(v.to_owned()),
            _ => kept.push(pair.to_owned()),
        }
    }
    let verify = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => {
            if let Some(m) = &mode {
                kept.push(format!("sslmode={m}"));
            }
            return Ok((join(base, &kept), None));
        }
        Some("require") => root.is_some(),
        Some("verify-ca" | "verify-full") => true,
        Some(other) => return Err(bad(format!("sslmode={other} is not a PostgreSQL sslmode"))),
    };
    kept.push("sslmode=require".into());
    // ring: the provider the workspace already links (through ureq); it lacks only the
    // post-quantum key exchange, for which rustls deprecates it.
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match &root {
            Some(file) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(file)
                    .map_err(|e| bad(format!("sslrootcert {file}: {e}")))?;
                for cert in certs {
                    let cert = cert.map_err(|e| bad(format!("sslrootcert {file}: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("sslrootcert {file}: {e}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
            .with_no_client_auth()
    };
    Ok((join(base, &kept), Some(config)))
}

fn join(base: &str, pairs: &[String]) -> String {
    if pairs.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", pairs.join("&"))
    }
}

/// `sslmode=require` without a certificate authority: the connection is encrypted but the
/// server's certificate is not checked (libpq's meaning; `verify-full` checks it).
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
