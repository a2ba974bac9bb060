//! One conformance suite for the server's SQL interface (`songpei_server::db`), generated for every
//! database it runs on: SQLite in a temporary file, and a throwaway PostgreSQL 15 started from
//! Debian's binaries. Each case is written once against `&dyn Sql`; the macro at the end makes a
//! test of it per backend, so a backend that answers differently fails by name.
//!
//! The last case is the change feed's contract under concurrent writers: two connections append
//! to one village's feed at once while a reader follows it, and the reader must never see a gap
//! (a later change visible before an earlier one) and must end with every change exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use songpei_server::args;
use songpei_server::db::{Backend, DbError, Pg, Sql, Transact, Value};
use songpei_tests::pg::Postgres;

/// A fresh, empty database of the backend and a way to open more connections to it.
trait Fixture {
    fn connect(&self) -> Box<dyn Sql + Send>;
}

struct Lite(tempfile::TempDir);

impl Fixture for Lite {
    fn connect(&self) -> Box<dyn Sql + Send> {
        let c = rusqlite::Connection::open(self.0.path().join("db.sqlite")).expect("open");
        c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;")
            .expect("pragmas");
        Box::new(c)
    }
}

/// A PostgreSQL server of the test's own (stopped when the test ends) and its database.
struct Post(Postgres, String);

impl Fixture for Post {
    fn connect(&self) -> Box<dyn Sql + Send> {
        let c = postgres::Client::connect(&self.1, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.0.log()));
        Box::new(Pg::new(c))
    }
}

impl Lite {
    fn new() -> Self {
        Lite(tempfile::tempdir().expect("dir"))
    }

    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.0.path().join("db.sqlite")).expect("open")
    }
}

impl Post {
    fn new() -> Self {
        let server = Postgres::start();
        let url = server.create("conformance");
        Post(server, url)
    }

    fn raw(&self) -> Pg<postgres::Client> {
        Pg::new(postgres::Client::connect(&self.1, postgres::NoTls).expect("connect"))
    }
}

/// DDL differs in its types only: the same table on either backend.
fn table(db: &dyn Sql, sqlite: &str, postgres: &str) {
    db.batch(match db.backend() {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    })
    .expect("create table");
}

fn values_round_trip(f: &dyn Fixture) {
    let db = f.connect();
    let db: &dyn Sql = db.as_ref();
    table(
        db,
        "CREATE TABLE t (k TEXT PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, yes INTEGER) STRICT",
        "CREATE TABLE t (k TEXT PRIMARY KEY, i BIGINT, r DOUBLE PRECISION, s TEXT, b BYTEA, yes BIGINT)",
    );
    let all_bytes: Vec<u8> = (0..=255).collect();
    let rows: Vec<(&str, Value, Value, Value, Value, bool)> = vec![
        (
            "max",
            Value::Integer(i64::MAX),
            Value::Real(1.5),
            Value::from("张秀英 450802"),
            Value::Blob(all_bytes.clone()),
            true,
        ),
        (
            "min",
            Value::Integer(i64::MIN),
            Value::Real(-0.25),
            Value::from(""),
            Value::Blob(vec![]),
            false,
        ),
        (
            "nulls",
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            false,
        ),
        (
            "quote",
            Value::Integer(0),
            Value::Real(0.0),
            Value::from("it's ?1 'quoted'"),
            Value::Blob(vec![0]),
            true,
        ),
    ];
    for (k, i, r, s, b, yes) in &rows {
        let n = db
            .execute(
                "INSERT INTO t (k, i, r, s, b, yes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[
                    Value::from(*k),
                    i.clone(),
                    r.clone(),
                    s.clone(),
                    b.clone(),
                    Value::from(*yes),
                ],
            )
            .expect("insert");
        assert_eq!(n, 1);
    }
    for (k, i, r, s, b, yes) in &rows {
        let got = db
            .query_row(
                "SELECT i, r, s, b, yes FROM t WHERE k = ?1",
                args![*k],
                |row| Ok(row.0.clone()),
            )
            .expect("select");
        assert_eq!(
            got,
            vec![
                i.clone(),
                r.clone(),
                s.clone(),
                b.clone(),
                Value::from(*yes)
            ],
            "{k}"
        );
    }
    // Typed reads, NULL as None, and a wrong kind named by its column.
    let (i, s, yes, none): (i64, String, bool, Option<i64>) = db
        .query_row(
            "SELECT i, s, yes, (SELECT i FROM t WHERE k = 'nulls') FROM t WHERE k = ?1",
            args!["max"],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("typed");
    assert_eq!(
        (i, s.as_str(), yes, none),
        (i64::MAX, "张秀英 450802", true, None)
    );
    let wrong = db.query_row("SELECT s FROM t WHERE k = ?1", args!["max"], |r| {
        r.get::<i64>(0)
    });
    assert!(
        matches!(wrong, Err(DbError::Type { index: 0, .. })),
        "{wrong:?}"
    );
    // No row: None, or NoRow when one is required.
    assert!(
        db.query_opt("SELECT i FROM t WHERE k = ?1", args!["absent"], |r| r
            .get::<i64>(0))
            .expect("opt")
            .is_none()
    );
    assert!(matches!(
        db.query_row("SELECT i FROM t WHERE k = ?1", args!["absent"], |r| r
            .get::<i64>(0)),
        Err(DbError::NoRow)
    ));
    // A parameter used twice, and a string that looks like one.
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM t WHERE s = ?1 OR (?1 = 'x' AND s = '?1')",
            args!["it's ?1 'quoted'"],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
}

