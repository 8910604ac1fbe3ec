//! A PostgreSQL server for the tests: the one `FLOW_TEST_POSTGRES` names (a connection
//! string to a database whose user may create databases), or else a throwaway cluster this
//! test process starts in a temporary directory (`initdb` and `pg_ctl`, as `nobody` when the
//! tests run as root: PostgreSQL refuses to run as root), listening on a Unix socket only,
//! and stopped when the process ends. Without either, the PostgreSQL tests say they were
//! skipped and why — except in CI (`CI=true`), where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A new, empty database on the test server, as a connection string; `None` (the test is
/// skipped, having said why) when there is no server.
pub fn database(name: &str) -> Option<String> {
    let server = match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(why) if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!("PostgreSQL is needed in CI: {why}"),
        Err(why) => {
            skipped(&format!("no PostgreSQL for `{name}` ({why}); set FLOW_TEST_POSTGRES or install PostgreSQL"));
            return None;
        }
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let database = format!("flow_{name}_{}_{n}", std::process::id());
    let mut admin = postgres::Client::connect(&format!("{server} dbname=postgres"), postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
    // One statement at a time: `CREATE DATABASE` does not run inside a transaction.
    for statement in [format!("DROP DATABASE IF EXISTS {database}"), format!("CREATE DATABASE {database}")] {
        admin.batch_execute(&statement).unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }
    Some(format!("{server} dbname={database}"))
}

/// Says that a test was skipped, and why, where whoever runs the tests sees it: straight to
/// the standard error, past the test harness's capture (which shows a passing test's output
/// to nobody).
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// The server, as a connection string without a database.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("FLOW_TEST_POSTGRES") {
        return Ok(url);
    }
    let cluster = Cluster::start("main")?;
    let server = cluster.server();
    // The shared server lives as long as the process.
    std::mem::forget(cluster);
    Ok(server)
}

/// A throwaway cluster of this test process, in a temporary directory of its own, listening
/// on a Unix socket only, stopped (and its directory removed) when dropped or when the
/// process ends, however it ends.
pub struct Cluster {
    pg_ctl: PathBuf,
    pub dir: PathBuf,
    port: String,
    root: bool,
    /// With TLS: the TCP port it listens on at `localhost`, with a certificate for `localhost`
    /// signed by an authority of its own (`dir/ca.crt`).
    pub tls_port: Option<u16>,
}

impl Cluster {
    /// A cluster of its own for a test that stops and restarts its server; `None` (the test
    /// is skipped, having said why) without PostgreSQL's programs, except in CI.
    pub fn own(name: &str) -> Option<Cluster> {
        Cluster::own_with(name, false, None)
    }

    /// A cluster of its own that also listens on `localhost` over TCP with TLS on.
    pub fn own_tls(name: &str) -> Option<Cluster> {
        Cluster::own_with(name, true, None)
    }

    /// A cluster of its own whose user `flow` must give `password` (SCRAM), not trusted.
    pub fn own_with_password(name: &str, password: &str) -> Option<Cluster> {
        Cluster::own_with(name, false, Some(password))
    }

    fn own_with(name: &str, tls: bool, password: Option<&str>) -> Option<Cluster> {
        match Cluster::start_with(name, tls, password) {
            Ok(cluster) => Some(cluster),
            Err(why) if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!("PostgreSQL is needed in CI: {why}"),
            Err(why) => {
                skipped(&format!("no PostgreSQL cluster for `{name}` ({why}); install PostgreSQL"));
                None
            }
        }
    }

    fn start(name: &str) -> Result<Cluster, String> {
        Cluster::start_with(name, false, None)
    }

