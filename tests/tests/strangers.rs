//! What a stranger on the network can do to other people's use of the server (issue 22). Behind a
//! proxy, a server that trusts it counts each client against the client's own address, read from
//! `X-Forwarded-For`, and a server that trusts no proxy never believes the header. Asking for
//! challenges in a phone's name (its device id is in every class code it shows) evicts none of
//! the phone's: it still gets its tokens, and a challenge serves once.

use songpei_core::sync::engine::Transport;
use songpei_tests::{ServerProcess, VILLAGE_A};

/// Statuses of `n` requests to `/healthz` from this machine, each forwarded for `client`.
fn statuses(server: &ServerProcess, client: &str, n: usize) -> Vec<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    (0..n)
        .map(|_| {
            agent
                .get(format!("{}/healthz", server.url))
                .header("X-Forwarded-For", client)
                .call()
                .expect("answer")
                .status()
                .as_u16()
        })
        .collect()
}

/// 8 a minute, in bursts of 2: the third request at once is refused.
const LIMITS: &str = "[limits]\nip_requests_per_minute = 8\n";

#[test]
fn rate_limits_behind_a_trusted_proxy_key_on_the_client() {
    let server = ServerProcess::start_with_config(Some(&format!(
        "trusted_proxies = [\"127.0.0.1\"]\n{LIMITS}"
    )));
    let a = statuses(&server, "198.51.100.1", 3);
    assert_eq!(a, [200, 200, 429], "one client over its burst");
    // Another client behind the same proxy has a bucket of its own.
    assert_eq!(statuses(&server, "198.51.100.2", 2), [200, 200]);
    // A forged address to the left of the one the proxy appended changes nothing.
    assert_eq!(statuses(&server, "203.0.113.7, 198.51.100.1", 1), [429]);
}

#[test]
fn without_a_trusted_proxy_x_forwarded_for_is_not_believed() {
    let server = ServerProcess::start_with_config(Some(LIMITS));
    assert_eq!(statuses(&server, "198.51.100.1", 2), [200, 200]);
    assert_eq!(
        statuses(&server, "198.51.100.2", 1),
        [429],
        "a new address in the header is no new bucket"
    );
}

#[test]
fn a_challenge_flood_in_a_phones_name_does_not_stop_it_renewing_its_token() {
    let server = ServerProcess::start();
    let code = server.enrollment_code("li", &[VILLAGE_A]);
    let mut store = songpei_core::store::MemoryDocStore::new();
    let mut t = songpei_core::sync::http::HttpTransport::new(
        &server.url,
        std::time::Duration::from_secs(30),
    );
    songpei_core::sync::auth::enroll_with(&mut store, &mut t, &server.url, &code).expect("enroll");
    let mut phone = songpei_core::Phone::open(
        store,
        songpei_core::blind_index::BlindIndexKey::from_bytes([1; 32]),
    )
    .expect("open");
    let device = phone.profile().device.uuid().to_string();
    let flood = || {
        for _ in 0..20 {
            let status = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent()
                .post(format!("{}/v1/auth/challenge", server.url))
                .header("Content-Type", "application/json")
                .send(format!("{{\"device\": \"{device}\"}}"))
                .expect("answer")
                .status()
                .as_u16();
            assert_eq!(status, 200, "anyone may ask");
        }
    };
    let mut renew = |phone: &mut songpei_core::Phone<_>| {
        let req = phone
            .token_request()
            .expect("token request")
            .expect("a challenge");
        let body = serde_json::to_vec(&req).expect("json");
        let answer = t.call("/v1/auth/token", &body).expect("a token");
        let resp: songpei_core::sync::auth::TokenResponse =
            serde_json::from_slice(&answer).expect("token response");
        phone.accept_token(&resp).expect("keep token");
        body
    };
    // The challenge from enrollment, then the one each token came with.
    flood();
    let used = renew(&mut phone);
    flood();
    renew(&mut phone);
    // A challenge serves once: the same signed request again is refused.
    let mut again = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("{}/v1/auth/token", server.url))
        .header("Content-Type", "application/json")
        .send(&used[..])
        .expect("answer");
    assert_eq!(again.status().as_u16(), 401);
    let body = again.body_mut().read_to_string().unwrap_or_default();
    assert!(body.contains("bad_challenge"), "{body}");
}

/// A login's status, forwarded for `client` when given.
fn login(server: &ServerProcess, username: &str, password: &str, client: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent
        .post(format!("{}/api/v1/login", server.url))
        .header("Content-Type", "application/json");
    if let Some(c) = client {
        req = req.header("X-Forwarded-For", c);
    }
    req.send(serde_json::json!({"username": username, "password": password}).to_string())
        .expect("answer")
        .status()
        .as_u16()
}

#[test]
fn syncs_during_a_login_flood_all_succeed_and_the_office_still_signs_in() {
    let server = ServerProcess::start_with_config(Some("trusted_proxies = [\"127.0.0.1\"]\n"));
    let password = server.add_district_account("clerk", "district_admin");
    assert_eq!(login(&server, "clerk", &password, None), 200);
    let phone = songpei_tests::CliPhone::new();
    server.enroll(&phone, &[VILLAGE_A]);
    let class = phone.class(2, &[]);

    // Wrong passwords for the clerk and for unknown usernames, from 40 addresses behind the
    // proxy, while the phone records and syncs.
    let flood = std::thread::scope(|scope| {
        let flooders: Vec<_> = (0..2)
            .map(|t| {
                let server = &server;
                scope.spawn(move || {
                    (0..60)
                        .map(|i| {
                            let client = format!("198.51.100.{}", (t * 60 + i) % 40 + 1);
                            let user = if i % 2 == 0 {
                                "clerk".to_owned()
                            } else {
                                format!("u{i}")
                            };
                            login(server, &user, "guess", Some(&client))
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        for (day, name) in ["韦春燕", "覃丽华", "黄伟"].into_iter().enumerate() {
            let t = phone.trainee(
                name,
                &songpei_tests::id_number(&format!("4508021990010{}12", 10 + day)),
                &[],
            );
            phone.ok(&["enrol", &class, &t]);
            let report = phone.sync(&server.url);
            assert!(report.to_string().contains("pushed"), "{report}");
        }
        flooders
            .into_iter()
            .flat_map(|f| f.join().expect("flooder"))
            .collect::<Vec<u16>>()
    });
    assert!(
        flood.iter().all(|s| *s == 401 || *s == 429),
        "every wrong login refused: {flood:?}"
    );
    assert!(flood.contains(&429), "the flood was throttled: {flood:?}");
    // A new address waits out the account's throttle; the clerk signs in from where they signed
    // in before, the flood on their name notwithstanding.
    assert_eq!(
        login(&server, "clerk", &password, Some("203.0.113.50")),
        429
    );
    assert_eq!(login(&server, "clerk", &password, None), 200);
}