fn aggregates_are_integers(f: &dyn Fixture) {
    let db = f.connect();
    let db: &dyn Sql = db.as_ref();
    table(
        db,
        "CREATE TABLE n (v INTEGER NOT NULL, day TEXT NOT NULL) STRICT",
        "CREATE TABLE n (v BIGINT NOT NULL, day TEXT NOT NULL)",
    );
    for (v, day) in [
        (5000, "2026-03-02"),
        (6000, "2026-03-04"),
        (7, "2026-04-01"),
    ] {
        db.execute("INSERT INTO n (v, day) VALUES (?1, ?2)", args![v, day])
            .expect("insert");
    }
    // SUM over BIGINT is NUMERIC on PostgreSQL; it reads back as an integer all the same.
    let rows = db
        .query_map(
            "SELECT substr(day, 1, 7), SUM(v), COUNT(*), MAX(v) FROM n GROUP BY substr(day, 1, 7) ORDER BY 1",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?, r.get::<i64>(3)?)),
        )
        .expect("group");
    assert_eq!(
        rows,
        vec![
            ("2026-03".into(), 11_000, 2, 6000),
            ("2026-04".into(), 7, 1, 7)
        ]
    );
    let empty: Option<i64> = db
        .query_row("SELECT SUM(v) FROM n WHERE day > '2099'", &[], |r| r.get(0))
        .expect("sum of nothing");
    assert_eq!(empty, None);
}

fn constraints_are_told_apart(f: &dyn Fixture) {
    let db = f.connect();
    let db: &dyn Sql = db.as_ref();
    table(
        db,
        "CREATE TABLE s (person BLOB NOT NULL, year INTEGER NOT NULL, nth INTEGER NOT NULL CHECK (nth BETWEEN 1 AND 3), PRIMARY KEY (person, year, nth)) STRICT",
        "CREATE TABLE s (person BYTEA NOT NULL, year BIGINT NOT NULL, nth BIGINT NOT NULL CHECK (nth BETWEEN 1 AND 3), PRIMARY KEY (person, year, nth))",
    );
    let insert = "INSERT INTO s (person, year, nth) VALUES (?1, ?2, ?3)";
    db.execute(insert, args![vec![1u8, 2], 2026, 1])
        .expect("first");
    let dup = db
        .execute(insert, args![vec![1u8, 2], 2026, 1])
        .expect_err("duplicate");
    assert!(
        dup.is_unique_violation() && !dup.is_check_violation(),
        "{dup}"
    );
    let fourth = db
        .execute(insert, args![vec![1u8, 2], 2026, 4])
        .expect_err("fourth");
    assert!(
        fourth.is_check_violation() && !fourth.is_unique_violation(),
        "{fourth}"
    );
    // ON CONFLICT works the same on both.
    let n = db
        .execute(
            "INSERT INTO s (person, year, nth) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            args![vec![1u8, 2], 2026, 1],
        )
        .expect("on conflict");
    assert_eq!(n, 0);
}

