//! Operating the server (issue 22): `/metrics` in Prometheus' text format, for the server's own
//! machine or a bearer of `metrics_token` only, with no id or personal data in it; and a database
//! whose schema is newer than the server is refused, on SQLite and on PostgreSQL.

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, id_number};

/// `GET /metrics`: status and body.
fn metrics(server: &ServerProcess, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(format!("{}/metrics", server.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().expect("answer");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn metrics_are_for_operators_and_name_no_one(start: &dyn Fn(Option<&str>) -> ServerProcess) {
    let server = start(Some("metrics_token = \"s3cret-for-prometheus\"\n"));
    let phone = CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(2, &[]);
    let id = id_number("45080219880405002");
    let t = phone.trainee("韦春燕", &id, &["--phone", "13877001234"]);
    phone.ok(&["enrol", &class, &t]);
    phone.sync(&server.url);

    let (status, text) = metrics(&server, &[]);
    assert_eq!(status, 200, "from the server's machine");
    for line in [
        "songpei_http_requests_total{route=\"/v1/sync\",method=\"POST\",status=\"200\"}",
        "songpei_sync_seconds_bucket",
        "songpei_docs_merged_total",
        "songpei_sync_bytes_in_total",
        "songpei_store_wait_seconds_count",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    let merged: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("songpei_docs_merged_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("documents merged");
    assert!(merged >= 2.0, "the class and the trainee: {merged}");
    for secret in [id.as_str(), "韦春燕", "13877001234", &class, &t] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
    // Through a proxy on the machine, or from elsewhere, only with the token.
    let forwarded = [("X-Forwarded-For", "198.51.100.1")];
    assert_eq!(metrics(&server, &forwarded).0, 403);
    assert_eq!(
        metrics(
            &server,
            &[
                ("X-Forwarded-For", "198.51.100.1"),
                ("Authorization", "Bearer wrong")
            ]
        )
        .0,
        403
    );
    assert_eq!(
        metrics(
            &server,
            &[
                ("X-Forwarded-For", "198.51.100.1"),
                ("Authorization", "Bearer s3cret-for-prometheus")
            ]
        )
        .0,
        200
    );
}

fn a_database_newer_than_the_server_is_refused(start: &dyn Fn(Option<&str>) -> ServerProcess) {
    let mut server = start(None);
    server.kill();
    let db = server.database();
    match server.database_url() {
        Some(_) => {
            db.execute("INSERT INTO schema_version (version) VALUES (999)", &[])
                .expect("a later release's migration");
        }
        None => {
            db.batch("PRAGMA user_version = 999")
                .expect("a later release's migration");
        }
    }
    drop(db);
    let out = server.admin(&["device", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this server knows"), "{err}");
}

songpei_tests::on_every_database!(
    metrics_are_for_operators_and_name_no_one,
    a_database_newer_than_the_server_is_refused
);
