//! Personal data at rest on the server (issue 21, row 1; ADR 0009). On SQLite: after a day of
//! records, no file of the data folder holds a trainee's name, ID number or phone number — the
//! database, its WAL and everything beside them — and the folder is private to the server's user,
//! its key kept beside it, not in it; a plain database from an earlier release is encrypted in
//! place at start, losing nothing. On PostgreSQL: neither a `pg_dump` nor the cluster's files hold
//! them — documents, review reasons and audit reasons naming the person included — a database
//! from an earlier release is sealed in place (old row versions gone from the tables' files), and
//! the key can be rotated.

use std::path::Path;

use chrono::{Duration, Utc};
use serde_json::json;
use songpei_server::db::{Sealed, Value};
use songpei_tests::pg::Postgres;
use songpei_tests::{
    CliPhone, Office, ServerProcess, VILLAGE_A, contains, folder_bytes, id_number,
};

/// The seed's people: name, ID number, phone.
fn people() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("韦春燕", id_number("45080219880405002"), "13877001234"),
        ("覃丽华", id_number("45080219900707004"), "13977005678"),
    ]
}

/// `admin database rekey` of the stopped `server` to `key`: the key file holds it afterwards.
fn rekey(server: &ServerProcess, key: [u8; 32]) {
    let new_key = server.data.with_extension("new-key");
    std::fs::write(&new_key, songpei_tests::hex_key(key)).expect("new key");
    let out = server.admin_ok(&[
        "database",
        "rekey",
        "--new-key-file",
        &new_key.to_string_lossy(),
    ]);
    assert!(out.contains("under the new key"), "{out}");
    let key_file = songpei_server::DbKey::default_file(&server.data);
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("key").trim(),
        songpei_tests::hex_key(key)
    );
}

/// An admin command on `server`'s database (PostgreSQL at `url`, else SQLite) under the key the
/// last rekey kept as `….key.old`.
fn with_old_key(server: &ServerProcess, url: Option<&str>) -> std::process::Output {
    let old_key = songpei_server::DbKey::default_file(&server.data).with_extension("key.old");
    let mut cmd = std::process::Command::new(songpei_tests::binary("songpei-server"));
    cmd.args(["admin", "device", "list", "--data"])
        .arg(&server.data)
        .env("SONGPEI_DB_KEY_FILE", &old_key);
    match url {
        Some(u) => cmd.env("SONGPEI_DATABASE_URL", u),
        None => cmd.env_remove("SONGPEI_DATABASE_URL"),
    };
    cmd.output().expect("run")
}