fn a_rolled_back_transaction_leaves_nothing(f: &dyn Fixture) {
    let db = f.connect();
    let db: &dyn Sql = db.as_ref();
    table(
        db,
        "CREATE TABLE r (k TEXT PRIMARY KEY) STRICT",
        "CREATE TABLE r (k TEXT PRIMARY KEY)",
    );
    db.batch("BEGIN").expect("begin");
    db.execute("INSERT INTO r (k) VALUES (?1)", args!["a"])
        .expect("a");
    db.execute("INSERT INTO r (k) VALUES (?1)", args!["b"])
        .expect("b");
    db.batch("ROLLBACK").expect("rollback");
    let other = f.connect();
    let n: i64 = (other.as_ref() as &dyn Sql)
        .query_row("SELECT COUNT(*) FROM r", &[], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 0);
    db.batch("BEGIN").expect("begin");
    db.execute("INSERT INTO r (k) VALUES (?1)", args!["c"])
        .expect("c");
    db.batch("COMMIT").expect("commit");
    let n: i64 = (other.as_ref() as &dyn Sql)
        .query_row("SELECT COUNT(*) FROM r", &[], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
}

fn the_feed_has_no_gap_under_concurrent_writers(f: &dyn Fixture) {
    const WRITERS: usize = 3;
    const EACH: i64 = 150;
    {
        let db = f.connect();
        let db: &dyn Sql = db.as_ref();
        table(
            db,
            "CREATE TABLE villages (code TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) STRICT;
             CREATE TABLE feed (village TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (village, seq)) STRICT",
            "CREATE TABLE villages (code TEXT PRIMARY KEY, last_seq BIGINT NOT NULL);
             CREATE TABLE feed (village TEXT NOT NULL, seq BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (village, seq))",
        );
    }
    let begin = |db: &dyn Sql| match db.backend() {
        // SQLite: take the write lock at BEGIN, so two writers never both hold a read lock and
        // wait on each other.
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let reader = {
            let db = f.connect();
            let done = done.clone();
            s.spawn(move || {
                let db: &dyn Sql = db.as_ref();
                let mut last = 0i64;
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let seqs = db
                        .query_map(
                            "SELECT seq FROM feed WHERE village = ?1 AND seq > ?2 ORDER BY seq",
                            args!["v1", last],
                            |r| r.get::<i64>(0),
                        )
                        .expect("read feed");
                    for q in seqs {
                        assert_eq!(q, last + 1, "the reader saw {q} before {}", last + 1);
                        last = q;
                        seen.push(q);
                    }
                    if finished {
                        break seen;
                    }
                }
            })
        };
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let db = f.connect();
                s.spawn(move || {
                    let db: &dyn Sql = db.as_ref();
                    for i in 0..EACH {
                        db.batch(begin(db)).expect("begin");
                        let seq: i64 = db
                            .query_row(
                                "INSERT INTO villages (code, last_seq) VALUES (?1, 1)
                                 ON CONFLICT (code) DO UPDATE SET last_seq = villages.last_seq + 1
                                 RETURNING last_seq",
                                args!["v1"],
                                |r| r.get(0),
                            )
                            .expect("next seq");
                        db.execute(
                            "INSERT INTO feed (village, seq, doc) VALUES (?1, ?2, ?3)",
                            args!["v1", seq, format!("w{w}-{i}")],
                        )
                        .expect("append");
                        db.batch("COMMIT").expect("commit");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.join().expect("reader");
        let total = WRITERS as i64 * EACH;
        assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    });
}

/// `Transact`: what `f` writes is committed whole when it succeeds and not at all when it fails,
/// and a failing statement inside fails the transaction.
fn transactions_commit_whole_or_not_at_all<D: Transact>(mut db: D, f: &dyn Fixture) {
    table(
        &db,
        "CREATE TABLE w (k TEXT PRIMARY KEY) STRICT",
        "CREATE TABLE w (k TEXT PRIMARY KEY)",
    );
    let other = f.connect();
    let count = || -> i64 {
        (other.as_ref() as &dyn Sql)
            .query_row("SELECT COUNT(*) FROM w", &[], |r| r.get(0))
            .expect("count")
    };
    let n = db
        .transaction(|tx| -> Result<u64, DbError> {
            tx.execute("INSERT INTO w (k) VALUES (?1)", args!["a"])?;
            tx.execute("INSERT INTO w (k) VALUES (?1)", args!["b"])
        })
        .expect("commit");
    assert_eq!((n, count()), (1, 2));
    let failed = db.transaction(|tx| -> Result<(), DbError> {
        tx.execute("INSERT INTO w (k) VALUES (?1)", args!["c"])?;
        tx.execute("INSERT INTO w (k) VALUES (?1)", args!["a"])?;
        Ok(())
    });
    assert!(failed.expect_err("duplicate").is_unique_violation());
    assert_eq!(count(), 2, "nothing of the failed transaction is kept");
    // The connection is usable after a failed transaction.
    db.transaction(|tx| tx.execute("INSERT INTO w (k) VALUES (?1)", args!["d"]))
        .expect("after");
    assert_eq!(count(), 3);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $case() { super::$case(&super::Lite::new()); })*
            #[test]
            fn transactions_commit_whole_or_not_at_all() {
                let f = super::Lite::new();
                super::transactions_commit_whole_or_not_at_all(f.raw(), &f);
            }
        }
        mod on_postgres {
            $(#[test] fn $case() { super::$case(&super::Post::new()); })*
            #[test]
            fn transactions_commit_whole_or_not_at_all() {
                let f = super::Post::new();
                super::transactions_commit_whole_or_not_at_all(f.raw(), &f);
            }
        }
    };
}

