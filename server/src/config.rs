//! Configuration: flags, then `SONGPEI_*` environment variables, then an optional TOML file, then
//! defaults — the first that sets a value wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use songpei_core::rules::{Policy, PolicyTable};

/// Caps on what one request may hold. A phone stays far below them; they exist so that no request
/// can exhaust the server.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Compressed request body.
    pub max_body_bytes: usize,
    /// Request body after decompression, enforced while decompressing.
    pub max_decompressed_bytes: usize,
    /// Documents pushed in one request.
    pub max_docs_per_request: usize,
    /// Automerge changes in one request.
    pub max_changes_per_request: usize,
    /// Automerge operations in one request.
    pub max_ops_per_request: u64,
    /// Change bytes pushed for one document in one request (a single huge text is refused here).
    pub max_push_bytes: usize,
    /// Automerge operations in one document, over its whole life.
    pub max_ops_per_doc: u64,
    /// Documents in one response, in uncompressed bytes (the phone may ask for less).
    pub max_response_bytes: u32,
    /// Requests one device may make per minute (sync and tokens), in bursts of up to a quarter.
    pub device_requests_per_minute: u32,
    /// Requests one IP address may make per minute, on every route; a village's phones may share
    /// one carrier address.
    pub ip_requests_per_minute: u32,
    /// Writes outside its villages one device may attempt per hour before it is refused with 429.
    pub out_of_scope_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 << 20,
            max_decompressed_bytes: 64 << 20,
            max_docs_per_request: 1_000,
            max_changes_per_request: 10_000,
            max_ops_per_request: 1_000_000,
            max_push_bytes: 8 << 20,
            max_ops_per_doc: 2_000_000,
            max_response_bytes: 4 << 20,
            device_requests_per_minute: 120,
            ip_requests_per_minute: 1_200,
            out_of_scope_per_hour: 10,
        }
    }
}

/// How sign-ins are taken (`[signin]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigninRules {
    /// Of a sign-in's trainees (one class, day, and sign-in or sign-out) paid by phone or on cards,
    /// the share in percent whose card may be scanned by one phone alone and still count without
    /// review; card scans past it
    /// wait for review unless an instructor of the class scanned the same card too.
    pub card_share_percent: u32,
}

impl Default for SigninRules {
    fn default() -> Self {
        Self {
            card_share_percent: 20,
        }
    }
}

/// The district office's side (`[office]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OfficeRules {
    /// The dashboard's public address (`https://host[:port]`), as the office's browsers reach it:
    /// state-changing requests must come from it (`Origin`), and the session cookie is `Secure`
    /// when it is HTTPS. Without it, a request's `Origin` must match its `Host`.
    pub public_url: Option<String>,
    /// Trainees one account may unmask ad hoc in a China day.
    pub unmask_per_day: u32,
    /// A session unused this long ends.
    pub session_idle_minutes: u32,
    /// Largest target table accepted, in bytes.
    pub max_targets_bytes: usize,
}

impl Default for OfficeRules {
    fn default() -> Self {
        Self {
            public_url: None,
            unmask_per_day: 20,
            session_idle_minutes: 60,
            max_targets_bytes: 256 << 10,
        }
    }
}

impl OfficeRules {
    /// The origin (`scheme://host[:port]`) of the public URL, when one is set.
    pub fn origin(&self) -> Option<String> {
        let u: axum::http::Uri = self.public_url.as_deref()?.trim().parse().ok()?;
        Some(format!("{}://{}", u.scheme_str()?, u.authority()?).to_ascii_lowercase())
    }

    /// Whether the session cookie is `Secure`.
    pub fn secure(&self) -> bool {
        self.origin().is_some_and(|o| o.starts_with("https://"))
    }

    fn check(&self) -> Result<(), String> {
        if let Some(u) = &self.public_url
            && !self
                .origin()
                .is_some_and(|o| o.starts_with("https://") || o.starts_with("http://"))
        {
            return Err(format!(
                "office.public_url: {u} is not an http(s) address such as https://songpei.example.cn"
            ));
        }
        if self.session_idle_minutes == 0 {
            return Err("office.session_idle_minutes: must be at least 1".into());
        }
        if self.max_targets_bytes == 0 {
            return Err("office.max_targets_bytes: must be at least 1".into());
        }
        Ok(())
    }
}