/// Every (what, value) of the people found in `bytes`.
fn found(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, id, phone) in people() {
        for v in [name.to_owned(), id, phone.to_owned()] {
            if contains(bytes, v.as_bytes()) {
                out.push(v);
            }
        }
    }
    out
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn the_data_folder_holds_no_personal_data_and_a_plain_database_is_encrypted_in_place() {
    let mut server = ServerProcess::start();
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(2, &["--subsidised"]);
    for (name, id, number) in people() {
        let t = phone.trainee(name, &id, &["--poverty", "lifted", "--phone", number]);
        phone.ok(&["enrol", &class, &t]);
    }
    phone.sync(&server.url);
    // While it runs (WAL and all), and once stopped.
    assert_eq!(found(&folder_bytes(&server.data)), Vec::<String>::new());
    server.stop();
    let data = server.data.clone();
    assert_eq!(found(&folder_bytes(&data)), Vec::<String>::new());
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700, "the data folder is the server's alone");
        for f in std::fs::read_dir(&data).expect("dir").flatten() {
            assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
        }
    }
    let key_file = songpei_server::DbKey::default_file(&data);
    assert!(key_file.exists() && !key_file.starts_with(&data));
    #[cfg(unix)]
    assert_eq!(mode(&key_file), 0o600);

    // Without its key, the server refuses to start rather than make a new database.
    let key = std::fs::read(&key_file).expect("key");
    std::fs::remove_file(&key_file).expect("remove the key");
    let out = std::process::Command::new(songpei_tests::binary("songpei-server"))
        .args(["admin", "device", "list", "--data"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("encrypted") && err.contains("SONGPEI_DB_KEY"),
        "{err}"
    );
    std::fs::write(&key_file, &key).expect("the key back");

    // A plain database, as an earlier release left it: the people are in its file.
    let db = data.join("songpei-server.db");
    let plain = data.join("plain.db");
    {
        let conn = server.sqlite();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("schema version");
        conn.execute_batch(&format!(
            "ATTACH DATABASE '{}' AS plain KEY '';
             SELECT sqlcipher_export('plain');
             PRAGMA plain.user_version = {version};
             DETACH DATABASE plain;",
            plain.display()
        ))
        .expect("export a plain copy");
    }
    std::fs::rename(&plain, &db).expect("replace");
    std::fs::remove_file(&key_file).expect("no key yet");
    assert!(!found(&std::fs::read(&db).expect("read")).is_empty());
    // It is encrypted in place at start, and everything is still there.
    server.restart();
    let other = CliPhone::new();
    server.enroll(&other, &[VILLAGE_A]);
    other.sync(&server.url);
    assert_eq!(found(&folder_bytes(&data)), Vec::<String>::new());
    assert!(key_file.exists(), "a new key, beside the folder");
    let view = other.json(&["class", "show", &class]);
    assert_eq!(
        view["roster"].as_array().map(Vec::len),
        Some(2),
        "the roster survived the encryption: {view}"
    );
    server.stop();
    assert_eq!(found(&folder_bytes(&data)), Vec::<String>::new());

    // Key rotation: the database opens under the new key only.
    rekey(&server, [9; 32]);
    let with_old = with_old_key(&server, None);
    assert!(!with_old.status.success(), "the old key opens nothing");
    server.restart();
    other.sync(&server.url);
    let view = other.json(&["class", "show", &class]);
    assert_eq!(view["roster"].as_array().map(Vec::len), Some(2), "{view}");
    server.stop();
    assert_eq!(found(&folder_bytes(&data)), Vec::<String>::new());
}

