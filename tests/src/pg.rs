//! A throwaway PostgreSQL server for the tests: Debian's PostgreSQL 15 binaries, a cluster made
//! with `initdb` in a temporary folder, listening on a free loopback port. When the tests run as
//! root the server runs as the `postgres` user (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where Debian puts the PostgreSQL 15 binaries (`PG_BIN` overrides).
fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    dir.join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command as the user who may run PostgreSQL.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running PostgreSQL server, stopped when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Postgres {
    /// Makes a cluster that takes only TLS connections on its port (`hostssl`, `hostnossl …
    /// reject`), with a server certificate for `localhost` and `127.0.0.1` issued by a throwaway
    /// authority; returns it and the authority's certificate (PEM).
    pub fn start_with_tls() -> (Self, PathBuf) {
        let pg = Self::init();
        let dir = pg.dir.path().to_path_buf();
        let dir = dir.as_path();
        let sh = |script: &str| {
            check(
                "openssl",
                Command::new("sh")
                    .arg("-c")
                    .arg(script)
                    .current_dir(dir)
                    .output(),
            )
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
            -subj /CN=songpei-test-ca 2>/dev/null \
            && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
               -subj /CN=localhost 2>/dev/null \
            && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext \
            && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
               -out server.crt -days 2 -extfile ext 2>/dev/null \
            && chmod 600 server.key",
        );
        if is_root() {
            check(
                "chown",
                Command::new("chown")
                    .args(["postgres:postgres", "server.key", "server.crt"])
                    .current_dir(dir)
                    .output(),
            );
        }
        let conf = pg.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&format!(
            "\nssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
            dir.display()
        ));
        std::fs::write(&conf, text).expect("postgresql.conf");
        std::fs::write(
            pg.data().join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        pg.start_server();
        (pg, dir.join("ca.crt"))
    }

    /// Makes a cluster and starts it; panics with PostgreSQL's output if it cannot.
    pub fn start() -> Self {
        let pg = Self::init();
        pg.start_server();
        pg
    }

    fn init() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            check(
                "chown",
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.path())
                    .output(),
            );
        }
        let pg = Self {
            port: free_port(),
            dir,
        };
        check(
            "initdb",
            as_postgres(&bin("initdb"))
                .arg("-D")
                .arg(pg.data())
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ])
                .output(),
        );
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        check(
            "pg_ctl start",
            as_postgres(&bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .output(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not open its port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A connection URL for `database` (the cluster has `postgres`; see [`Postgres::create`]).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// One of PostgreSQL's client programs, pointed at this server as `postgres`.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(bin(program));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        c
    }

    /// Creates a database and gives its URL.
    pub fn create(&self, database: &str) -> String {
        check("createdb", self.client("createdb").arg(database).output());
        self.url(database)
    }

    /// Stops the server at once, as a crash would (`-m immediate`), then starts it again: what
    /// was committed is kept, every connection is cut.
    pub fn crash_and_restart(&self) {
        self.stop("immediate");
        self.start_server();
    }

    fn stop(&self, mode: &str) {
        let _ = as_postgres(&bin("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", mode, "stop"])
            .output();
    }

    /// A `pg_dump` of `database`, as plain SQL.
    pub fn dump(&self, database: &str) -> Vec<u8> {
        check("pg_dump", self.client("pg_dump").arg(database).output()).stdout
    }

    /// Every file under the cluster's data folder, or under its folder `sub` (`base`: the tables
    /// and indexes; `pg_wal`: the write-ahead log), concatenated.
    pub fn files(&self, sub: &str) -> Vec<u8> {
        fn walk(dir: &Path, out: &mut Vec<u8>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(bytes) = std::fs::read(&p) {
                    out.extend(bytes);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data().join(sub), &mut out);
        out
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop("immediate");
    }
}
