//! The load generator of the service benchmark (`bench/serve/run.sh`): CLIENTS clients each
//! start runs one after another for SECONDS — over HTTP against `flowc serve` (a keep-alive
//! connection per client, as an application's client pool holds them, through hyper's own
//! client), or in this process through the runtime on a SQLite store (the same work without
//! HTTP) — and prints the started runs per second and the latency of a start as JSON:
//! `{"mode", "clients", "runs", "errors", "runs_per_s", "p50_ms", "p95_ms", "p99_ms"}`. Each
//! start is a stored run of the rules plan with one of 4,096 generated applications
//! (`flow-cases`), prepared before the clock starts — as JSON text for HTTP, as values
//! in-process — so that what is timed is the service's work, not the load generator's.
//!
//! `flow-load http URL TOKEN PLAN_HASH CLIENTS SECONDS`
//! `flow-load get URL TOKEN PATH CLIENTS SECONDS`: GETs PATH instead (mode `get`; a `200`
//! expected), for what a request costs when it asks the runtime nothing
//! `flow-load in-process STORE.db PLAN.json CLIENTS SECONDS`
//! `flow-load decide URL TOKEN RUNS.txt PAUSE_MS`: decides the pending runs listed (one per
//! line) one after another over HTTP, and prints the latency of a decision.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flow_runtime::store::SqliteStore;
use flow_runtime::{Principal, Runtime, StartOptions};
use serde_json::{Value as Json, json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["http", url, token, plan, clients, seconds] => {
            numbers(clients, seconds).and_then(|(c, s)| http(url, token, plan, c, s))
        }
        ["get", url, token, path, clients, seconds] => {
            numbers(clients, seconds).and_then(|(c, s)| get(url, token, path, c, s))
        }
        ["in-process", store, plan, clients, seconds] => {
            numbers(clients, seconds).and_then(|(c, s)| in_process(store, plan, c, s))
        }
        ["decide", url, token, runs, pause] => pause.parse().map_err(|_| "PAUSE_MS is a whole number".to_owned()).and_then(|p| decide(url, token, runs, p)),
        _ => Err("usage: flow-load http URL TOKEN PLAN_HASH CLIENTS SECONDS | get URL TOKEN PATH CLIENTS SECONDS | in-process STORE PLAN CLIENTS SECONDS | decide URL TOKEN RUNS PAUSE_MS".to_owned()),
    };
    match result {
        Ok(json) => {
            use std::io::Write;
            match writeln!(std::io::stdout(), "{json}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Err(error) => {
            eprintln!("flow-load: {error}");
            ExitCode::from(2)
        }
    }
}

fn numbers(clients: &str, seconds: &str) -> Result<(usize, f64), String> {
    match (clients.parse::<usize>(), seconds.parse::<f64>()) {
        (Ok(c @ 1..), Ok(s)) if s > 0.0 => Ok((c, s)),
        _ => Err("CLIENTS (at least 1) and SECONDS (more than 0) are numbers".to_owned()),
    }
}

/// The inputs of the `n`th start.
fn inputs(n: u64) -> Json {
    json!({"app": flow_bench::Case::generate(n).flow_json()})
}

/// How many different applications the clients send, prepared before the clock starts.
const PREPARED: u64 = 4096;

/// Runs `clients` threads, each calling `start(n)` until `seconds` have passed; summarises.
fn load(mode: &str, clients: usize, seconds: f64, start: impl Fn(u64) -> bool + Sync) -> Json {
    let next = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let began = Instant::now();
    let mut latencies: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let at = Instant::now();
                        if start(n) {
                            mine.push(at.elapsed().as_micros() as u64);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    mine
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
    });
    let elapsed = began.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(i).map(|us| *us as f64 / 1000.0)
    };
    json!({
        "mode": mode, "clients": clients, "runs": latencies.len(), "errors": errors.load(Ordering::Relaxed),
        "runs_per_s": (latencies.len() as f64 / elapsed).round(),
        "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
    })
}

/// Says what went wrong the first time only: a failing load fails the same way many times.
fn report_once(what: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| eprintln!("flow-load: {what}"));
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections_per_host(1024).build();
    ureq::Agent::new_with_config(config)
}

fn http(url: &str, token: &str, plan: &str, clients: usize, seconds: f64) -> Result<Json, String> {
    let bodies: Vec<String> = (0..PREPARED).map(|n| json!({"plan": plan, "inputs": inputs(n)}).to_string()).collect();
    let bearer = format!("Bearer {token}");
    over_http("http", url, clients, seconds, 201, |address, n| {
        hyper::Request::post("/v1/runs")
            .header(hyper::header::HOST, address)
            .header(hyper::header::AUTHORIZATION, &bearer)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(bodies[(n % PREPARED) as usize].clone())
    })
}