    fn start_with(name: &str, tls: bool, password: Option<&str>) -> Result<Cluster, String> {
        let bin = ["/usr/local/bin", "/usr/bin"]
            .iter()
            .map(PathBuf::from)
            .chain(
                std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path().join("bin")),
            )
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
            .ok_or("`initdb` and `pg_ctl` were not found")?;
        let dir = std::env::temp_dir().join(format!("flow-postgres-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let root = is_root();
        if root {
            let chown = Command::new("chown").args(["nobody:", &dir.display().to_string()]).status();
            if !chown.is_ok_and(|s| s.success()) {
                return Err(format!("cannot give {} to `nobody`", dir.display()));
            }
        }
        // A port of its own (the socket's name carries it; the socket is in `dir`).
        let port = (20_000 + std::process::id() % 20_000).to_string();
        let tls_port = tls.then(|| 40_000 + (std::process::id() % 20_000) as u16);
        let cluster = Cluster { pg_ctl: bin.join("pg_ctl"), dir, port, root, tls_port };
        let data = cluster.dir.join("data").display().to_string();
        let mut initdb = vec!["-D", &data, "-U", "flow", "--no-sync", "-E", "UTF8"];
        let pwfile = cluster.dir.join("pwfile").display().to_string();
        let pwfile_arg = format!("--pwfile={pwfile}");
        match password {
            None => initdb.push("--auth=trust"),
            Some(password) => {
                std::fs::write(&pwfile, format!("{password}\n")).map_err(|e| format!("{pwfile}: {e}"))?;
                initdb.extend(["--auth=scram-sha-256", &pwfile_arg]);
            }
        }
        cluster.run(&bin.join("initdb"), &initdb)?;
        if tls {
            // An authority of its own (`ca.crt`) and the server's certificate it signed.
            let script = "set -e; \
                openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=flow-test-ca -keyout ca.key \
                  -out ca.crt 2>/dev/null; \
                openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr \
                  2>/dev/null; \
                echo subjectAltName=DNS:localhost > server.ext; \
                openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                  -extfile server.ext -out server.crt 2>/dev/null; \
                chmod 600 server.key";
            cluster.run(Path::new("/bin/sh"), &["-c", script])?;
        }
        cluster.ctl("start")?;
        // Stopped when this process ends, however it ends.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate stop \
             >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if root { "runuser -u nobody -- " } else { "" },
            pg_ctl = cluster.pg_ctl.display(),
            dir = cluster.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot watch the test server: {e}"))?;
        Ok(cluster)
    }

    /// The server, as a connection string without a database.
    pub fn server(&self) -> String {
        let port = self.tls_port.map_or(self.port.clone(), |port| port.to_string());
        format!("host={} port={port} user=flow", self.dir.display())
    }

    /// The cluster's own database `postgres`, as a connection string.
    pub fn database(&self) -> String {
        format!("{} dbname=postgres", self.server())
    }

    /// `pg_ctl start`, `stop` (fast: connections are cut) or `restart`, waiting until done.
    pub fn ctl(&self, action: &str) -> Result<(), String> {
        let data = self.dir.join("data").display().to_string();
        let socket = self.dir.display().to_string();
        let listen = match self.tls_port {
            None => "-c listen_addresses=''".to_owned(),
            Some(_) => format!(
                "-c listen_addresses=localhost -c ssl=on -c ssl_cert_file={socket}/server.crt \
                 -c ssl_key_file={socket}/server.key"
            ),
        };
        let port = self.tls_port.map_or(self.port.clone(), |port| port.to_string());
        let options = format!("-k {socket} -p {port} {listen} -c fsync=off -c max_connections=200");
        let log = format!("{socket}/log");
        let mut args = vec!["-D", &data, "-w", "-m", "fast"];
        if action != "stop" {
            args.extend(["-o", &options, "-l", &log]);
        }
        args.push(action);
        self.run(&self.pg_ctl, &args)
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<(), String> {
        let mut command = if self.root {
            let mut command = Command::new("runuser");
            command.args(["-u", "nobody", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        let output =
            command.args(args).current_dir(&self.dir).output().map_err(|e| format!("{}: {e}", program.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{} failed: {}", program.display(), String::from_utf8_lossy(&output.stderr)))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