/// Writes every sealed value of the server's PostgreSQL database back in the clear and drops the
/// key check: the database as a release before sealing left it.
fn unseal(server: &ServerProcess) {
    let db = server.database();
    db.batch("ALTER TABLE audit DISABLE TRIGGER audit_no_update")
        .expect("allow the rewrite");
    for column in Sealed::ALL {
        let key = column.key();
        let rows = db
            .query(
                &format!(
                    "SELECT {}, {} FROM {}",
                    key.join(", "),
                    column.column(),
                    column.table()
                ),
                &[],
            )
            .expect("rows");
        let update = format!(
            "UPDATE {} SET {} = ?{} WHERE {}",
            column.table(),
            column.column(),
            key.len() + 1,
            key.iter()
                .enumerate()
                .map(|(i, k)| format!("{k} = ?{}", i + 1))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        for row in rows {
            let plain = match &row.0[key.len()] {
                Value::Blob(b) => Value::Blob(db.open(column, b.clone()).expect("open")),
                Value::Text(t) if !t.is_empty() => {
                    Value::Text(db.open_text(column, t.clone()).expect("open"))
                }
                _ => continue,
            };
            let mut params = row.0[..key.len()].to_vec();
            params.push(plain);
            db.execute(&update, &params).expect("write it plain");
        }
    }
    db.batch("ALTER TABLE audit ENABLE TRIGGER audit_no_update")
        .expect("append-only again");
    db.execute(
        "DELETE FROM server_settings WHERE key = 'sealed_key_check'",
        &[],
    )
    .expect("no key check");
}

#[test]
fn postgresql_holds_no_personal_data_and_a_plain_database_is_sealed_in_place() {
    let pg = Postgres::start();
    let url = pg.create("songpei");
    let mut server = ServerProcess::start_on_postgres(&url);
    let office = Office::sign_in(&server);
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    // A class from yesterday: yesterday's sign-in, entered today, waits for the office.
    let yesterday = (Utc::now() + Duration::hours(8) - Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let class = phone.class_titled("大湾村电工培训班", &yesterday, 2, &["--subsidised"]);
    let trainees: Vec<String> = people()
        .into_iter()
        .map(|(name, id, number)| {
            let t = phone.trainee(name, &id, &["--poverty", "lifted", "--phone", number]);
            phone.ok(&["enrol", &class, &t]);
            t
        })
        .collect();
    phone.ok(&["attend", &class, &trainees[0], "--day", &yesterday, "--in"]);
    phone.sync(&server.url);
    // The office's reasons name the person: an unmasking, a review decision.
    let (name, id, number) = people().swap_remove(0);
    let unmasked = office.post(
        &format!("/api/v1/trainees/{}/unmask", trainees[0]),
        json!({"reason": format!("核实{name}的身份证号")}),
    );
    assert!(unmasked.to_string().contains(&id), "{unmasked}");
    let page = office.get(&format!("/api/v1/classes/{class}"));
    let waiting: Vec<&serde_json::Value> = page["attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .filter(|a| a["payable"] == false && a["review"].is_null())
        .collect();
    assert_eq!(waiting.len(), 1, "{page}");
    let reason = format!("{name}本人到场，{number}回电核实");
    office.post(
        "/api/v1/review",
        json!({"doc_id": class, "subject": waiting[0]["attendance_id"],
               "decision": "accepted", "reason": reason}),
    );
    phone.sync(&server.url);
    let reviewed = |office: &Office| {
        let page = office.get(&format!("/api/v1/classes/{class}"));
        assert!(page.to_string().contains(&reason), "{page}");
    };
    reviewed(&office);

    // A new database: nothing in a dump, nor in any file of the cluster (WAL included), nor in
    // the data folder.
    assert_eq!(found(&pg.dump("songpei")), Vec::<String>::new(), "pg_dump");
    assert_eq!(
        found(&pg.files("")),
        Vec::<String>::new(),
        "the cluster's files"
    );
    assert_eq!(found(&folder_bytes(&server.data)), Vec::<String>::new());
    let key_file = songpei_server::DbKey::default_file(&server.data);
    assert!(key_file.exists() && !key_file.starts_with(&server.data));

    // The database as an earlier release left it: the people are in a dump.
    server.stop();
    unseal(&server);
    server
        .database()
        .batch("CHECKPOINT")
        .expect("the plain rows on disk");
    assert!(!found(&pg.dump("songpei")).is_empty(), "the plain database");
    assert!(
        !found(&pg.files("base")).is_empty(),
        "the plain tables' files"
    );
    std::fs::remove_file(&key_file).expect("no key yet");
    // Sealed in place at start, old row versions gone from the tables' files; nothing lost.
    server.restart();
    let other = CliPhone::new();
    server.enroll(&other, &[VILLAGE_A]);
    other.sync(&server.url);
    assert!(key_file.exists(), "a new key, beside the folder");
    assert_eq!(found(&pg.dump("songpei")), Vec::<String>::new(), "pg_dump");
    assert_eq!(
        found(&pg.files("base")),
        Vec::<String>::new(),
        "the tables' files"
    );
    let view = other.json(&["class", "show", &class]);
    assert_eq!(view["roster"].as_array().map(Vec::len), Some(2), "{view}");
    let office = Office::sign_in_again(&server, office);
    reviewed(&office);
    assert!(
        server
            .audit_log()
            .iter()
            .any(|(_, action, _, detail)| action == "read_personal" && detail.contains(name)),
        "the unmasking's reason, readable by the server"
    );
    assert!(server.admin_ok(&["audit", "verify"]).contains("intact"));

    // Key rotation: the new key opens everything, the old one nothing.
    server.stop();
    rekey(&server, [42; 32]);
    let refused = with_old_key(&server, Some(&url));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("another key"), "{err}");
    server.restart();
    other.sync(&server.url);
    reviewed(&Office::sign_in_again(&server, office));
    assert_eq!(found(&pg.dump("songpei")), Vec::<String>::new(), "pg_dump");
    assert_eq!(
        found(&pg.files("base")),
        Vec::<String>::new(),
        "the tables' files"
    );
}