/// GETs `path` over and over: what a request costs the server and the client when it asks
/// the runtime for nothing (`/v1/me`, `/v1/health`), the floor under every other request.
fn get(url: &str, token: &str, path: &str, clients: usize, seconds: f64) -> Result<Json, String> {
    let bearer = format!("Bearer {token}");
    over_http("get", url, clients, seconds, 200, |address, _| {
        hyper::Request::get(path)
            .header(hyper::header::HOST, address)
            .header(hyper::header::AUTHORIZATION, &bearer)
            .body(String::new())
    })
}

/// Runs `clients` keep-alive connections, each sending `request(address, n)` and expecting
/// `expected` back, one request after another.
fn over_http(
    mode: &str,
    url: &str,
    clients: usize,
    seconds: f64,
    expected: u16,
    request: impl Fn(&str, u64) -> hyper::http::Result<hyper::Request<String>> + Sync,
) -> Result<Json, String> {
    let address = url.strip_prefix("http://").ok_or("URL is an http:// URL")?.trim_end_matches('/').to_owned();
    thread_local! {
        static CLIENT: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) };
    }
    Ok(load(mode, clients, seconds, |n| {
        CLIENT.with_borrow_mut(|client| {
            if client.is_none() {
                match Client::connect(&address) {
                    Ok(connected) => *client = Some(connected),
                    Err(error) => {
                        report_once(&format!("cannot connect to {address}: {error}"));
                        return false;
                    }
                }
            }
            let Some(connected) = client.as_mut() else { return false };
            let request = match request(&address, n) {
                Ok(request) => request,
                Err(error) => {
                    report_once(&format!("cannot make a request: {error}"));
                    return false;
                }
            };
            match connected.send(request) {
                Ok((status, _)) if status == expected => true,
                Ok((status, answer)) => {
                    report_once(&format!("a request answered {status}: {answer}"));
                    false
                }
                Err(error) => {
                    report_once(&format!("a request got no answer: {error}"));
                    *client = None;
                    false
                }
            }
        })
    }))
}

/// One keep-alive HTTP/1.1 connection of hyper's client, driven by a runtime of its own
/// thread.
struct Client {
    runtime: tokio::runtime::Runtime,
    sender: hyper::client::conn::http1::SendRequest<String>,
}

impl Client {
    fn connect(address: &str) -> Result<Client, String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let sender = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            Ok::<_, String>(sender)
        })?;
        Ok(Client { runtime, sender })
    }

    /// Sends `request`; its status and answer, read whole.
    fn send(&mut self, request: hyper::Request<String>) -> Result<(u16, String), String> {
        use http_body_util::BodyExt;
        let sender = &mut self.sender;
        self.runtime.block_on(async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let answer = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok((status, String::from_utf8_lossy(&answer).into_owned()))
        })
    }
}

fn in_process(store: &str, plan: &str, clients: usize, seconds: f64) -> Result<Json, String> {
    let opened = SqliteStore::open(std::path::Path::new(store)).map_err(|e| e.to_string())?;
    let runtime = Runtime::new(Box::new(opened));
    let bytes = std::fs::read(plan).map_err(|e| format!("cannot read `{plan}`: {e}"))?;
    let plan = flow_ir::load(&bytes).map_err(|e| format!("`{plan}` is not a plan: {e}"))?;
    let analysis: Arc<_> = runtime.install(plan).map_err(|e| e.to_string())?;
    let clerk = Principal::new("carl", vec!["clerk".to_owned()]);
    let prepared: Vec<Vec<(String, Json)>> = (0..PREPARED)
        .map(|n| match inputs(n) {
            Json::Object(given) => given.into_iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    Ok(load("in-process", clients, seconds, |n| {
        let given = &prepared[(n % PREPARED) as usize];
        match runtime.start(&analysis, &clerk, given, &StartOptions::default()) {
            Ok(_) => true,
            Err(error) => {
                report_once(&format!("a start failed: {error}"));
                false
            }
        }
    }))
}

fn decide(url: &str, token: &str, runs: &str, pause: u64) -> Result<Json, String> {
    let text = std::fs::read_to_string(runs).map_err(|e| format!("cannot read `{runs}`: {e}"))?;
    let agent = agent();
    let bearer = format!("Bearer {token}");
    let mut latencies = Vec::new();
    for run in text.lines().filter(|l| !l.is_empty()) {
        std::thread::sleep(Duration::from_millis(pause));
        let at = Instant::now();
        let response = agent
            .post(&format!("{url}/v1/runs/{run}/steps/check/decision"))
            .header("Authorization", &bearer)
            .header("Content-Type", "application/json")
            .send(r#"{"outcome": "approve", "reason": "ok"}"#.as_bytes());
        let mut response = response.map_err(|e| format!("deciding {run}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            return Err(format!("deciding {run}: {status} {body}"));
        }
        latencies.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q).ceil() as usize).max(1) - 1).copied();
    Ok(json!({"decisions": latencies.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": latencies.last()}))
}