conformance!(
    values_round_trip,
    aggregates_are_integers,
    constraints_are_told_apart,
    a_rolled_back_transaction_leaves_nothing,
    the_feed_has_no_gap_under_concurrent_writers,
);

/// The two migration sets make the same schema: every table with the same columns, each of the
/// matching type (TEXT/text, INTEGER/bigint, BLOB/bytea, REAL/double precision) and nullability,
/// and the same indexes. Two replicas migrating one PostgreSQL database at once both succeed.
#[test]
fn both_migration_sets_make_the_same_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let store = songpei_server::ServerStore::open(
        dir.path(),
        1,
        &songpei_server::DbKey::from_bytes([7; 32]),
    )
    .expect("sqlite store");
    drop(store);
    let lite = rusqlite::Connection::open(dir.path().join("songpei-server.db")).expect("open");
    songpei_server::DbKey::from_bytes([7; 32])
        .apply(&lite)
        .expect("key");
    let mut lite_cols: Vec<(String, String, String, bool)> = lite
        .prepare(
            "SELECT m.name, p.name, p.type, p.\"notnull\" OR p.pk > 0
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut lite_indexes: Vec<String> = lite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");

    let server = Postgres::start();
    let url = server.create("schema");
    let versions: Vec<i64> = std::thread::scope(|s| {
        let replicas: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                    songpei_server::db::migrate_postgres(&mut c).expect("migrate")
                })
            })
            .collect();
        replicas
            .into_iter()
            .map(|r| r.join().expect("replica"))
            .collect()
    });
    let newest = songpei_server::db::SQLITE_MIGRATIONS.len() as i64;
    assert_eq!(versions, vec![newest, newest]);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let mut pg_cols: Vec<(String, String, String, bool)> = c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'NO'
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'schema_version'",
            &[],
        )
        .expect("columns")
        .iter()
        .map(|r| {
            let ty = match r.get::<_, String>(2).as_str() {
                "text" => "TEXT",
                "bigint" => "INTEGER",
                "bytea" => "BLOB",
                "double precision" => "REAL",
                other => panic!("unexpected type {other}"),
            };
            (r.get(0), r.get(1), ty.to_owned(), r.get(3))
        })
        .collect();
    let mut pg_indexes: Vec<String> = c
        .query(
            "SELECT indexname::text FROM pg_indexes
             WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey'
               AND indexname NOT LIKE '%_key'",
            &[],
        )
        .expect("indexes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    lite_cols.sort();
    pg_cols.sort();
    lite_indexes.sort();
    pg_indexes.sort();
    assert_eq!(lite_cols, pg_cols);
    assert!(lite_cols.len() > 100, "{}", lite_cols.len());
    assert_eq!(lite_indexes, pg_indexes);
    // The audit log is append-only on PostgreSQL too.
    c.execute(
        "INSERT INTO audit (seq, at_ms, actor, action, subject, detail, hash) VALUES (1, 0, 'a', 'b', 'c', '{}', '\\x00')",
        &[],
    )
    .expect("append");
    let e = c
        .execute("UPDATE audit SET actor = 'x'", &[])
        .expect_err("update");
    let message = e.as_db_error().map(|d| d.message().to_owned());
    assert_eq!(message.as_deref(), Some("the audit log is append-only"));
    assert!(c.execute("DELETE FROM audit", &[]).is_err());
}