/// Call-back sampling (`[callbacks]` in the file).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksFile {
    /// The share of payable trainee-days called back, 0 to 1.
    pub rate: f64,
}

impl Default for CallbacksFile {
    fn default() -> Self {
        Self { rate: 0.05 }
    }
}

/// Call-back sampling: the share of payable trainee-days the office calls, in parts per million.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackRules {
    /// Parts per million of payable trainee-days drawn for a call.
    pub per_million: u32,
}

impl Default for CallbackRules {
    fn default() -> Self {
        Self {
            per_million: 50_000,
        }
    }
}

/// The server's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder of the database and keys.
    pub data: PathBuf,
    /// Request caps.
    pub limits: Limits,
    /// Documents kept loaded in memory.
    pub cache_docs: usize,
    /// How often the background compaction runs.
    pub compact_every: Duration,
    /// Longest time a request may take, body upload included.
    pub request_timeout: Duration,
    /// The allowance rate and the yearly cap, by the date they take effect (`[[policy]]`);
    /// each training day is paid at the rate in force that day.
    pub policy: PolicyTable,
    /// `postgres://user@host:port/db`: run on PostgreSQL instead of the data folder's SQLite. The
    /// data folder still holds the keys, which every replica must share.
    pub database_url: Option<String>,
    /// How sign-ins are taken.
    pub signin: SigninRules,
    /// How trainee-days are drawn for a call-back.
    pub callbacks: CallbackRules,
    /// The district office's side.
    pub office: OfficeRules,
    /// Proxies whose `X-Forwarded-For` names the client (nginx in front of the server): a request
    /// from one of them is counted against the address it forwards for.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A bearer token that reads `/metrics` from elsewhere than the server's machine.
    pub metrics_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./songpei-data"),
            limits: Limits::default(),
            cache_docs: 256,
            compact_every: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            policy: PolicyTable::default(),
            database_url: None,
            signin: SigninRules::default(),
            callbacks: CallbackRules::default(),
            office: OfficeRules::default(),
            trusted_proxies: Vec::new(),
            metrics_token: None,
        }
    }
}

/// The optional TOML file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Data folder.
    pub data: Option<PathBuf>,
    /// Documents kept loaded.
    pub cache_docs: Option<usize>,
    /// Seconds between compactions.
    pub compact_every_secs: Option<u64>,
    /// Seconds a request may take.
    pub request_timeout_secs: Option<u64>,
    /// Request caps.
    pub limits: Option<Limits>,
    /// `[[policy]]` entries: `effective_from = "YYYY-MM-DD"`, `allowance_fen_per_day`,
    /// `max_subsidised_per_year` (1–3).
    pub policy: Option<Vec<Policy>>,
    /// `postgres://…`.
    pub database_url: Option<String>,
    /// `[signin]`: `card_share_percent` (0–100).
    pub signin: Option<SigninRules>,
    /// `[callbacks]`: `rate` (0–1), the share of payable trainee-days called back.
    pub callbacks: Option<CallbacksFile>,
    /// `[office]`: `public_url`, `unmask_per_day`, `session_idle_minutes`, `max_targets_bytes`.
    pub office: Option<OfficeRules>,
    /// Addresses or networks of the proxies in front of the server (`"127.0.0.1"`,
    /// `"10.0.0.0/8"`): only their `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// A bearer token that reads `/metrics` from elsewhere than the server's machine.
    pub metrics_token: Option<String>,
}

