//! Connections to PostgreSQL over TLS (issue 21, row 1), against a server that refuses any
//! connection without it: `sslmode=require` encrypts; `verify-full` checks the certificate against
//! `sslrootcert` and refuses one no known authority issued; without `sslmode` the server refuses
//! the plain connection. A real songpei-server on `require` serves a phone's sync.

use songpei_server::ServerStore;
use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, pg::Postgres};

#[test]
fn the_server_reaches_postgresql_over_tls_when_the_url_asks() {
    let (pg, ca) = Postgres::start_with_tls();
    // The connection checks open (and seal) a database of their own, under their own key.
    let url = pg.create("probe");
    let ca = ca.display().to_string();
    let host = url.replace("127.0.0.1", "localhost");
    let keys = tempfile::tempdir().expect("tempdir");
    // (url, connects)
    for (u, ok) in [
        (url.clone(), false),
        (format!("{url}?sslmode=disable"), false),
        (format!("{url}?sslmode=require"), true),
        (format!("{host}?sslmode=verify-full&sslrootcert={ca}"), true),
        (format!("{url}?sslmode=verify-full&sslrootcert={ca}"), true),
        (format!("{host}?sslmode=verify-full"), false),
        (format!("{url}?sslmode=sometimes"), false),
    ] {
        let opened = ServerStore::open_postgres(&u, 1, &keys.path().join("data"));
        assert_eq!(opened.is_ok(), ok, "{u}: {:?}", opened.err());
    }
    let url = pg.create("songpei");
    let server = ServerProcess::start_on(Some(&format!("{url}?sslmode=require")), None);
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(2, &[]);
    let report = phone.sync(&server.url);
    assert!(report.to_string().contains("pushed"), "{report}");
    let other = CliPhone::new();
    server.enroll(&other, &[VILLAGE_A]);
    other.sync(&server.url);
    assert!(other.ok(&["class", "list"]).contains(&class));
}
