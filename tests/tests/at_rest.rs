//! Personal data at rest on the server's SQLite (issue 21, row 1; ADR 0009): after a day of
//! records, no file of the data folder holds a trainee's name, ID number or phone number — the
//! database, its WAL and everything beside them — and the folder is private to the server's user,
//! its key kept beside it, not in it. A plain database from an earlier release is encrypted in
//! place at start, losing nothing.

use std::path::Path;

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, contains, folder_bytes, id_number};

/// The seed's people: name, ID number, phone.
fn people() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("韦春燕", id_number("45080219880405002"), "13877001234"),
        ("覃丽华", id_number("45080219900707004"), "13977005678"),
    ]
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
}