/// A proxy's address (`10.0.0.5`) or network (`10.0.0.0/8`, `::1/128`).
pub(crate) fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let t = text.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("trusted_proxies: {text} is not an address or a network such as 10.0.0.0/8")
        })
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(entries) = &file.policy {
            check_policy(entries).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        for p in file.trusted_proxies.iter().flatten() {
            parse_proxy(p).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(s) = &file.signin
            && s.card_share_percent > 100
        {
            return Err(format!(
                "{}: signin.card_share_percent: {} is not between 0 and 100",
                path.display(),
                s.card_share_percent
            ));
        }
        if let Some(o) = &file.office {
            o.check().map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(c) = &file.callbacks
            && !(0.0..=1.0).contains(&c.rate)
        {
            return Err(format!(
                "{}: callbacks.rate: {} is not between 0 and 1",
                path.display(),
                c.rate
            ));
        }
        Ok(file)
    }
}

/// The policy entries a server can pay by: at least one, each rate between 0 and 1,000 yuan a day,
/// a yearly cap of 1 to 3 (the national rule, which the database enforces), no date twice.
pub(crate) fn check_policy(entries: &[Policy]) -> Result<(), String> {
    if entries.is_empty() {
        return Err(
            "policy: give at least one [[policy]] entry, or none to use the defaults".into(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in entries.iter().enumerate() {
        if !(0..=100_000).contains(&p.allowance_fen_per_day) {
            return Err(format!(
                "policy[{i}].allowance_fen_per_day: {} is not between 0 and 100000 fen",
                p.allowance_fen_per_day
            ));
        }
        if !(1..=3).contains(&p.max_subsidised_per_year) {
            return Err(format!(
                "policy[{i}].max_subsidised_per_year: {} is not between 1 and 3",
                p.max_subsidised_per_year
            ));
        }
        if !seen.insert(p.effective_from) {
            return Err(format!(
                "policy[{i}].effective_from: {} is given twice",
                p.effective_from
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Merges flag/environment values (already combined by the argument parser) over the file's,
    /// over the defaults.
    pub fn resolve(
        listen: Option<SocketAddr>,
        data: Option<PathBuf>,
        cache_docs: Option<usize>,
        database_url: Option<String>,
        file: FileConfig,
    ) -> Self {
        let d = Config::default();
        Config {
            listen: listen.or(file.listen).unwrap_or(d.listen),
            data: data.or(file.data).unwrap_or(d.data),
            limits: file.limits.unwrap_or(d.limits),
            cache_docs: cache_docs.or(file.cache_docs).unwrap_or(d.cache_docs),
            compact_every: file
                .compact_every_secs
                .map_or(d.compact_every, Duration::from_secs),
            request_timeout: file
                .request_timeout_secs
                .map_or(d.request_timeout, Duration::from_secs),
            policy: file.policy.map_or(d.policy, PolicyTable::new),
            database_url: database_url
                .or(file.database_url)
                .filter(|u| !u.trim().is_empty()),
            signin: file.signin.unwrap_or(d.signin),
            office: file.office.unwrap_or(d.office),
            trusted_proxies: file
                .trusted_proxies
                .iter()
                .flatten()
                .filter_map(|p| parse_proxy(p).ok())
                .collect(),
            metrics_token: file.metrics_token.filter(|t| !t.trim().is_empty()),
            callbacks: file.callbacks.map_or(d.callbacks, |c| CallbackRules {
                per_million: (c.rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u32,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\ndata = \"/srv/songpei\"\ncache_docs = 10\n[limits]\nmax_body_bytes = 1024\n",
        )
        .expect("valid toml");
        let c = Config::resolve(
            Some("127.0.0.1:7000".parse().expect("addr")),
            None,
            None,
            None,
            file,
        );
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.data, PathBuf::from("/srv/songpei"));
        assert_eq!(c.cache_docs, 10);
        assert_eq!(c.limits.max_body_bytes, 1024);
        assert_eq!(
            c.limits.max_docs_per_request,
            Limits::default().max_docs_per_request
        );
        let d = Config::resolve(None, None, None, None, FileConfig::default());
        assert_eq!(d, Config::default());
    }

    #[test]
    fn the_call_back_rate_is_read_and_a_rate_outside_0_to_1_is_refused_naming_it() {
        assert_eq!(Config::default().callbacks.per_million, 50_000);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        // (file, per million, or the error's start)
        for (text, want) in [
            ("[callbacks]\nrate = 0.05\n", Ok(50_000)),
            ("[callbacks]\nrate = 1.0\n", Ok(1_000_000)),
            ("[callbacks]\nrate = 1\n", Ok(1_000_000)),
            ("[callbacks]\nrate = 0.0\n", Ok(0)),
            ("[callbacks]\n", Ok(50_000)),
            ("", Ok(50_000)),
            ("[callbacks]\nrate = 1.5\n", Err("callbacks.rate")),
            ("[callbacks]\nrate = -0.01\n", Err("callbacks.rate")),
            ("[callbacks]\nrate = nan\n", Err("callbacks.rate")),
            ("[callbacks]\nratio = 0.1\n", Err("unknown field")),
        ] {
            std::fs::write(&path, text).expect("write");
            let got = FileConfig::read(&path).map(|f| {
                Config::resolve(None, None, None, None, f)
                    .callbacks
                    .per_million
            });
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, w, "{text:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text:?}: {e}"),
                (got, want) => panic!("{text:?}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks_and_anything_else_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        // (file, proxies, or the error's start)
        for (text, want) in [
            ("", Ok(0)),
            ("trusted_proxies = [\"127.0.0.1\"]\n", Ok(1)),
            (
                "trusted_proxies = [\"10.0.0.0/8\", \"::1\", \"fd00::/8\"]\n",
                Ok(3),
            ),
            (
                "trusted_proxies = [\"nginx\"]\n",
                Err("trusted_proxies: nginx"),
            ),
            (
                "trusted_proxies = [\"10.0.0.0/33\"]\n",
                Err("trusted_proxies: 10.0.0.0/33"),
            ),
            ("trusted_proxies = \"127.0.0.1\"\n", Err("trusted_proxies")),
        ] {
            std::fs::write(&path, text).expect("write");
            let got = FileConfig::read(&path).map(|f| {
                Config::resolve(None, None, None, None, f)
                    .trusted_proxies
                    .len()
            });
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, w, "{text:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text:?}: {e}"),
                (got, want) => panic!("{text:?}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn a_policy_table_that_cannot_be_paid_by_is_refused_naming_the_entry_and_field() {
        let entry = |from: &str, fen: i64, cap: u32| Policy {
            effective_from: from.parse().expect("date"),
            allowance_fen_per_day: fen,
            max_subsidised_per_year: cap,
        };
        let good = entry("2019-01-01", 5_000, 3);
        assert_eq!(check_policy(std::slice::from_ref(&good)), Ok(()));
        let cases: Vec<(Vec<Policy>, &str)> = vec![
            (vec![], "policy:"),
            (
                vec![entry("2019-01-01", -1, 3)],
                "policy[0].allowance_fen_per_day",
            ),
            (
                vec![good.clone(), entry("2026-01-01", 100_001, 3)],
                "policy[1].allowance_fen_per_day",
            ),
            (
                vec![entry("2019-01-01", 5_000, 0)],
                "policy[0].max_subsidised_per_year",
            ),
            (
                vec![entry("2019-01-01", 5_000, 4)],
                "policy[0].max_subsidised_per_year",
            ),
            (
                vec![good.clone(), entry("2019-01-01", 6_000, 3)],
                "policy[1].effective_from",
            ),
        ];
        for (entries, field) in cases {
            let err = check_policy(&entries).expect_err(field);
            assert!(err.starts_with(field), "{field}: {err}");
        }
        // From a file: the rate by date, and a bad date named by TOML.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[policy]]\neffective_from = \"2019-01-01\"\nallowance_fen_per_day = 5000\nmax_subsidised_per_year = 3\n\
             [[policy]]\neffective_from = \"2026-03-04\"\nallowance_fen_per_day = 6000\nmax_subsidised_per_year = 3\n",
        )
        .expect("write");
        let c = Config::resolve(
            None,
            None,
            None,
            None,
            FileConfig::read(&path).expect("valid"),
        );
        let day = |d: &str| d.parse().expect("date");
        let rate = |d| c.policy.in_force(day(d)).map(|p| p.allowance_fen_per_day);
        assert_eq!(rate("2026-03-03"), Some(5_000));
        assert_eq!(rate("2026-03-04"), Some(6_000));
        std::fs::write(
            &path,
            "[[policy]]\neffective_from = \"2026-02-30\"\nallowance_fen_per_day = 5000\nmax_subsidised_per_year = 3\n",
        )
        .expect("write");
        assert!(FileConfig::read(&path).is_err());
        std::fs::write(
            &path,
            "[[policy]]\neffective_from = \"2026-01-01\"\nallowance_fen_per_day = 5000\nmax_subsidised_per_year = 9\n",
        )
        .expect("write");
        let err = FileConfig::read(&path).expect_err("cap of 9");
        assert!(err.contains("policy[0].max_subsidised_per_year"), "{err}");
    }
}
