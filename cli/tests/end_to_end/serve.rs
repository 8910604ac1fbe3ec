//! `flowc serve` end to end: a real server process on a real store (a SQLite file, and
//! PostgreSQL when there is one) called over real HTTP, with the flow of `tests/runs/`.
//! Every response is checked against the OpenAPI document (`server/openapi.json`), every
//! operation it documents is called, and every route the server has is documented.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::runs::{deployment_on, flowc, stores, text};

const OPENAPI: &str = include_str!("../../../server/openapi.json");
const ROUTES: &str = include_str!("../../../server/src/lib.rs");
mod browser;
mod oidc;

const AT: &str = "2026-11-30T10:00:00Z";

/// The API's description, and which of its operations the tests called.
struct Contract {
    doc: Json,
    called: Mutex<BTreeSet<(String, String)>>,
}

impl Contract {
    fn load() -> Contract {
        Contract { doc: serde_json::from_str(OPENAPI).unwrap(), called: Mutex::new(BTreeSet::new()) }
    }

    /// The documented path that `path` (without its query) is an instance of.
    fn template(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"].as_object().unwrap().keys().find_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()));
            fits.then(|| template.clone())
        })
    }

    fn resolve<'a>(&'a self, value: &'a Json) -> &'a Json {
        match value.get("$ref").and_then(Json::as_str) {
            Some(pointer) => self.doc.pointer(pointer.trim_start_matches('#')).unwrap(),
            None => value,
        }
    }

    /// Checks a response against the document: the operation exists, the status is one it
    /// documents, and the body is of a documented media type and fits its schema.
    fn check(&self, method: &str, path: &str, reply: &Reply) {
        let path = path.split('?').next().unwrap();
        let template = self.template(path).unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let operation = &self.doc["paths"][&template][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not documented");
        self.called.lock().unwrap().insert((method.to_owned(), template.clone()));
        let response =
            operation["responses"].get(reply.status.to_string()).map(|r| self.resolve(r)).unwrap_or_else(|| {
                panic!("{method} {path} answered {}, which is not documented: {}", reply.status, reply.text())
            });
        let media = reply.content_type.split(';').next().unwrap().trim().to_owned();
        let content = response["content"].as_object().unwrap();
        let Some((_, documented)) = content.iter().find(|(m, _)| m.split(';').next().unwrap().trim() == media) else {
            panic!("{method} {path} answered {} as `{}`, not as documented", reply.status, reply.content_type)
        };
        if media == "application/json" || media == "application/problem+json" {
            let body: Json = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{method} {path}: the body is not JSON ({e}): {}", reply.text()));
            let mut schema = documented["schema"].clone();
            schema["components"] = self.doc["components"].clone();
            let validator = jsonschema::validator_for(&schema).unwrap();
            let errors: Vec<String> =
                validator.iter_errors(&body).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(
                errors.is_empty(),
                "{method} {path} ({}): the body does not fit the document: {errors:?}\n{body}",
                reply.status
            );
        } else {
            assert!(std::str::from_utf8(&reply.body).is_ok(), "{method} {path}: the text is not UTF-8");
        }
    }

    /// Checks a notice a webhook endpoint received against the document's `webhooks`.
    fn check_notice(&self, notice: &Json) {
        let mut schema =
            self.doc["webhooks"]["notice"]["post"]["requestBody"]["content"]["application/json"]["schema"].clone();
        schema["components"] = self.doc["components"].clone();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(notice).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "a notice does not fit the document: {errors:?}\n{notice}");
    }

    /// Every documented operation was called, and the server's routes are those documented.
    fn assert_complete(&self) {
        let mut documented = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let called = self.called.lock().unwrap();
        let uncalled: Vec<_> = documented.difference(&called).collect();
        assert!(uncalled.is_empty(), "documented operations no test called: {uncalled:?}");
        let mut routed = BTreeSet::new();
        for line in ROUTES.lines().filter_map(|l| l.trim().strip_prefix(".route(\"")) {
            let (path, rest) = line.split_once('"').unwrap();
            for method in ["get", "post", "put", "patch", "delete"] {
                if rest.contains(&format!("{method}(")) {
                    routed.insert((method.to_ascii_uppercase(), path.to_owned()));
                }
            }
        }
        assert_eq!(routed, documented, "the server's routes and the OpenAPI document differ");
    }
}

/// A `flowc serve` process; killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// A server with these variables set (the secrets its webhooks sign with).
    fn start_with(dir: &Path, vars: &[(&str, &str)]) -> Server {
        Server::start_listening(dir, vars, "127.0.0.1:0")
    }

    /// A server listening on `listen`.
    fn start_listening(dir: &Path, vars: &[(&str, &str)], listen: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .env_remove("FLOW_STORE")
            .args(["serve", "--listen", listen])
            .current_dir(dir)
            .envs(vars.iter().copied())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address, told) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("flowc: serving the API on ") {
                    let url = rest.split("/v1").next().unwrap_or_default().to_owned();
                    let _ = address.send(url);
                }
                kept.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let Ok(address) = told.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the server did not start: {}", log.lock().unwrap());
        };
        Server { child, base: address, log }
    }

    /// Asks the server to stop (SIGTERM), as a supervisor does, and waits for it.
    fn stop(mut self) -> (ExitStatus, String) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The runtime's error code of a problem.
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// A client of one server, checking every response against the contract.
struct Api<'a> {
    base: String,
    contract: &'a Contract,
    agent: ureq::Agent,
    /// The server's log, shown when a request gets no answer.
    log: Arc<Mutex<String>>,
}

impl Api<'_> {
    fn new<'a>(server: &Server, contract: &'a Contract) -> Api<'a> {
        let config = ureq::Agent::config_builder().http_status_as_error(false).build();
        Api {
            base: server.base.clone(),
            contract,
            agent: ureq::Agent::new_with_config(config),
            log: server.log.clone(),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some((content_type, _)) = body {
            request = request.header("Content-Type", content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.map(|(_, bytes)| bytes.to_vec()).unwrap_or_default()).unwrap();
        let mut response = self.agent.run(request).unwrap_or_else(|e| {
            panic!("{method} {path}: no answer ({e}); the server said:\n{}", self.log.lock().unwrap())
        });
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (content_type, location) = (header("content-type").unwrap_or_default(), header("location"));
        let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap();
        let reply = Reply { status: response.status().as_u16(), content_type, location, body };
        // A route the API does not have is answered as a problem too; the rest as documented.
        if self.contract.template(path.split('?').next().unwrap_or_default()).is_some() {
            self.contract.check(method, path, &reply);
        } else {
            assert_eq!((reply.status, reply.content_type.as_str()), (404, "application/problem+json"), "{path}");
        }
        reply
    }

    /// A POST that announces a body of `length` bytes and sends none: the server must answer
    /// at once rather than read what it will not take. (A client sending it whole may find
    /// the connection closed before it reads the answer.)
    fn announce_large_body(&self, path: &str, token: &str, length: usize) -> Reply {
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no answer: {text}"));
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
            .unwrap_or_default();
        let reply = Reply { status, content_type, location: None, body: body.as_bytes().to_vec() };
        self.contract.check("POST", path, &reply);
        reply
    }

    fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None, &[])
    }

    fn post(&self, path: &str, token: &str, body: &Json) -> Reply {
        self.call("POST", path, Some(token), Some(("application/json", body.to_string().as_bytes())), &[])
    }
}

/// The deployment's API tokens, by principal, created with `flowc token create`.
fn tokens(dir: &Path, principals: &[&str]) -> std::collections::BTreeMap<String, (String, String)> {
    principals
        .iter()
        .map(|who| {
            let output = flowc(dir, &["token", "create", "--as", who, "--format", "json"]);
            assert!(output.status.success(), "{}", text(&output));
            let created: Json = serde_json::from_slice(&output.stdout).unwrap();
            (
                who.to_string(),
                (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned()),
            )
        })
        .collect()
}

fn request(id: &str, amount: &str, requester: &str) -> Json {
    json!({
        "id": id, "requester": requester, "amount": format!("{amount} USD"),
        "note": format!("personal note of {requester}"), "updated_at": "2026-11-30T08:00:00Z",
    })
}

fn assert_status(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
}

/// The whole API, as an application and the people of a flow use it.
fn scenario(api: &Api<'_>, dir: &Path, token: impl Fn(&str) -> String) {
    let (carl, mia, max, olga, aud) = (token("carl"), token("mia"), token("max"), token("olga"), token("aud"));
    // The service.
    assert_status(&api.call("GET", "/v1/health", None, None, &[]), 200, "health");
    assert_status(&api.call("GET", "/v1/ready", None, None, &[]), 200, "ready");
    let described = api.call("GET", "/v1/openapi.json", None, None, &[]);
    assert_eq!(
        described.json(),
        serde_json::from_str::<Json>(OPENAPI).unwrap(),
        "the served document is the committed one"
    );
    assert_status(&api.call("GET", "/v1/me", None, None, &[]), 401, "no token");
    assert_status(&api.call("GET", "/v1/me", Some("flow_t-0000000000000000_00"), None, &[]), 401, "a made-up token");
    assert_status(&api.call("GET", "/v1/me", Some(&format!("{carl}0")), None, &[]), 401, "a changed token");
    let me = api.get("/v1/me", &carl).json();
    assert_eq!(me["principal"], "carl");
    assert!(me["authenticated_by"].as_str().unwrap().starts_with("token t-"), "{me}");
    assert_status(&api.call("GET", "/v1/no-such-route", Some(&carl), None, &[]), 404, "an unknown route");

    // Deployments: a clerk may not install plans (refused and recorded), the steward may.
    let source = std::fs::read(dir.join("loan.flow")).unwrap();
    let refused = api.call("POST", "/v1/plans", Some(&carl), Some(("text/plain", &source)), &[]);
    assert_status(&refused, 403, "a clerk installs");
    assert_eq!((refused.code(), refused.json()["grant"].clone()), ("E3001".to_owned(), json!("deploy")));
    let installed = api.call("POST", "/v1/plans", Some(&olga), Some(("text/plain", &source)), &[]);
    assert_status(&installed, 201, "the steward installs");
    let v1 = installed.json()["plan"].as_str().unwrap().to_owned();
    let again = api.call("POST", "/v1/plans", Some(&olga), Some(("text/plain", &source)), &[]);
    assert_eq!((again.status, again.json()["plan"].as_str().unwrap()), (200, v1.as_str()), "installed again");
    let broken = api.call("POST", "/v1/plans", Some(&olga), Some(("text/plain", b"flow {")), &[]);
    assert_status(&broken, 422, "a source with errors");
    assert_status(
        &api.call("POST", "/v1/plans", Some(&olga), Some(("application/json", b"{}")), &[]),
        422,
        "not a plan",
    );
    assert_status(
        &api.call("POST", "/v1/plans", Some(&olga), Some(("image/png", b"x")), &[]),
        415,
        "not a plan or a source",
    );
    let newer = String::from_utf8(source.clone())
        .unwrap()
        .replace("version \"1.0.0\"\n  owner", "version \"1.1.0\"\n  owner")
        .replace("= 5_000 USD", "= 1_000 USD");
    let v2 = api.call("POST", "/v1/plans", Some(&olga), Some(("text/plain", newer.as_bytes())), &[]).json()["plan"]
        .as_str()
        .unwrap()
        .to_owned();
    let flows = api.get("/v1/flows", &carl).json();
    assert_eq!(flows["flows"][0]["versions"].as_array().unwrap().len(), 2, "{flows}");
    assert_eq!(api.get(&format!("/v1/plans/{v1}"), &carl).json()["hash"], json!(v1));
    assert_status(&api.get("/v1/plans/blake3:0000", &carl), 404, "an unknown plan");
    assert!(api.get(&format!("/v1/plans/{v1}/graph"), &carl).text().contains("digraph"));
    assert!(
        api.get(&format!("/v1/plans/{v1}/graph?format=mermaid&layer=governance"), &carl).text().contains("embargo")
    );
    let svg = api.get(&format!("/v1/plans/{v1}/graph?format=svg&layer=governance"), &carl);
    assert!(svg.content_type == "image/svg+xml" && svg.text().starts_with("<svg") && svg.text().contains("embargo"));
    assert_status(&api.get(&format!("/v1/plans/{v1}/graph?format=png"), &carl), 400, "an unknown format");
    let diff = api.get(&format!("/v1/plans/{v1}/diff/{v2}"), &carl).json();
    assert_eq!((diff["material"].clone(), diff["identical"].clone()), (json!(true), json!(false)), "{diff}");

    // Starting runs: once per idempotency key; refused without the grant; bad requests.
    let body = json!({"plan": v1, "clock": AT, "inputs": {"request": request("A1", "2000", "carl")}});
    let key = [("Idempotency-Key", "order-A1")];
    let send = |who: &str, body: &Json, headers: &[(&str, &str)]| {
        api.call("POST", "/v1/runs", Some(who), Some(("application/json", body.to_string().as_bytes())), headers)
    };
    let started = send(&carl, &body, &key);
    assert_status(&started, 201, "a start");
    let run = started.json()["run"].as_str().unwrap().to_owned();
    assert_eq!(started.location.as_deref(), Some(format!("/v1/runs/{run}").as_str()));
    assert_eq!(started.json()["status"], "pending");
    let repeated = send(&carl, &body, &key);
    assert_eq!((repeated.status, repeated.json()["run"].as_str().unwrap()), (200, run.as_str()), "the same key");
    let mut other = body.clone();
    other["inputs"]["request"]["amount"] = json!("2500 USD");
    let reused = send(&carl, &other, &key);
    assert_eq!((reused.status, reused.code()), (422, "E3002".to_owned()), "the key reused for another run");
    let by_flow = send(
        &carl,
        &json!({"flow": "loan", "version": "1.0.0", "clock": AT, "inputs": {"request": request("A2", "20", "carl")}}),
        &[],
    );
    assert_eq!((by_flow.status, by_flow.json()["status"].clone()), (201, json!("completed")), "{}", by_flow.text());
    let completed = by_flow.json()["run"].as_str().unwrap().to_owned();
    let not_granted = send(&aud, &body, &[]);
    assert_eq!((not_granted.status, not_granted.code()), (403, "E3001".to_owned()), "an auditor starts a run");
    let mut unfit = body.clone();
    unfit["inputs"]["request"]["amount"] = json!("lots");
    assert_eq!(send(&carl, &unfit, &[]).code(), "E3002", "an amount that is not money");
    assert_status(&send(&carl, &json!({"flow": "nope", "inputs": {}}), &[]), 422, "an unknown flow");
    assert_status(&send(&carl, &json!({"plan": v1, "colour": "red"}), &[]), 400, "an unknown field");
    assert_status(
        &api.call("POST", "/v1/runs", Some(&carl), Some(("application/json", b"{\"plan\": ")), &[]),
        400,
        "bad JSON",
    );
    assert_status(&api.call("POST", "/v1/runs", Some(&carl), Some(("text/plain", b"{}")), &[]), 415, "not JSON");
    assert_status(&api.announce_large_body("/v1/runs", &carl, 70_000), 413, "too large");
    assert_status(&send(&carl, &body, &[("Idempotency-Key", "")]), 400, "an empty key");

    // Reading runs, redacted for the reader.
    assert_eq!(api.get(&format!("/v1/runs/{run}"), &carl).json()["pending"][0]["step"], "check");
    let unknown = api.get("/v1/runs/r-0000000000000000", &carl);
    assert_eq!((unknown.status, unknown.code()), (404, "E3003".to_owned()));
    let note = |who: &str| api.get(&format!("/v1/runs/{completed}"), who).json()["outputs"]["decision"]["note"].clone();
    assert_eq!(note(&aud)["$value"], json!("personal note of carl"), "the auditor views pii");
    assert!(!note(&carl).to_string().contains("personal note"), "the clerk does not: {}", note(&carl));
    let listed = |query: &str, who: &str| -> Vec<String> {
        let runs = api.get(&format!("/v1/runs{query}"), who).json();
        runs["runs"].as_array().unwrap().iter().map(|r| r["run"].as_str().unwrap().to_owned()).collect()
    };
    assert!(listed("?flow=loan", &carl).contains(&run));
    assert_eq!(listed("?status=pending", &carl), std::slice::from_ref(&run));
    assert_eq!(listed("?flow=other", &carl), Vec::<String>::new());
    assert_eq!(listed("?waiting_for_me=true", &mia), std::slice::from_ref(&run));
    assert_eq!(listed("?waiting_for_me=true&since=2000-01-01&until=2999-01-01&limit=5", &carl), Vec::<String>::new());
    assert_status(&api.get("/v1/runs?status=lost", &carl), 400, "an unknown status");
    assert_status(&api.get("/v1/runs?limit=many", &carl), 400, "a limit that is not a number");
    assert_status(&api.get("/v1/stats?colour=red", &carl), 400, "an unknown query parameter");
    let shouted = api.call("GET", "/v1/me", None, None, &[("Authorization", &format!("BEARER {carl}"))]);
    assert_status(&shouted, 200, "the scheme's name in capitals");
    assert!(api.get(&format!("/v1/runs/{run}/narrative"), &carl).text().contains(&run));

    // People: what waits for them, decisions and overrides.
    let pending = api.get("/v1/pending", &mia).json();
    let item = &pending["pending"][0];
    assert_eq!((item["run"].as_str().unwrap(), item["step"].as_str().unwrap()), (run.as_str(), "check"), "{pending}");
    assert_eq!(
        (item["outcomes"].clone(), item["edits"].clone()),
        (json!(["approve", "reject"]), json!(["score.tier"]))
    );
    assert_eq!(api.get("/v1/pending", &carl).json(), json!({"pending": []}));
    let decision =
        |who: &str, step: &str, body: Json| api.post(&format!("/v1/runs/{run}/steps/{step}/decision"), who, &body);
    let refused = decision(&carl, "check", json!({"outcome": "approve", "reason": "ok"}));
    assert_eq!((refused.status, refused.code()), (403, "E3001".to_owned()), "a clerk decides a review");
    assert_eq!(decision(&mia, "check", json!({"outcome": "maybe", "reason": "ok"})).code(), "E3004");
    // Four decisions of one step at once: one is taken, three are told someone was first.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let racers: Vec<_> = [&mia, &max, &mia, &max]
            .into_iter()
            .map(|who| scope.spawn(|| decision(who, "check", json!({"outcome": "approve", "reason": "ok"})).status))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let late = decision(&mia, "check", json!({"outcome": "approve", "reason": "ok"}));
    assert_eq!((late.status, late.code()), (409, "E3011".to_owned()));
    let first = decision(&mia, "sign", json!({"outcome": "approve", "reason": "within_policy"}));
    assert_eq!(first.json()["status"], "pending", "{}", first.text());
    let signed = decision(&max, "sign", json!({"outcome": "approve", "reason": "within_policy"}));
    assert_eq!(signed.json()["status"], "completed", "{}", signed.text());

    let embargoed =
        send(&carl, &json!({"plan": v1, "clock": AT, "inputs": {"request": request("EMBARGO", "20", "carl")}}), &[]);
    let blocked = embargoed.json()["run"].as_str().unwrap().to_owned();
    assert_eq!(embargoed.json()["status"], "blocked");
    let override_ = |who: &str, body: Json| api.post(&format!("/v1/runs/{blocked}/gates/embargo/override"), who, &body);
    assert_eq!(override_(&carl, json!({"reason": "cleared", "basis": "lifted"})).code(), "E3001");
    assert_status(&override_(&olga, json!({"reason": "cleared"})), 400, "an override without a basis");
    let overridden = override_(&olga, json!({"reason": "cleared", "basis": "the embargo was lifted on 2026-11-29"}));
    assert_eq!(overridden.json()["status"], "completed", "{}", overridden.text());
    assert_eq!(override_(&olga, json!({"reason": "cleared", "basis": "again"})).code(), "E3011");

    // Audit: evidence (its bytes verify; changed, they do not), replay, what-if, stats.
    assert_eq!(api.get(&format!("/v1/runs/{run}/evidence"), &carl).code(), "E3001");
    let bundle = api.get(&format!("/v1/runs/{run}/evidence"), &aud);
    assert_status(&bundle, 200, "evidence");
    assert!(bundle.text().contains("\"refused\""), "the refused decision is in the evidence");
    // How each principal proved who they were is recorded with what they did.
    let events = bundle.json()["events"].clone();
    let how = |kind: &str| -> Vec<String> {
        let of_kind = events.as_array().unwrap().iter().map(|e| &e["event"]).filter(|e| e["event"] == kind);
        of_kind.map(|e| e.get("decision").unwrap_or(e)["authenticated"].as_str().unwrap_or("none").to_owned()).collect()
    };
    let me_as = |who: &str| api.get("/v1/me", who).json()["authenticated_by"].as_str().unwrap().to_owned();
    assert_eq!(how("started"), [me_as(&carl)]);
    assert_eq!(how("review_decided").len(), 1);
    assert!([me_as(&mia), me_as(&max)].contains(&how("review_decided")[0]));
    assert_eq!(how("approval_decided"), [me_as(&mia), me_as(&max)]);
    let verify = |bytes: &[u8]| {
        api.call("POST", "/v1/evidence/verify", Some(&carl), Some(("application/json", bytes)), &[]).json()
    };
    let verified = verify(&bundle.body);
    assert_eq!((verified["verified"].clone(), verified["run"].clone()), (json!(true), json!(run)), "{verified}");
    let forged = bundle.text().replace("personal note of carl", "personal note of mia!");
    assert_eq!(verify(forged.as_bytes())["verified"], false);
    assert_eq!(api.post(&format!("/v1/runs/{run}/replay"), &carl, &json!({})).code(), "E3001");
    assert_eq!(api.post(&format!("/v1/runs/{run}/replay"), &aud, &json!({})).json()["exact"], true);
    let what_if = api.post(&format!("/v1/runs/{completed}/what-if"), &aud, &json!({"set": {"limit": "10 USD"}})).json();
    assert_eq!(what_if["before"], "completed", "{what_if}");
    let candidate = api.post(&format!("/v1/runs/{completed}/what-if"), &aud, &json!({"plan": v2}));
    assert_status(&candidate, 200, "a what-if against a candidate plan");
    assert_status(
        &api.post(&format!("/v1/runs/{completed}/what-if"), &aud, &json!({"plan": "blake3:00"})),
        404,
        "no such plan",
    );
    // A what-if over every run the auditor may replay, as a job polled until it ends; one of
    // the clerk's, who may replay none, ends refused; nobody sees another's job.
    let poll = |location: &str, who: &str| -> Json {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let polled = api.get(location, who).json();
            if polled["status"] != "running" || std::time::Instant::now() > deadline {
                return polled;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let job = api.post("/v1/jobs/what-if", &aud, &json!({"flow": "loan", "set": {"limit": "10 USD"}, "details": true}));
    assert_status(&job, 202, "a job");
    let location = job.location.clone().unwrap();
    let ended = poll(&location, &aud);
    assert_eq!((ended["status"].clone(), ended["result"]["runs"].clone()), (json!("done"), json!(3)), "{ended}");
    assert_eq!((ended["done"].clone(), ended["total"].clone()), (json!(3), json!(3)), "{ended}");
    assert_status(&api.get(&location, &carl), 404, "another principal's job");
    let refused_job = api.post("/v1/jobs/what-if", &carl, &json!({})).location.unwrap();
    let refused_job = poll(&refused_job, &carl);
    assert_eq!(
        (refused_job["status"].clone(), refused_job["error"]["code"].clone()),
        (json!("failed"), json!("E3001"))
    );
    let shadows = api.get("/v1/shadow-report?flow=loan&details=true", &aud).json();
    assert_eq!((shadows["runs"].clone(), shadows["details"].clone()), (json!(0), json!([])), "{shadows}");
    let stats = api.get("/v1/stats?flow=loan", &carl).json();
    assert_eq!(stats["all"]["runs"], 3, "{stats}");
    let metrics = api.get("/metrics", &carl).text();
    assert!(
        metrics.contains("flow_http_requests_total{method=\"POST\",route=\"/v1/runs\",status=\"201\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("flow_runs{flow=\"loan\",status=\"completed\"} 3"), "{metrics}");
    assert!(metrics.contains("flow_api_operations_total{operation=\"decide\",result=\"refused\"} 1"), "{metrics}");

    // A waiting run withdrawn; a run whose system was down resumed once it is back.
    let start = |id: &str, amount: &str| {
        let body = json!({"plan": v1, "clock": AT, "inputs": {"request": request(id, amount, "carl")}});
        send(&carl, &body, &[]).json()["run"].as_str().unwrap().to_owned()
    };
    let waiting = start("X1", "2000");
    let cancel = |who: &str, body: Json| api.post(&format!("/v1/runs/{waiting}/cancel"), who, &body);
    let withdrawn = json!({"reason": "withdrawn", "basis": "the customer withdrew"});
    assert_eq!(cancel(&carl, withdrawn.clone()).code(), "E3001", "a clerk cancels");
    assert_status(&cancel(&olga, json!({"reason": "withdrawn"})), 400, "a cancellation without a basis");
    assert_eq!(cancel(&olga, withdrawn.clone()).json()["status"], "cancelled");
    assert_eq!(cancel(&olga, withdrawn).code(), "E3011", "cancelled twice");
    std::fs::write(dir.join("ledger.down"), "").unwrap();
    let failed = start("X2", "20");
    assert_eq!(api.get(&format!("/v1/runs/{failed}"), &carl).json()["status"], "failed");
    let resume =
        |run: &str, who: &str| api.post(&format!("/v1/runs/{run}/resume"), who, &json!({"reason": "ledger_back"}));
    assert_eq!(resume(&failed, &carl).code(), "E3001", "a clerk resumes");
    std::fs::remove_file(dir.join("ledger.down")).unwrap();
    assert_eq!(resume(&failed, &olga).json()["status"], "completed");
    assert_eq!(resume(&failed, &olga).code(), "E3011", "resumed when it completed");
    assert_eq!(resume(&waiting, &olga).code(), "E3011", "a cancelled run resumed");
    assert_status(&resume("r-0000000000000000", &olga), 404, "an unknown run");
}

const STORE_PASSWORD: &str = "store-secret-9";

#[test]
fn the_api_on_every_store() {
    let contract = Contract::load();
    for postgres in stores("api") {
        // A password in the store's connection string (the test server trusts its users, so
        // any is taken) that the server must never show.
        let postgres = postgres.map(|url| format!("{url} password={STORE_PASSWORD}"));
        let dir = deployment_on("api", postgres.as_deref());
        let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        config.push_str("\n[serve]\ndeployers = [\"officer\"]\nmax_body = 65536\n");
        std::fs::write(dir.join("flow.toml"), config).unwrap();
        std::fs::write(dir.join("flow-governance.toml"), RELEASE_RULES).unwrap();
        let tokens = tokens(&dir, &["carl", "mia", "max", "olga", "aud"]);
        let server = Server::start(&dir);
        let api = Api::new(&server, &contract);
        scenario(&api, &dir, |who| tokens[who].1.clone());
        releases(&api, &dir, |who| tokens[who].1.clone());

        // A revoked token lets nobody in from the next request on.
        assert_status(&api.get("/v1/me", &tokens["carl"].1), 200, "before");
        let revoked = flowc(&dir, &["token", "revoke", &tokens["carl"].0]);
        assert!(revoked.status.success(), "{}", text(&revoked));
        assert_status(&api.get("/v1/me", &tokens["carl"].1), 401, "revoked");
        assert_status(&api.get("/v1/me", &tokens["mia"].1), 200, "another token");

        // Nothing labelled reaches the request log, nor a token.
        let (status, log) = server.stop();
        assert!(status.success(), "the server stops cleanly when asked: {log}");
        assert!(log.contains("route=\"/v1/runs/{run}/steps/{step}/decision\" status=409"), "{log}");
        assert!(log.contains("flowc: stopped"), "{log}");
        if postgres.is_some() {
            assert!(log.contains(":***@"), "the store is named, its password not: {log}");
        }
        for secret in ["personal note", &tokens["mia"].1, "flow_t-", STORE_PASSWORD] {
            assert!(!log.contains(secret), "the log holds `{secret}`: {log}");
        }
    }
    contract.assert_complete();
}

pub(crate) const RELEASE_RULES: &str = "
[[environments]]
name = \"dev\"
approvals = 0

[[environments]]
name = \"prod\"
controlled = true

[[rules]]
flows = [\"loan\"]
authors = [\"officer\"]
approvers = [\"manager\"]
approvals = 2
";

/// Releases through the API: proposed, approved by others, published, promoted by hash, the
/// log exported and verified.
fn releases(api: &Api<'_>, dir: &Path, token: impl Fn(&str) -> String) {
    let (carl, mia, max, olga) = (token("carl"), token("mia"), token("max"), token("olga"));
    let plan = install(api, dir, &olga);
    let none = api.get("/v1/releases", &carl);
    assert_status(&none, 200, "no releases");
    let proposal = |body: Json, who: &str| api.post("/v1/releases", who, &body);
    let dev = proposal(json!({"plan": plan, "environment": "dev", "reason": "first"}), &olga);
    assert_status(&dev, 201, "proposed");
    let id = dev.json()["release"].as_str().unwrap().to_owned();
    let published = api.post(&format!("/v1/releases/{id}/publish"), &olga, &json!({}));
    assert_status(&published, 200, "published alone in dev");
    assert_eq!(published.json()["state"], "live");
    assert_status(&proposal(json!({"plan": plan, "environment": "prod", "reason": "x"}), &max), 403, "not an author");
    let prod = proposal(json!({"flow": "loan", "environment": "prod", "reason": "promote"}), &olga);
    assert_status(&prod, 201, "promoted");
    let prod = prod.json();
    assert_eq!((prod["plan"].as_str(), prod["approvals_needed"].clone()), (Some(plan.as_str()), json!(2)));
    let rel = prod["release"].as_str().unwrap().to_owned();
    let step =
        |what: &str, who: &str| api.post(&format!("/v1/releases/{rel}/{what}"), who, &json!({"reason": "checked"}));
    assert_status(&step("approve", &olga), 403, "the author approves");
    assert_status(&step("reject", &carl), 403, "a clerk rejects");
    assert_status(&api.post(&format!("/v1/releases/{rel}/publish"), &olga, &json!({})), 422, "not approved yet");
    assert_status(&step("approve", &max), 200, "one approval");
    assert_status(&step("approve", &mia), 200, "two approvals");
    assert_status(&api.post(&format!("/v1/releases/{rel}/publish"), &olga, &json!({})), 200, "published in prod");
    assert_status(&step("reject", &mia), 422, "live already");
    let shown = api.get(&format!("/v1/releases/{rel}"), &carl);
    assert_status(&shown, 200, "a release");
    let approvers: Vec<Json> =
        shown.json()["approvals"].as_array().unwrap().iter().map(|a| a["principal"].clone()).collect();
    assert_eq!(approvers, [json!("max"), json!("mia")]);
    assert_status(&api.get("/v1/releases/rel-99", &carl), 404, "no such release");
    let listed = api.get("/v1/releases?environment=prod", &carl).json();
    assert_eq!(listed["releases"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["live"][0]["release"], json!(rel));
    let log = api.get("/v1/releases/log", &carl);
    assert_status(&log, 200, "the log");
    std::fs::write(dir.join("releases.json"), &log.body).unwrap();
    let verified = flowc(dir, &["verify", "releases.json"]);
    assert!(verified.status.success(), "{}", text(&verified));
}

/// A JWT signed by `key` (Ed25519, or no signature at all for `alg: none`).
fn jwt(header: &Json, claims: &Json, key: Option<&ed25519_dalek::SigningKey>) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = key.map(|k| b64(&k.sign(signed.as_bytes()).to_bytes())).unwrap_or_default();
    format!("{signed}.{signature}")
}

/// Bearer JWTs of the configured OpenID Connect issuer: accepted when the issuer's key
/// signed them for this audience and they have not expired; refused otherwise, whatever
/// their header claims (`alg: none`, a symmetric algorithm, another key).
#[test]
fn tokens_of_an_openid_connect_issuer() {
    use base64::Engine;
    let contract = Contract::load();
    let dir = deployment_on("oidc", None);
    let issuer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let intruder = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(issuer.verifying_key().to_bytes());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str(
        "\n[serve.oidc]\nissuer = \"https://id.example.test\"\naudience = \"flow-api\"\njwks = \"jwks.json\"\n",
    );
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
    let claims = json!({"iss": "https://id.example.test", "aud": "flow-api", "sub": "mia", "exp": now + 600});
    let with = |change: &dyn Fn(&mut Json)| {
        let mut changed = claims.clone();
        change(&mut changed);
        changed
    };
    let me = |token: &str| api.call("GET", "/v1/me", Some(token), None, &[]);
    let good = me(&jwt(&header, &claims, Some(&issuer)));
    assert_status(&good, 200, "a token of the issuer");
    assert_eq!(good.json()["authenticated_by"], "oidc https://id.example.test");
    assert_eq!(good.json()["roles"], json!(["manager"]), "roles from the principals file");

    let refused: [(&str, String); 9] = [
        ("expired", jwt(&header, &with(&|c| c["exp"] = json!(now - 3600)), Some(&issuer))),
        ("without expiry", jwt(&header, &with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))), Some(&issuer))),
        ("for another audience", jwt(&header, &with(&|c| c["aud"] = json!("other-api")), Some(&issuer))),
        ("of another issuer", jwt(&header, &with(&|c| c["iss"] = json!("https://evil.test")), Some(&issuer))),
        ("signed by another key", jwt(&header, &claims, Some(&intruder))),
        ("unsigned (alg none)", jwt(&json!({"alg": "none", "typ": "JWT"}), &claims, None)),
        ("of a symmetric algorithm", jwt(&json!({"alg": "HS256", "kid": "k1"}), &claims, Some(&issuer))),
        ("of an unknown key", jwt(&json!({"alg": "EdDSA", "kid": "k2"}), &claims, Some(&issuer))),
        ("for someone the deployment does not know", jwt(&header, &with(&|c| c["sub"] = json!("zed")), Some(&issuer))),
    ];
    for (what, token) in refused {
        let reply = me(&token);
        assert_eq!(reply.status, 401, "a token {what} is refused: {}", reply.text());
    }
    // A changed claim breaks the signature.
    let token = jwt(&header, &claims, Some(&issuer));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let claims_as_max = with(&|c| c["sub"] = json!("max"));
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims_as_max.to_string());
    assert_status(&me(&parts.join(".")), 401, "a token whose claims were changed");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// `examples/serve-demo.sh`, the newcomer's one command: a server on the examples, driven
/// by the Python and the curl clients through a run each, evidence verified.
#[test]
fn the_serve_demo_runs_both_clients() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/serve-demo.sh");
    let output = Command::new("bash")
        .arg(script)
        .env("FLOWC", env!("CARGO_BIN_EXE_flowc"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    for line in [
        "python: fin decided spend: the run is completed",
        "curl: fin decided spend: the run is completed",
        "curl: evidence of",
    ] {
        assert!(said.contains(line), "`{line}` missing: {said}");
    }
    assert!(said.contains("python: evidence of") && said.contains("verified: 24 events"), "{said}");
    assert!(said.contains("requests and stopped"), "{said}");
}

/// `examples/serve-demo.sh --browse`, the README's way into the web pages: it serves, says
/// where and with which tokens, and the runs it started wait in the inbox of the first
/// person the README names.
#[test]
fn the_serve_demo_serves_the_pages_to_browse() {
    use std::io::BufRead;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/serve-demo.sh");
    // Stopped however the test ends (TERM: the script's trap stops its server); and never
    // left to serve for more than five minutes.
    struct Stopped(Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let _ = self.0.wait();
        }
    }
    let mut child = Stopped(
        Command::new("timeout")
            .args(["300", "bash"])
            .arg(script)
            .arg("--browse")
            .env("FLOWC", env!("CARGO_BIN_EXE_flowc"))
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut said = String::new();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    while !said.contains("serving until Ctrl-C") {
        let Some(Ok(line)) = lines.next() else { break };
        said.push_str(&line);
        said.push('\n');
    }
    let base = said.split("Open ").nth(1).and_then(|rest| rest.split("/ui/").next()).map(str::to_owned);
    let token = said.lines().find_map(|line| line.trim().strip_prefix("max ")).map(|t| t.trim().to_owned());
    let (Some(base), Some(token)) = (base, token) else { panic!("no address or token for max: {said}") };
    assert_eq!(said.matches(&format!("{base}/ui/runs/r-")).count(), 2, "the runs' pages are named: {said}");
    let browser = Browser::new(&base);
    let max = browser.session(&token);
    let inbox = browser.get("/ui/inbox", Some(&max));
    drop(child);
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert_eq!(inbox.body.matches("<strong>triage</strong>").count(), 2, "{}", inbox.body);
}

/// A deployment for the API, with the steward allowed to install plans, its plan installed
/// through `api`, and API tokens; returns the plan's hash.
fn serving(
    name: &str,
    postgres: Option<&str>,
) -> (std::path::PathBuf, std::collections::BTreeMap<String, (String, String)>) {
    let dir = deployment_on(name, postgres);
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str("\n[serve]\ndeployers = [\"officer\"]\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let tokens = tokens(&dir, &["carl", "mia", "max", "olga"]);
    (dir, tokens)
}

fn install(api: &Api<'_>, dir: &Path, olga: &str) -> String {
    let source = std::fs::read(dir.join("loan.flow")).unwrap();
    let installed = api.call("POST", "/v1/plans", Some(olga), Some(("text/plain", &source)), &[]);
    installed.json()["plan"].as_str().unwrap().to_owned()
}

/// Two servers on one PostgreSQL database take decisions and idempotent starts for the same
/// runs: one start per key whichever server takes it, one decision per step.
#[test]
fn two_servers_on_one_postgres_share_the_runs() {
    let Some(url) = stores("two_servers").into_iter().flatten().next() else {
        crate::postgres::skipped(
            "no PostgreSQL server for the tests (initdb not installed, FLOW_TEST_POSTGRES not set)",
        );
        return;
    };
    let contract = Contract::load();
    let (dir, tokens) = serving("two_servers", Some(&url));
    let token = |who: &str| tokens[who].1.clone();
    let (one, two) = (Server::start(&dir), Server::start(&dir));
    let (a, b) = (Api::new(&one, &contract), Api::new(&two, &contract));
    let plan = install(&a, &dir, &token("olga"));
    for round in 0..5 {
        // The same start sent to both servers at once: one run.
        let body =
            json!({"plan": plan, "clock": AT, "inputs": {"request": request(&format!("T{round}"), "2000", "carl")}});
        let key = format!("twice-{round}");
        let starts: Vec<Reply> = std::thread::scope(|scope| {
            let sent: Vec<_> = [&a, &b]
                .into_iter()
                .map(|api| {
                    let (body, key, carl) = (&body, &key, token("carl"));
                    scope.spawn(move || {
                        api.call(
                            "POST",
                            "/v1/runs",
                            Some(&carl),
                            Some(("application/json", body.to_string().as_bytes())),
                            &[("Idempotency-Key", key)],
                        )
                    })
                })
                .collect();
            sent.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let runs: BTreeSet<String> = starts.iter().map(|r| r.json()["run"].as_str().unwrap().to_owned()).collect();
        assert_eq!(runs.len(), 1, "one run for one key: {:?}", starts.iter().map(Reply::text).collect::<Vec<_>>());
        let mut statuses: Vec<u16> = starts.iter().map(|r| r.status).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 201]);
        let run = runs.into_iter().next().unwrap();
        // The same review decided through both servers at once: one decision.
        let decided: Vec<u16> = std::thread::scope(|scope| {
            let sent: Vec<_> = [(&a, "mia"), (&b, "max")]
                .into_iter()
                .map(|(api, who)| {
                    let (run, who) = (&run, token(who));
                    scope.spawn(move || {
                        let path = format!("/v1/runs/{run}/steps/check/decision");
                        let reply = api.post(&path, &who, &json!({"outcome": "approve", "reason": "ok"}));
                        assert!(reply.status == 200 || reply.status == 409, "{}", reply.text());
                        reply.status
                    })
                })
                .collect();
            sent.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let mut decided = decided;
        decided.sort();
        assert_eq!(decided, [200, 409], "round {round}");
        // Each server sees what the other did.
        assert_eq!(b.get(&format!("/v1/runs/{run}"), &token("carl")).json()["pending"][0]["step"], "sign");
        assert_eq!(a.get(&format!("/v1/runs/{run}"), &token("carl")).json()["pending"][0]["step"], "sign");
    }
    for server in [one, two] {
        assert!(server.stop().0.success());
    }
}

/// A server killed (`kill -9`) in the middle of a burst of starts loses none it
/// acknowledged: after a restart every acknowledged run is there and ends as it would have;
/// the starts that got no answer, sent again with their keys, start no second run; the
/// ledger booked each request once; a webhook is told of every run's end.
#[test]
fn a_server_killed_during_a_burst_loses_nothing_it_acknowledged() {
    let contract = Contract::load();
    for postgres in stores("burst") {
        let (dir, tokens) = serving("burst", postgres.as_deref());
        let carl = tokens["carl"].1.clone();
        let (_receiver, port) = receiver(&dir, 0, "ended.jsonl");
        let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        config.push_str(&format!(
            "\n[webhooks.ends]\nurl = \"http://127.0.0.1:{port}/\"\nsecret_env = \"FLOW_WEBHOOK_SECRET\"\n\
             events = [\"run.ended\"]\nbackoff = \"1s\"\n"
        ));
        std::fs::write(dir.join("flow.toml"), config).unwrap();
        let secret = [("FLOW_WEBHOOK_SECRET", WEBHOOK_SECRET)];
        let mut server = Server::start_with(&dir, &secret);
        let plan = install(&Api::new(&server, &contract), &dir, &tokens["olga"].1);
        let body = |key: &str| json!({"plan": plan, "clock": AT, "inputs": {"request": request(key, "20", "carl")}});
        let start = |api: &Api<'_>, key: &str| -> Option<Reply> {
            // A connection cut by the kill is no answer (ureq's error), not a test failure.
            let url = format!("{}/v1/runs", api.base);
            let response = api
                .agent
                .post(&url)
                .header("Authorization", &format!("Bearer {carl}"))
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", key)
                .send(body(key).to_string().as_bytes());
            let mut response = response.ok()?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_vec().ok()?;
            Some(Reply { status, content_type: "application/json".into(), location: None, body: text })
        };
        let (acknowledged, unanswered) = {
            let api = Api::new(&server, &contract);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let results: Vec<(String, Option<Reply>)> = std::thread::scope(|scope| {
                let senders: Vec<_> = (0..4)
                    .map(|thread| {
                        let (api, stop, start) = (&api, &stop, &start);
                        scope.spawn(move || {
                            let mut out = Vec::new();
                            for i in 0.. {
                                let key = format!("B{thread}x{i}");
                                let reply = start(api, &key);
                                let died = reply.is_none();
                                out.push((key, reply));
                                if died || stop.load(std::sync::atomic::Ordering::Relaxed) {
                                    break;
                                }
                            }
                            out
                        })
                    })
                    .collect();
                std::thread::sleep(Duration::from_millis(2500));
                let _ = server.child.kill();
                let _ = server.child.wait();
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                senders.into_iter().flat_map(|s| s.join().unwrap()).collect()
            });
            let mut acknowledged = Vec::new();
            let mut unanswered = Vec::new();
            for (key, reply) in results {
                match reply {
                    Some(reply) if reply.status == 201 || reply.status == 200 => {
                        acknowledged.push((key, reply.json()["run"].as_str().unwrap().to_owned()))
                    }
                    Some(reply) => panic!("a start answered {}: {}", reply.status, reply.text()),
                    None => unanswered.push(key),
                }
            }
            (acknowledged, unanswered)
        };
        assert!(acknowledged.len() >= 4, "the burst got answers before the kill: {}", acknowledged.len());
        drop(server);

        server = Server::start_with(&dir, &secret);
        let api = Api::new(&server, &contract);
        for key in &unanswered {
            let reply = start(&api, key).expect("the restarted server answers");
            assert!(reply.status == 201 || reply.status == 200, "{}", reply.text());
        }
        // Every acknowledged run is there and completes (a run the kill interrupted is
        // resumed once its lease has run out).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for (key, run) in &acknowledged {
            loop {
                let view = api.get(&format!("/v1/runs/{run}"), &carl);
                assert_status(&view, 200, key);
                if view.json()["status"] == "completed" {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "run {run} of {key} did not complete: {}", view.text());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let runs = api.get("/v1/runs?limit=1000", &carl).json();
        let keys = acknowledged.len() + unanswered.len();
        assert_eq!(runs["runs"].as_array().unwrap().len(), keys, "one run per key, none lost, none twice");
        let effects = std::fs::read_to_string(dir.join("effects.log")).unwrap_or_default();
        let booked: Vec<&str> =
            effects.lines().map(|l| l.split(' ').next().unwrap().trim_start_matches("booking/")).collect();
        let distinct: BTreeSet<&&str> = booked.iter().collect();
        assert_eq!(distinct.len(), booked.len(), "a request booked twice: {effects}");
        for (key, _) in &acknowledged {
            assert!(distinct.contains(&key.as_str()), "{key} acknowledged and not booked");
        }
        // Every run's end is told, once: a notice the kill caught in flight may be sent
        // again, under its id (the receiver drops it), and no more than one round of them.
        let ended = received(&dir.join("ended.jsonl"), |lines| {
            lines.iter().filter(|l| l["type"] == "run.ended").count() >= keys
        });
        let told: BTreeSet<&str> = ended.iter().filter_map(|l| l["data"]["run"].as_str()).collect();
        for (key, run) in &acknowledged {
            assert!(told.contains(run.as_str()), "the end of {run} ({key}) was not told");
        }
        assert_eq!(told.len(), keys, "one notice per run's end");
        let again = ended.iter().filter(|l| l.get("duplicate").is_some()).count();
        assert!(again <= 8, "{again} notices sent twice");
        assert!(server.stop().0.success());
    }
}

/// TLS with rustls: a client that trusts the server's certificate gets answers; one that
/// does not, or that speaks plain HTTP, gets none.
#[test]
fn the_api_over_tls() {
    if Command::new("openssl").arg("version").output().is_err() {
        crate::postgres::skipped("openssl (to make the test's certificate) is not installed");
        return;
    }
    let (dir, tokens) = serving("tls", None);
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config = config.replace("[serve]\n", "[serve]\ntls_certificate = \"cert.pem\"\ntls_key = \"key.pem\"\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start(&dir);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);
    let curl = |args: &[&str]| {
        Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).current_dir(&dir).output().unwrap()
    };
    let me = curl(&[
        "--cacert",
        "cert.pem",
        "-H",
        &format!("Authorization: Bearer {}", tokens["carl"].1),
        &format!("{}/v1/me", server.base),
    ]);
    assert!(me.status.success(), "{}", text(&me));
    assert_eq!(serde_json::from_slice::<Json>(&me.stdout).unwrap()["principal"], "carl");
    let untrusted = curl(&[&format!("{}/v1/health", server.base)]);
    assert!(!untrusted.status.success(), "a client that does not trust the certificate: {}", text(&untrusted));
    let plain = curl(&[&format!("{}/v1/health", server.base.replace("https://", "http://"))]);
    assert!(
        !plain.status.success() || !String::from_utf8_lossy(&plain.stdout).contains("ok"),
        "plain HTTP: {}",
        text(&plain)
    );
    // The server still answers after those: a failed handshake holds up no one.
    let health = curl(&["--cacert", "cert.pem", &format!("{}/v1/health", server.base)]);
    assert_eq!(String::from_utf8_lossy(&health.stdout), "{\"status\":\"ok\"}");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// Actions through a system over HTTP (`url` in `flow.toml`): each call signed (the test's
/// ledger refuses a call whose signature does not verify), the idempotency key as a header,
/// a system that is down for a moment tried again with the same key, a refusal of the
/// system failing the action at once; each request booked once.
#[test]
fn actions_through_a_system_over_http() {
    let dir = deployment_on("http_system", None);
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runs/ledger_http.py"), dir.join("ledger_http.py"))
        .unwrap();
    let mut ledger = Command::new("python3")
        .arg("ledger_http.py")
        .current_dir(&dir)
        .env("LEDGER_SECRET", "s3cret")
        .env("FAIL_FIRST", "2")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = ledger.stdout.take().unwrap();
    let _ledger = Killed(ledger);
    let mut port = String::new();
    BufReader::new(stdout).read_line(&mut port).unwrap();
    let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap().replace(
        "[systems.ledger]\ncommand = [\"python3\", \"ledger.py\"]",
        &format!(
            "[systems.ledger]\nurl = \"http://127.0.0.1:{}/book\"\nsecret_env = \"LEDGER_SECRET\"\nretries = 3",
            port.trim()
        ),
    );
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let run = |id: &str, amount: &str, secret: &str| -> Json {
        std::fs::write(dir.join(format!("{id}.json")), request(id, amount, "carl").to_string()).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .env_remove("FLOW_STORE")
            .args([
                "run",
                "loan.flow",
                "--input",
                &format!("request={id}.json"),
                "--as",
                "carl",
                "--at",
                AT,
                "--format",
                "json",
            ])
            .current_dir(&dir)
            .env("LEDGER_SECRET", secret)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    // Down for two calls, then booked: three calls with one key, one effect.
    let booked = run("H1", "20", "s3cret");
    assert_eq!(booked["status"], "completed", "{booked}");
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    assert_eq!(calls.lines().filter(|k| k.ends_with("H1")).count(), 3, "{calls}");
    let effects = std::fs::read_to_string(dir.join("effects.log")).unwrap();
    assert_eq!(effects.lines().collect::<Vec<_>>(), ["booking/H1 R-booking/H1"]);
    // The tries are in the evidence, and the run replays exactly.
    let id = booked["run"].as_str().unwrap();
    let page = flowc(&dir, &["show", id, "--as", "aud"]);
    assert!(text(&page).contains("(after 3 tries with this key)"), "{}", text(&page));
    let replay = flowc(&dir, &["replay", id, "--as", "aud", "--format", "json"]);
    assert_eq!(serde_json::from_slice::<Json>(&replay.stdout).unwrap()["exact"], true, "{}", text(&replay));
    // The system refuses the amount: no retry, the action fails.
    let refused = run("H2", "777", "s3cret");
    assert_eq!(refused["status"], "failed", "{refused}");
    // Signed with another secret: the system refuses the call.
    let forged = run("H3", "20", "not-the-secret");
    assert_eq!(forged["status"], "failed", "{forged}");
    let calls = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    for id in ["H2", "H3"] {
        assert_eq!(calls.lines().filter(|k| k.ends_with(id)).count(), 1, "{id} is not tried again: {calls}");
    }
    let effects = std::fs::read_to_string(dir.join("effects.log")).unwrap();
    assert_eq!(effects.lines().count(), 1, "{effects}");
}

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example webhook receiver (`examples/webhooks/receiver.py`), listening on `port` (any
/// free one with 0) and writing what it takes to `out`; its port.
fn receiver(dir: &Path, port: u16, out: &str) -> (Killed, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webhooks/receiver.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--port", &port.to_string(), "--out", out])
        .current_dir(dir)
        .env("FLOW_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    // It prints each notice too: read on, so that it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (Killed(child), line.trim().parse().unwrap_or_else(|_| panic!("the receiver did not start: {line:?}")))
}

const WEBHOOK_SECRET: &str = "whsec-for-the-tests";

/// What a receiver took: its lines (notices, and `{"duplicate": id}`), once `done` says
/// they are all there (or after a minute).
fn received(path: &Path, done: impl Fn(&[Json]) -> bool) -> Vec<Json> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lines: Vec<Json> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if done(&lines) || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A free local port, for a receiver that starts later.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Webhooks: an endpoint that is down while runs wait, are decided, block, end and are
/// refused gets every notice once it comes back, signed (the example receiver checks), once
/// each, labelled values redacted; another endpoint, cleared to view `pii` and asking for two
/// kinds, gets those kinds with the values. Each notice names the event it tells.
#[test]
fn webhooks_reach_a_receiver_that_fails_and_comes_back() {
    let contract = Contract::load();
    for postgres in stores("webhooks") {
        let (dir, mut tokens) = serving("webhooks", postgres.as_deref());
        tokens.extend(self::tokens(&dir, &["aud"]));
        let token = |who: &str| tokens[who].1.clone();
        let down = free_port();
        let (_audit, audit_port) = receiver(&dir, 0, "audit.jsonl");
        let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        config.push_str(&format!(
            "\n[webhooks.ops]\nurl = \"http://127.0.0.1:{down}/flow\"\nsecret_env = \"FLOW_WEBHOOK_SECRET\"\n\
             backoff = \"1s\"\n\n[webhooks.audit]\nurl = \"http://127.0.0.1:{audit_port}/flow\"\n\
             secret_env = \"FLOW_WEBHOOK_SECRET\"\nevents = [\"step.waiting\", \"run.ended\"]\nview = [\"pii\"]\n"
        ));
        std::fs::write(dir.join("flow.toml"), config).unwrap();
        // The server signs what it sends: without the secret it does not start.
        let refused = flowc(&dir, &["serve", "--listen", "127.0.0.1:0"]);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        assert!(text(&refused).contains("webhook `audit`"), "{}", text(&refused));

        let server = Server::start_with(&dir, &[("FLOW_WEBHOOK_SECRET", WEBHOOK_SECRET)]);
        let api = Api::new(&server, &contract);
        let plan = install(&api, &dir, &token("olga"));
        let start = |id: &str, amount: &str| {
            let body = json!({"plan": plan, "clock": AT, "inputs": {"request": request(id, amount, "carl")}});
            let started = api.post("/v1/runs", &token("carl"), &body);
            assert_status(&started, 201, id);
            started.json()["run"].as_str().unwrap().to_owned()
        };
        let completed = start("W1", "20");
        let reviewed = start("W2", "2000");
        let decided = api.post(
            &format!("/v1/runs/{reviewed}/steps/check/decision"),
            &token("mia"),
            &json!({"outcome": "approve", "reason": "ok"}),
        );
        assert_status(&decided, 200, "the review");
        let blocked = start("EMBARGO", "20");
        let body = json!({"plan": plan, "clock": AT, "inputs": {"request": request("W4", "20", "carl")}});
        assert_status(&api.post("/v1/runs", &token("mia"), &body), 403, "a manager starts a run");

        // The endpoint is down: its notices wait, tried again and again.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !api.get("/metrics", &token("olga")).text().contains("flow_webhook_deliveries_total{result=\"retried\"} ")
            || api
                .get("/metrics", &token("olga"))
                .text()
                .contains("flow_webhook_deliveries_total{result=\"retried\"} 0")
        {
            assert!(std::time::Instant::now() < deadline, "no attempt to deliver to the endpoint that is down");
            std::thread::sleep(Duration::from_millis(200));
        }
        let (_ops, _) = receiver(&dir, down, "ops.jsonl");
        let wanted = ["step.waiting", "step.decided", "gate.blocked", "run.ended", "refusal"];
        // W1 ended; W2 waited for its review, was decided, waits for its approval; EMBARGO
        // blocked; mia was refused.
        received(&dir.join("ops.jsonl"), |lines| lines.len() >= 6);
        // Nothing more comes, and nothing twice.
        std::thread::sleep(Duration::from_millis(1500));
        let ops = received(&dir.join("ops.jsonl"), |_| true);
        assert_eq!(ops.len(), 6, "{ops:#?}");
        let kinds: BTreeSet<&str> = ops.iter().filter_map(|l| l["type"].as_str()).collect();
        assert_eq!(kinds, wanted.into_iter().collect(), "{ops:#?}");
        ops.iter().for_each(|notice| contract.check_notice(notice));
        assert!(ops.iter().all(|l| l.get("duplicate").is_none()), "a notice sent twice: {ops:#?}");
        let ids: Vec<&str> = ops.iter().map(|l| l["id"].as_str().unwrap()).collect();
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "{ids:?}");
        let of = |lines: &[Json], kind: &str, run: &str| -> Json {
            let found = lines.iter().find(|l| l["type"] == kind && l["data"]["run"] == run);
            found.unwrap_or_else(|| panic!("no {kind} of {run}: {lines:#?}")).clone()
        };
        // What each tells, and that its id names the event it tells.
        let ended = of(&ops, "run.ended", &completed);
        assert_eq!(ended["data"]["status"], "completed");
        assert!(ended["data"]["outputs"]["decision"]["note"]["$redacted"].is_string(), "{ended}");
        assert!(!ops.iter().any(|l| l.to_string().contains("personal note")), "a labelled value sent to ops");
        let evidence = api.get(&format!("/v1/runs/{completed}/evidence"), &token("aud")).json();
        let seq: usize = ended["id"].as_str().unwrap().rsplit_once('.').unwrap().1.parse().unwrap();
        assert_eq!(evidence["events"][seq]["event"]["event"], "settled", "{ended} names {}", evidence["events"][seq]);
        let waiting: Vec<(&Json, &Json)> = ops
            .iter()
            .filter(|l| l["type"] == "step.waiting")
            .map(|l| (&l["data"]["step"], &l["data"]["kind"]))
            .collect();
        assert!(waiting.contains(&(&json!("check"), &json!("review"))), "{waiting:?}");
        assert!(waiting.contains(&(&json!("sign"), &json!("approval"))), "{waiting:?}");
        let decision = of(&ops, "step.decided", &reviewed);
        assert_eq!(decision["data"]["decision"]["principal"], "mia", "{decision}");
        assert_eq!(of(&ops, "gate.blocked", &blocked)["data"]["may_override"], json!(["officer"]));
        let refusal = ops.iter().find(|l| l["type"] == "refusal").unwrap();
        assert!(refusal["id"].as_str().unwrap().starts_with("refusals."), "{refusal}");
        assert_eq!(
            (refusal["data"]["principal"].clone(), refusal["data"]["grant"].clone()),
            (json!("mia"), json!("trigger"))
        );

        // The endpoint cleared to view pii, asking for two kinds.
        let audit = received(&dir.join("audit.jsonl"), |lines| lines.len() >= 3);
        assert_eq!(audit.len(), 3, "{audit:#?}");
        let kinds: BTreeSet<&str> = audit.iter().filter_map(|l| l["type"].as_str()).collect();
        assert_eq!(kinds, ["run.ended", "step.waiting"].into_iter().collect(), "{audit:#?}");
        audit.iter().for_each(|notice| contract.check_notice(notice));
        let ended = of(&audit, "run.ended", &completed);
        assert_eq!(ended["data"]["outputs"]["decision"]["note"]["$value"], "personal note of carl", "{ended}");
        assert!(!ended.to_string().contains("$salt"), "{ended}");

        // The receiver refuses what is not signed with the secret.
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let forged = agent
            .post(&format!("http://127.0.0.1:{audit_port}/flow"))
            .header(
                "Flow-Timestamp",
                &format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()),
            )
            .header("Flow-Signature", "v1=00")
            .send(ended.to_string().as_bytes())
            .unwrap();
        assert_eq!(forged.status().as_u16(), 401);
        let metrics = api.get("/metrics", &token("olga")).text();
        assert!(metrics.contains("flow_webhook_deliveries_total{result=\"given_up\"} 0"), "{metrics}");
        // The outbox as an operator lists it, and the refusal of no run.
        let listed = flowc(&dir, &["webhooks", "--format", "json"]);
        let notices: Json = serde_json::from_slice(&listed.stdout).unwrap_or_else(|_| panic!("{}", text(&listed)));
        let notices = notices["notices"].as_array().unwrap();
        assert_eq!(notices.len(), 9, "{notices:?}");
        assert!(notices.iter().all(|n| n["state"] == "delivered"), "{notices:?}");
        let mut retried = notices.iter().filter(|n| n["endpoint"] == "ops").map(|n| n["attempts"].as_u64().unwrap());
        assert!(retried.any(|a| a >= 2), "ops was down at first: {notices:?}");
        assert_eq!(flowc(&dir, &["webhooks", "--state", "failed"]).stdout, b"no notices\n");
        assert_eq!(flowc(&dir, &["webhooks", "--state", "lost"]).status.code(), Some(2));
        let refusals = flowc(&dir, &["refusals"]);
        assert!(text(&refusals).contains("mia: refused trigger (grant `trigger`)"), "{}", text(&refusals));
        assert!(server.stop().0.success());
    }
}

/// A principal asking more than `[serve] rate` requests a second is answered `429` with
/// `Retry-After`, before any work; another principal is counted apart.
#[test]
fn a_principal_asking_too_much_is_told_to_wait() {
    let contract = Contract::load();
    let (dir, tokens) = serving("limits", None);
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config = config.replace("[serve]\n", "[serve]\nrate = 2\nmax_concurrent = 4\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let answers: Vec<Reply> = (0..6).map(|_| api.get("/v1/me", &tokens["carl"].1)).collect();
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    let refused = answers.iter().find(|r| r.status == 429).unwrap_or_else(|| panic!("{statuses:?}"));
    assert!(refused.json()["detail"].as_str().unwrap().contains("2 requests a second"), "{}", refused.text());
    assert_status(&api.get("/v1/me", &tokens["mia"].1), 200, "another principal");
    std::thread::sleep(Duration::from_millis(1100));
    assert_status(&api.get("/v1/me", &tokens["carl"].1), 200, "after a second");
    assert!(server.stop().0.success());
}

/// Tokens created and revoked by several commands at once are all kept: the tokens file is
/// changed under a lock.
#[test]
fn tokens_created_at_once_are_all_kept() {
    let dir = deployment_on("token_lock", None);
    let created: Vec<String> = std::thread::scope(|scope| {
        let made: Vec<_> = (0..8)
            .map(|_| {
                let dir = &dir;
                scope.spawn(move || {
                    let output = flowc(dir, &["token", "create", "--as", "carl", "--format", "json"]);
                    assert!(output.status.success(), "{}", text(&output));
                    serde_json::from_slice::<Json>(&output.stdout).unwrap()["id"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        made.into_iter().map(|t| t.join().unwrap()).collect()
    });
    std::thread::scope(|scope| {
        for id in &created[..4] {
            let dir = &dir;
            scope.spawn(move || assert!(flowc(dir, &["token", "revoke", id]).status.success()));
        }
    });
    let listed = flowc(&dir, &["token", "list", "--format", "json"]);
    let tokens: Json = serde_json::from_slice(&listed.stdout).unwrap();
    let tokens = tokens["tokens"].as_array().unwrap();
    let ids: BTreeSet<&str> = tokens.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, created.iter().map(String::as_str).collect(), "every token created is kept");
    assert_eq!(tokens.iter().filter(|t| t["revoked"].is_string()).count(), 4, "{tokens:?}");
}

/// A client that opens a connection and sends half of a request's head, or nothing, is cut
/// off after `[serve] timeout`, instead of holding the connection for good.
#[test]
fn a_client_slow_to_send_its_request_is_cut_off() {
    use std::io::{Read, Write};
    let (dir, _) = serving("slow_head", None);
    let config =
        std::fs::read_to_string(dir.join("flow.toml")).unwrap().replace("[serve]\n", "[serve]\ntimeout = \"1s\"\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start(&dir);
    let address = server.base.trim_start_matches("http://").to_owned();
    for sent in ["GET /v1/health HTTP/1.1\r\nHost: x\r\n", ""] {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(sent.as_bytes()).unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{sent:?}: the connection was held {:?}",
            started.elapsed()
        );
    }
    // A whole request is still answered.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(server.stop().0.success());
}

/// A start by flow name with an `Idempotency-Key`, retried after a newer version of the
/// flow was installed, finds the run it retries; asked for the newer version by name, the
/// key is another request's.
#[test]
fn a_retried_start_finds_its_run_after_a_new_version() {
    let contract = Contract::load();
    let (dir, tokens) = serving("retry_version", None);
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    install(&api, &dir, &tokens["olga"].1);
    let start = |body: &Json| {
        let bytes = body.to_string();
        let carl = &tokens["carl"].1;
        api.call(
            "POST",
            "/v1/runs",
            Some(carl),
            Some(("application/json", bytes.as_bytes())),
            &[("Idempotency-Key", "order-V1")],
        )
    };
    let body = json!({"flow": "loan", "clock": AT, "inputs": {"request": request("V1", "20", "carl")}});
    let first = start(&body);
    assert_status(&first, 201, "the first start");
    let newer =
        std::fs::read_to_string(dir.join("loan.flow")).unwrap().replace("version \"1.0.0\"", "version \"1.1.0\"");
    let installed = api.call("POST", "/v1/plans", Some(&tokens["olga"].1), Some(("text/plain", newer.as_bytes())), &[]);
    assert_status(&installed, 201, "a newer version");
    let again = start(&body);
    assert_eq!((again.status, again.json()["run"].clone()), (200, first.json()["run"].clone()), "{}", again.text());
    let mut pinned = body.clone();
    pinned["version"] = json!("1.1.0");
    assert_eq!(start(&pinned).code(), "E3002", "the key asked for another version by name");
    assert!(server.stop().0.success());
}

/// A principal added to the principals file while the server runs may authenticate, and be
/// named in a run's inputs, from the next request on, without a restart.
#[test]
fn a_principal_added_while_serving_may_start_runs() {
    let contract = Contract::load();
    let (dir, tokens) = serving("new_principal", None);
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let plan = install(&api, &dir, &tokens["olga"].1);
    let principals = std::fs::read_to_string(dir.join("flow-principals.toml")).unwrap();
    std::fs::write(dir.join("flow-principals.toml"), format!("{principals}nina = [\"clerk\"]\n")).unwrap();
    let nina = self::tokens(&dir, &["nina"]);
    let body = json!({"plan": plan, "clock": AT, "inputs": {"request": request("N1", "20", "nina")}});
    let started = api.post("/v1/runs", &nina["nina"].1, &body);
    assert_status(&started, 201, "a run naming the new principal");
    assert_eq!(started.json()["status"], "completed", "{}", started.text());
    assert!(server.stop().0.success());
}

/// The web pages, through a real server: a session begins only through the sign-in form
/// (its own CSRF token, a valid API token), lives in a signed cookie the browser keeps from
/// scripts and other sites, is refused when changed, is cleared from the browser on sign-out
/// (a copy of the cookie would still hold: the session is not kept on the server), and ends
/// everywhere when its token is revoked;
/// the inbox lists what waits for the signed-in principal; a run's page shows its outcome,
/// why and what happened, redacted for the viewer, with markup in values shown as text;
/// its evidence downloads and verifies; a form without its session's token is refused and
/// the refusal recorded; every answer forbids scripts and framing.
#[test]
fn the_web_pages_sign_in_list_and_show_runs() {
    let contract = Contract::load();
    let (dir, made) = serving("web", None);
    let extra = tokens(&dir, &["aud"]);
    let tokens = made;
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let olga = tokens["olga"].1.clone();
    let plan = install(&api, &dir, &olga);
    let start = |id: &str, amount: &str, note: &str| -> String {
        let mut request = request(id, amount, "carl");
        request["note"] = json!(note);
        let body = json!({"plan": plan, "clock": AT, "inputs": {"request": request}}).to_string();
        let reply =
            api.call("POST", "/v1/runs", Some(&tokens["carl"].1), Some(("application/json", body.as_bytes())), &[]);
        assert_status(&reply, 201, "a start");
        reply.json()["run"].as_str().unwrap().to_owned()
    };
    let waiting = start("W1", "7000.00", "for the review");
    let marked = start("W2", "500.00", "<script>alert(1)</script> & <b>bold</b>");

    let browser = Browser::new(&server.base);
    // Not signed in: to the sign-in page.
    let page = browser.get("/ui/inbox", None);
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/ui/sign-in")), "{}", page.body);
    let form = browser.get("/ui/sign-in", None);
    assert_eq!(form.status, 200, "{}", form.body);
    for (name, value) in [
        ("content-security-policy", "default-src 'none'; style-src 'self'"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert!(form.header(name).contains(value), "{name}: {:?}", form.header(name));
    }
    let nonce = form.cookie("__Host-flow_sign_in").expect("the sign-in form's cookie");
    let csrf = form.hidden("csrf");
    let sign_in = |token: &str, csrf: &str, nonce: &str| {
        let body = format!("token={}&csrf={csrf}", urlencode(token));
        browser.post("/ui/sign-in", Some(&format!("__Host-flow_sign_in={nonce}")), &body)
    };
    // The form's token must be its own; the API token must be the deployment's.
    let forged = sign_in(&tokens["max"].1, "0000", &nonce);
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.cookie("__Host-flow_session").is_none(), "no session from a forged form");
    let wrong = sign_in("flow_t-0000000000000000_ffff", &csrf, &nonce);
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.body.contains("not one of this deployment"), "{}", wrong.body);
    let signed = sign_in(&tokens["max"].1, &csrf, &nonce);
    assert_eq!((signed.status, signed.location.as_deref()), (303, Some("/ui/inbox")), "{}", signed.body);
    let set = signed.set_cookies.iter().find(|c| c.starts_with("__Host-flow_session=")).expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let max = format!("__Host-flow_session={}", signed.cookie("__Host-flow_session").unwrap());

    // The inbox: the run waiting for a manager's review, with why.
    let inbox = browser.get("/ui/inbox", Some(&max));
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(inbox.body.contains(&format!("href=\"/ui/runs/{waiting}\"")), "{}", inbox.body);
    assert!(inbox.body.contains("<strong>check</strong>") && inbox.body.contains("manager"), "{}", inbox.body);
    assert!(!inbox.body.contains(&marked), "a run that waits for nobody is not in the inbox");

    // The decide page: the form made from the plan, the inbox linking to it.
    let path = format!("/ui/runs/{waiting}/steps/check");
    assert!(inbox.body.contains(&format!("href=\"{path}\"")), "{}", inbox.body);
    let form = browser.get(&path, Some(&max));
    assert_eq!(form.status, 200, "{}", form.body);
    for part in [
        "name=\"outcome\" value=\"approve\"",
        "name=\"outcome\" value=\"reject\"",
        "<option value=\"doubtful\"",
        "name=\"edit.score.tier\"",
        // Beside the field, its value as it stands.
        "score.tier <small>Tier; now medium</small>",
        "<option value=\"high\"",
    ] {
        assert!(form.body.contains(part), "`{part}` missing: {}", form.body);
    }
    let csrf = form.hidden("csrf");
    let send = |fields: &str| browser.post(&path, Some(&max), &format!("{fields}&csrf={csrf}"));
    // Refused, with the error at its field and what was entered kept; nothing recorded.
    let wrong = send("outcome=maybe&reason=ok&basis=kept+text");
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(wrong.body.contains("`maybe` is not an outcome of `check`"), "{}", wrong.body);
    assert!(wrong.body.contains(">kept text</textarea>"), "what was entered is kept: {}", wrong.body);
    for (fields, said) in [
        ("outcome=approve&reason=ok&edit.score.tier=enormous", "the new value of `score.tier` does not fit"),
        ("outcome=approve&reason=ok&edit.request.amount=1", "`check` may not edit `request.amount`"),
        ("outcome=approve&basis=x", "needs a reason: one of doubtful, ok"),
        ("outcome=approve&reason=ok&edit.score.tier=high&edit.score.tier=low", "`score.tier` is edited twice"),
    ] {
        let wrong = send(fields);
        assert_eq!(wrong.status, 422, "{fields}: {}", wrong.body);
        assert!(wrong.body.contains(said), "{fields}: {}", wrong.body);
    }
    // Taken: to the run's page; the same form sent again finds the step decided.
    let basis = urlencode("<script>alert(2)</script> the file");
    let taken = send(&format!("outcome=approve&reason=doubtful&basis={basis}&edit.score.tier=high"));
    assert_eq!(
        (taken.status, taken.location.as_deref()),
        (303, Some(format!("/ui/runs/{waiting}").as_str())),
        "{}",
        taken.body
    );
    let again = send(&format!("outcome=approve&reason=doubtful&basis={basis}"));
    assert_eq!(again.status, 409, "{}", again.body);
    let page = browser.get(&format!("/ui/runs/{waiting}"), Some(&max));
    assert!(page.body.contains("check decided by max"), "{}", page.body);
    // The path it took, drawn: the review ran, the approval waits, the action is not reached.
    for part in [
        r#"<g class="node review ran" id="node-check">"#,
        r#"<g class="node approval waiting" id="node-sign">"#,
        r#"<g class="node action not-reached" id="node-booking" opacity="0.4">"#,
        r#"<g class="node gate_block ran" id="node-embargo">"#,
    ] {
        assert!(page.body.contains(part), "`{part}` missing: {}", page.body);
    }
    assert!(!page.body.contains("<script>alert(2)"), "{}", page.body);
    let forged = browser.post(&path, Some(&max), "outcome=approve&reason=ok&csrf=0000");
    assert_eq!(forged.status, 403, "{}", forged.body);

    // A run's page, redacted for the manager, the markup of a value shown as text.
    let run = browser.get(&format!("/ui/runs/{marked}"), Some(&max));
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.body.contains("<strong>completed</strong>"), "{}", run.body);
    assert!(!run.body.contains("alert(1)"), "the manager may not see the note: {}", run.body);
    let aud = browser.session(&extra["aud"].1);
    let run = browser.get(&format!("/ui/runs/{marked}"), Some(&aud));
    assert_eq!(run.status, 200, "{}", run.body);
    // Escaped as askama escapes (`&#60;` for `<`): text, never markup.
    assert!(run.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "the auditor sees the note: {}", run.body);
    assert!(!run.body.contains("<script") && !run.body.contains("<b>bold"), "{}", run.body);
    let unknown = browser.get("/ui/runs/r-0000000000000000", Some(&max));
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let no_page = browser.get("/ui/no/such/page", None);
    assert_eq!(no_page.status, 404, "{}", no_page.body);
    assert!(no_page.header("content-type").starts_with("text/html") && no_page.body.contains("no such page"));

    // Its evidence, downloaded, verifies.
    let evidence = browser.get(&format!("/ui/runs/{marked}/evidence"), Some(&aud));
    assert_eq!(evidence.status, 200, "{}", evidence.body);
    assert!(
        evidence.header("content-disposition").starts_with("attachment;"),
        "{:?}",
        evidence.header("content-disposition")
    );
    std::fs::write(dir.join("downloaded.json"), &evidence.body).unwrap();
    let verified = flowc(&dir, &["verify", "downloaded.json"]);
    assert!(verified.status.success(), "{}", text(&verified));
    // The run's page says what checking that bundle found, and offers a replay, to the
    // auditor (granted both); the manager is told the grant it needs, and offered neither.
    let audited = browser.get(&format!("/ui/runs/{marked}"), Some(&aud));
    assert!(audited.body.contains("The evidence verifies: "), "{}", audited.body);
    let replay = format!("/ui/runs/{marked}/replay");
    assert!(audited.body.contains(&format!("action=\"{replay}\"")), "{}", audited.body);
    let managed = browser.get(&format!("/ui/runs/{marked}"), Some(&max));
    assert!(managed.body.contains("needs `read evidence`") && !managed.body.contains(&replay), "{}", managed.body);
    let replayed = browser.post(&replay, Some(&aud), &format!("csrf={}", audited.hidden("csrf")));
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    assert!(
        replayed.body.contains("<strong>Exact</strong>") && replayed.body.contains("stands completed again"),
        "{}",
        replayed.body
    );
    let refused = browser.post(&replay, Some(&max), &format!("csrf={}", managed.hidden("csrf")));
    assert_eq!(refused.status, 403, "the manager may not replay: {}", refused.body);
    let forged = browser.post(&replay, Some(&aud), "csrf=0000");
    assert_eq!(forged.status, 403, "{}", forged.body);

    // A run a blocking gate holds: the officer, granted its override, overrides it on the
    // run's page with a reason code and a basis; the manager is not offered the form.
    let embargoed = start("EMBARGO", "500.00", "held");
    let held = format!("/ui/runs/{embargoed}");
    let seen_by_max = browser.get(&held, Some(&max));
    assert!(seen_by_max.body.contains("<strong>blocked</strong>"), "{}", seen_by_max.body);
    assert!(!seen_by_max.body.contains("/gates/embargo/override"), "{}", seen_by_max.body);
    // One not granted the override who sends its form anyway is refused, and recorded,
    // whatever the form holds.
    let max_csrf = seen_by_max.hidden("csrf");
    let not_granted = browser.post(
        &format!("{held}/gates/embargo/override"),
        Some(&max),
        &format!("reason=x&basis=&csrf={max_csrf}"),
    );
    assert_eq!(not_granted.status, 403, "{}", not_granted.body);
    let recorded = browser.get(&held, Some(&max));
    assert!(recorded.body.contains("max: refused override (missing grant `override embargo`)"), "{}", recorded.body);
    let olga = browser.session(&tokens["olga"].1);
    let page = browser.get(&held, Some(&olga));
    let action = format!("{held}/gates/embargo/override");
    assert!(page.body.contains(&format!("action=\"{action}\"")), "{}", page.body);
    let csrf = page.hidden("csrf");
    let bare = browser.post(&action, Some(&olga), &format!("reason=cleared&basis=+&csrf={csrf}"));
    assert_eq!(bare.status, 422, "an override needs a basis: {}", bare.body);
    let done = browser.post(&action, Some(&olga), &format!("reason=cleared&basis=Legal+lifted+it&csrf={csrf}"));
    assert_eq!((done.status, done.location.as_deref()), (303, Some(held.as_str())), "{}", done.body);
    let after = browser.get(&held, Some(&olga));
    assert!(after.body.contains("gate `embargo` was overridden"), "{}", after.body);
    assert!(!after.body.contains(&format!("action=\"{action}\"")), "no longer offered: {}", after.body);

    // A changed cookie is no session.
    let mut changed = max.clone().into_bytes();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(changed).unwrap();
    assert_eq!(browser.get("/ui/inbox", Some(&changed)).status, 303);

    // A form without its session's token is refused, and the refusal recorded.
    let csrf = inbox.hidden("csrf");
    let refused = browser.post("/ui/sign-out", Some(&max), "csrf=0000");
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refusals = flowc(&dir, &["refusals"]);
    assert!(text(&refusals).contains("max: refused sign out"), "{}", text(&refusals));
    let out = browser.post("/ui/sign-out", Some(&max), &format!("csrf={csrf}"));
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/ui/sign-in")), "{}", out.body);
    assert!(
        out.set_cookies.iter().any(|c| c.starts_with("__Host-flow_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        out.set_cookies
    );

    // Revoking the token a session began with ends the session.
    assert_eq!(browser.get("/ui/inbox", Some(&aud)).status, 200);
    let revoked = flowc(&dir, &["token", "revoke", &extra["aud"].0]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert_eq!(browser.get("/ui/inbox", Some(&aud)).status, 303, "the session ended with its token");

    // A principals file that does not parse lets nobody in, and tells a visitor nothing of it.
    let carl = browser.session(&tokens["carl"].1);
    let principals = std::fs::read_to_string(dir.join("flow-principals.toml")).unwrap();
    std::fs::write(dir.join("flow-principals.toml"), format!("{principals}\nsecret-line = [unclosed\n")).unwrap();
    let broken = browser.get("/ui/inbox", Some(&carl));
    assert_eq!(broken.status, 503, "{}", broken.body);
    assert!(!broken.body.contains("secret-line") && !broken.body.contains("flow-principals"), "{}", broken.body);
    std::fs::write(dir.join("flow-principals.toml"), principals).unwrap();
    assert_eq!(browser.get("/ui/inbox", Some(&carl)).status, 200);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("the pages cannot authenticate"), "the server's log says why: {log}");
    assert!(!log.contains(&tokens["max"].1), "the log holds a token: {log}");
}

/// The stewards' pages: the flows and their versions; a version's governance as a table
/// and a picture of three columns (not one arrow per gate and effect); what changed between
/// two versions, material marked; and a what-if over the stored runs, whose page shows its
/// progress and then the transitions and the runs that change, each linked. A what-if over
/// runs one may not replay is refused and says so; a form without its token is refused.
#[test]
fn the_stewards_pages_show_governance_changes_and_what_ifs() {
    let contract = Contract::load();
    let (dir, made) = serving("stewards", None);
    let extra = tokens(&dir, &["aud"]);
    let tokens = made;
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let olga = tokens["olga"].1.clone();
    let plan = install(&api, &dir, &olga);
    let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
    let lower = source
        .replace("version \"1.0.0\"\n  owner", "version \"1.1.0\"\n  owner")
        .replace("param limit: Money[USD] = 5_000 USD", "param limit: Money[USD] = 400 USD");
    let installed = api.call("POST", "/v1/plans", Some(&olga), Some(("text/plain", lower.as_bytes())), &[]);
    assert_status(&installed, 201, "the second version");
    let candidate = installed.json()["plan"].as_str().unwrap().to_owned();
    let mut started = Vec::new();
    for (id, amount) in [("S1", "500.00"), ("S2", "300.00"), ("S3", "450.00")] {
        let body = json!({"plan": plan, "clock": AT, "inputs": {"request": request(id, amount, "carl")}}).to_string();
        let reply =
            api.call("POST", "/v1/runs", Some(&tokens["carl"].1), Some(("application/json", body.as_bytes())), &[]);
        assert_status(&reply, 201, "a start");
        started.push(reply.json()["run"].as_str().unwrap().to_owned());
    }

    let browser = Browser::new(&server.base);
    let steward = browser.session(&olga);
    let flows = browser.get("/ui/flows", Some(&steward));
    assert_eq!(flows.status, 200, "{}", flows.body);
    for part in [format!("href=\"/ui/plans/{plan}\">1.0.0</a>"), format!("href=\"/ui/plans/{candidate}\">1.1.0</a>")] {
        assert!(flows.body.contains(&part), "`{part}` missing: {}", flows.body);
    }
    // The highest version first.
    assert!(flows.body.find(&candidate) < flows.body.find(&plan), "{}", flows.body);

    let page = browser.get(&format!("/ui/plans/{plan}"), Some(&steward));
    assert_eq!(page.status, 200, "{}", page.body);
    for part in [
        "gate (block) <strong>embargo</strong>",
        "The request is under embargo",
        "stops the run when it holds; only an override moves it on",
        "gate (soft) <strong>huge</strong>",
        "approval <strong>sign</strong>",
        "never the same person as request.requester",
        "score.tier == high → 1 of director, 1 of manager",
        "action ledger.book <strong>booking</strong>",
        // The override grant, beside the gate it is of.
        "<td>officer</td>",
        // The picture: three columns joined by one arrow each.
        "Checked first",
        "Then people and models",
        "Then what leaves the run",
        "no person or model is asked while a blocking gate holds",
    ] {
        assert!(page.body.contains(part), "`{part}` missing: {}", page.body);
    }
    assert_eq!(page.body.matches("marker-end=\"url(#arrow)\"").count(), 2, "{}", page.body);

    // What changed from 1.0.0 to 1.1.0, in words, material.
    let diff = browser.get(&format!("/ui/plans/{candidate}/diff?against={plan}"), Some(&steward));
    assert_eq!(diff.status, 200, "{}", diff.body);
    assert!(diff.body.contains("<strong>Material change</strong>"), "{}", diff.body);
    assert!(diff.body.contains("5,000 USD → 400 USD") || diff.body.contains("5000 USD → 400 USD"), "{}", diff.body);
    let unknown = browser.get(&format!("/ui/plans/{candidate}/diff?against=blake3:00"), Some(&steward));
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // A what-if over runs the steward may not replay: refused, and said so.
    let what_if = format!("/ui/plans/{plan}/what-if");
    let csrf = page.hidden("csrf");
    let sent = browser.post(&what_if, Some(&steward), &format!("param.limit=400+USD&csrf={csrf}"));
    assert_eq!(sent.status, 303, "{}", sent.body);
    let job = sent.location.clone().expect("to the job's page");
    let ended = |session: &str, job: &str| {
        for _ in 0..600 {
            let page = browser.get(job, Some(session));
            assert_eq!(page.status, 200, "{}", page.body);
            if !page.body.contains("http-equiv=\"refresh\"") {
                return page;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the job did not end");
    };
    let result = ended(&steward, &job);
    assert!(result.body.contains("olga may replay none of the 3 runs selected"), "{}", result.body);
    let refusals = flowc(&dir, &["refusals"]);
    assert!(
        text(&refusals).contains("olga: refused what-if (grant `replay`): olga may replay none"),
        "recorded: {}",
        text(&refusals)
    );
    // Another principal's job is not theirs to see.
    let aud = browser.session(&extra["aud"].1);
    assert_eq!(browser.get(&job, Some(&aud)).status, 404);

    // The auditor, granted replay: a lower limit sends the runs above it to a manager.
    let page = browser.get(&format!("/ui/plans/{plan}"), Some(&aud));
    let csrf = page.hidden("csrf");
    let forged = browser.post(&what_if, Some(&aud), "param.limit=400+USD&csrf=0000");
    assert_eq!(forged.status, 403, "{}", forged.body);
    let nothing = browser.post(&what_if, Some(&aud), &format!("param.limit=&csrf={csrf}"));
    assert_eq!(nothing.status, 422, "{}", nothing.body);
    let unfit = browser.post(&what_if, Some(&aud), &format!("param.limit=400&csrf={csrf}"));
    assert_eq!(unfit.status, 422, "{}", unfit.body);
    assert!(unfit.body.contains("param `limit` (Money[USD]): "), "{}", unfit.body);
    let sent = browser.post(&what_if, Some(&aud), &format!("param.limit=400+USD&csrf={csrf}"));
    let job = sent.location.clone().expect("to the job's page");
    let result = ended(&aud, &job);
    assert!(result.body.contains("3 runs replayed: 2 would end otherwise"), "{}", result.body);
    let drill = format!("{job}?from=completed&#38;to=pending");
    assert!(result.body.contains(&format!("href=\"{drill}\">completed → pending: 2</a>")), "{}", result.body);
    let listed = browser.get(&format!("{job}?from=completed&to=pending"), Some(&aud));
    for run in [&started[0], &started[2]] {
        assert!(listed.body.contains(&format!("href=\"/ui/runs/{run}\"")), "{run}: {}", listed.body);
    }
    assert!(!listed.body.contains(&format!("/ui/runs/{}\"", started[1])), "{}", listed.body);
    // Another version, chosen on the form: the same transitions.
    let sent = browser.post(&what_if, Some(&aud), &format!("candidate={candidate}&csrf={csrf}"));
    let result = ended(&aud, &sent.location.clone().expect("to the job's page"));
    assert!(result.body.contains("completed → pending: 2"), "{}", result.body);
    let refusals = flowc(&dir, &["refusals"]);
    assert!(text(&refusals).contains("aud: refused what-if"), "{}", text(&refusals));

    // An alert of the loan flow's, raised in the store as a monitor raises it, its value
    // written by someone who could write the store.
    let store = flow_runtime::store::SqliteStore::open(&dir.join(".flow/runs.db")).unwrap();
    let mut alert = flow_runtime::store::Alert {
        id: "loan/overrides/1800000000-00000001".to_owned(),
        flow: "loan".to_owned(),
        monitor: "overrides".to_owned(),
        severity: "critical".to_owned(),
        routes: vec!["governance".to_owned(), "officer".to_owned()],
        condition: "overrides over 30d above 5%".to_owned(),
        raised: "2027-01-15T08:00:00Z".to_owned(),
        value: "<script>alert(1)</script>".to_owned(),
        resolved: None,
        cleared: None,
    };
    // The dashboard: the alert first, then the three runs of today, each signal drawn, the
    // numbers in a table. (The server evaluates its monitors every 30 seconds, and resolves
    // this alert, whose monitor the flow does not declare, when it does: raised again, with
    // another id, when an evaluation came between raising it and reading the page.)
    let mut dashboard = browser.get("/ui/dashboard?flow=loan&days=7", Some(&steward));
    for attempt in 1..=3 {
        alert.id = format!("loan/overrides/1800000000-0000000{attempt}");
        assert!(flow_runtime::store::Store::raise_alert(&store, &alert, &[]).unwrap());
        dashboard = browser.get("/ui/dashboard?flow=loan&days=7", Some(&steward));
        if dashboard.body.contains("<strong>open</strong>") {
            break;
        }
    }
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    std::fs::write(dir.join("dashboard.html"), &dashboard.body).unwrap();
    for part in [
        "3 runs started in these 7 days",
        "<figcaption>Runs, by how they stand</figcaption>",
        ": 3 completed</title>",
        "<figcaption>Approval rate</figcaption>",
        "<figcaption>Override rate</figcaption>",
        "<figcaption>Degraded rate</figcaption>",
        "<figcaption>Blocked rate</figcaption>",
        "<figcaption>Decision latency</figcaption>",
        "<figcaption>Review volume</figcaption>",
        "<td>3</td><td>3 completed</td>",
        "<td>overrides</td><td>critical</td><td>overrides over 30d above 5%</td><td>governance, officer</td>",
        "&#60;script&#62;alert(1)&#60;/script&#62;",
        "<strong>open</strong>",
    ] {
        assert!(dashboard.body.contains(part), "`{part}` missing: {}", dashboard.body);
    }
    assert!(!dashboard.body.contains("<script>"), "{}", dashboard.body);
    let none = browser.get("/ui/dashboard?flow=nothing-of-that-name", Some(&steward));
    assert!(none.body.contains("No run started in these 30 days"), "{}", none.body);
    assert!(none.body.contains("No monitor has raised an alert."), "{}", none.body);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A browser as far as the pages care: requests with a cookie, redirects not followed.
struct Browser {
    base: String,
    agent: ureq::Agent,
}

/// A page as the browser got it.
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> String {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    /// The value a `Set-Cookie` of the answer gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
    }

    /// The value of the page's (first) hidden input `name`.
    fn hidden(&self, name: &str) -> String {
        let at =
            self.body.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name}: {}", self.body));
        let rest = &self.body[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        let config = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build();
        Browser { base: base.to_owned(), agent: ureq::Agent::new_with_config(config) }
    }

    fn send(&self, method: &str, path: &str, cookie: Option<&str>, body: Option<&str>) -> Page {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        if body.is_some() {
            request = request.header("Content-Type", "application/x-www-form-urlencoded");
        }
        let request = request.body(body.unwrap_or_default().as_bytes().to_vec()).unwrap();
        let mut response = self.agent.run(request).unwrap();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let set_cookies = headers.iter().filter(|(n, _)| n == "set-cookie").map(|(_, v)| v.clone()).collect();
        let location = headers.iter().find(|(n, _)| n == "location").map(|(_, v)| v.clone());
        Page {
            status: response.status().as_u16(),
            location,
            set_cookies,
            headers,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        self.send("GET", path, cookie, None)
    }

    fn post(&self, path: &str, cookie: Option<&str>, body: &str) -> Page {
        self.send("POST", path, cookie, Some(body))
    }

    /// Signs in with `token` through the form; the session's `Cookie` header.
    fn session(&self, token: &str) -> String {
        let form = self.get("/ui/sign-in", None);
        let nonce = form.cookie("__Host-flow_sign_in").unwrap();
        let body = format!("token={}&csrf={}", urlencode(token), form.hidden("csrf"));
        let signed = self.post("/ui/sign-in", Some(&format!("__Host-flow_sign_in={nonce}")), &body);
        assert_eq!(signed.status, 303, "{}", signed.body);
        format!("__Host-flow_session={}", signed.cookie("__Host-flow_session").unwrap())
    }
}

/// The release pages: a steward proposes a version from its page, publishes it alone in
/// dev and promotes it to prod; the approvers see the change and approve it in the browser
/// (the author is offered no approval, and one forced through is refused); the server in
/// prod then starts runs on that version only. Every reason shown is escaped.
#[test]
fn the_release_pages_propose_approve_and_publish() {
    let contract = Contract::load();
    let (dir, tokens) = serving("releasepages", None);
    std::fs::write(dir.join("flow-governance.toml"), RELEASE_RULES).unwrap();
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str("\n[release]\nenvironment = \"prod\"\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let plan = install(&api, &dir, &tokens["olga"].1);
    let browser = Browser::new(&server.base);
    let (olga, max, mia) =
        (browser.session(&tokens["olga"].1), browser.session(&tokens["max"].1), browser.session(&tokens["mia"].1));

    let page = browser.get(&format!("/ui/plans/{plan}"), Some(&olga));
    assert!(page.body.contains("Propose this version"), "{}", page.body);
    assert!(
        page.body.contains("<option value=\"dev\">dev</option><option value=\"prod\">prod</option>"),
        "{}",
        page.body
    );
    let csrf = page.hidden("csrf");
    let propose = format!("/ui/plans/{plan}/propose");
    let sent = browser.post(&propose, Some(&olga), &format!("environment=dev&reason=first&csrf={csrf}"));
    assert_eq!((sent.status, sent.location.as_deref()), (303, Some("/ui/releases/rel-1")), "{}", sent.body);
    let dev = browser.get("/ui/releases/rel-1", Some(&olga));
    assert!(dev.body.contains("its author may publish it alone"), "{}", dev.body);
    assert_eq!(browser.post("/ui/releases/rel-1/publish", Some(&olga), &format!("csrf={csrf}")).status, 303);
    let reason = urlencode("promote <script>x</script>");
    let sent = browser.post(&propose, Some(&olga), &format!("environment=prod&reason={reason}&csrf={csrf}"));
    assert_eq!(sent.location.as_deref(), Some("/ui/releases/rel-2"), "{}", sent.body);

    // The author is offered no approval; an approver is.
    let mine = browser.get("/ui/releases/rel-2", Some(&olga));
    assert!(mine.body.contains("Promoted from <a href=\"/ui/releases/rel-1\">rel-1</a>"), "{}", mine.body);
    assert!(mine.body.contains("promote &#60;script&#62;x&#60;/script&#62;"), "{}", mine.body);
    assert!(!mine.body.contains("<script>"), "{}", mine.body);
    assert!(!mine.body.contains("/rel-2/approve"), "{}", mine.body);
    assert!(mine.body.contains("/rel-2/reject"), "the author may withdraw it: {}", mine.body);
    let forced = browser.post("/ui/releases/rel-2/approve", Some(&olga), &format!("reason=mine&csrf={csrf}"));
    assert_eq!(forced.status, 403, "{}", forced.body);
    assert!(forced.body.contains("four eyes"), "{}", forced.body);
    let inbox = browser.get("/ui/inbox", Some(&max));
    assert!(
        inbox
            .body
            .contains("<a href=\"/ui/releases/rel-2\">rel-2</a>: loan 1.0.0 → prod, proposed by olga: to approve"),
        "{}",
        inbox.body
    );
    assert!(!browser.get("/ui/inbox", Some(&olga)).body.contains("rel-2"), "the author has nothing to do yet");
    let theirs = browser.get("/ui/releases/rel-2", Some(&max));
    assert!(theirs.body.contains("/rel-2/approve"), "{}", theirs.body);
    let max_csrf = theirs.hidden("csrf");
    let forged = browser.post("/ui/releases/rel-2/approve", Some(&max), "reason=ok&csrf=0000");
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(
        browser.post("/ui/releases/rel-2/approve", Some(&max), &format!("reason=ok&csrf={max_csrf}")).status,
        303
    );
    assert_eq!(browser.post("/ui/releases/rel-2/publish", Some(&max), &format!("csrf={max_csrf}")).status, 422);
    let mia_csrf = browser.get("/ui/releases/rel-2", Some(&mia)).hidden("csrf");
    assert_eq!(
        browser.post("/ui/releases/rel-2/approve", Some(&mia), &format!("reason=fine&csrf={mia_csrf}")).status,
        303
    );
    assert_eq!(browser.post("/ui/releases/rel-2/publish", Some(&max), &format!("csrf={max_csrf}")).status, 403);
    assert!(!browser.get("/ui/inbox", Some(&max)).body.contains("rel-2"), "approved: nothing left for max");
    assert!(browser.get("/ui/inbox", Some(&olga)).body.contains("proposed by olga: to publish"));
    let ready = browser.get("/ui/releases/rel-2", Some(&olga));
    assert!(ready.body.contains("Publish to prod"), "{}", ready.body);
    assert_eq!(browser.post("/ui/releases/rel-2/publish", Some(&olga), &format!("csrf={csrf}")).status, 303);
    let listed = browser.get("/ui/releases", Some(&mia));
    assert!(listed.body.contains("This server runs in <strong>prod</strong>"), "{}", listed.body);
    assert!(
        listed.body.contains(
            "<td>prod</td><td><strong>loan</strong></td><td>1.0.0</td><td><a href=\"/ui/releases/rel-2\">rel-2</a></td>"
        ),
        "{}",
        listed.body
    );

    // Another version: prod takes it only from dev; its page shows the change and offers
    // the what-if of it over the stored runs.
    let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
    let lower = source.replace("param limit: Money[USD] = 5_000 USD", "param limit: Money[USD] = 400 USD");
    let installed = api.call("POST", "/v1/plans", Some(&tokens["olga"].1), Some(("text/plain", lower.as_bytes())), &[]);
    let candidate = installed.json()["plan"].as_str().unwrap().to_owned();
    let to_prod = format!("/ui/plans/{candidate}/propose");
    let skipped = browser.post(&to_prod, Some(&olga), &format!("environment=prod&reason=skip&csrf={csrf}"));
    assert_eq!(skipped.status, 422, "{}", skipped.body);
    assert!(skipped.body.contains("not live in dev"), "{}", skipped.body);
    browser.post(&to_prod, Some(&olga), &format!("environment=dev&reason=lower&csrf={csrf}"));
    browser.post("/ui/releases/rel-3/publish", Some(&olga), &format!("csrf={csrf}"));
    let sent = browser.post(&to_prod, Some(&olga), &format!("environment=prod&reason=lower&csrf={csrf}"));
    assert_eq!(sent.location.as_deref(), Some("/ui/releases/rel-4"), "{}", sent.body);
    let change = browser.get("/ui/releases/rel-4", Some(&max));
    for part in ["<strong>Material change</strong>", "param `limit`", "What if the stored runs had run on this version"]
    {
        assert!(change.body.contains(part), "`{part}` missing: {}", change.body);
    }
    assert!(change.body.contains(&format!("action=\"/ui/plans/{plan}/what-if\"")), "{}", change.body);

    // In prod, a start by flow runs the published version; the other one is refused.
    let start = |body: Json| {
        let body = body.to_string();
        api.call("POST", "/v1/runs", Some(&tokens["carl"].1), Some(("application/json", body.as_bytes())), &[])
    };
    let started = start(json!({"flow": "loan", "clock": AT, "inputs": {"request": request("P1", "300.00", "carl")}}));
    assert_status(&started, 201, "a start of the published version");
    let store = flow_runtime::store::SqliteStore::open(&dir.join(".flow/runs.db")).unwrap();
    let run = flow_runtime::store::Store::run(&store, started.json()["run"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(*run.plan, *plan);
    let refused =
        start(json!({"plan": candidate, "clock": AT, "inputs": {"request": request("P2", "300.00", "carl")}}));
    assert_status(&refused, 403, "an unpublished version");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// Each step of the release log is told to the webhook endpoints that take its kind: from
/// the outbox of the store that records it, under an id naming the log's entry, fitting the
/// API's description.
#[test]
fn release_steps_reach_the_webhooks() {
    let contract = Contract::load();
    let (dir, tokens) = serving("releasehooks", None);
    std::fs::write(dir.join("flow-governance.toml"), RELEASE_RULES).unwrap();
    let (_desk, port) = receiver(&dir, 0, "desk.jsonl");
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str(&format!(
        "\n[webhooks.desk]\nurl = \"http://127.0.0.1:{port}/flow\"\nsecret_env = \"FLOW_WEBHOOK_SECRET\"\n\
         events = [\"release.proposed\", \"release.approved\", \"release.rejected\", \"release.published\"]\n"
    ));
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start_with(&dir, &[("FLOW_WEBHOOK_SECRET", WEBHOOK_SECRET)]);
    let api = Api::new(&server, &contract);
    let token = |who: &str| tokens[who].1.clone();
    let plan = install(&api, &dir, &token("olga"));
    assert_status(
        &api.post("/v1/releases", &token("olga"), &json!({"plan": plan, "environment": "dev", "reason": "r"})),
        201,
        "dev",
    );
    assert_status(&api.post("/v1/releases/rel-1/publish", &token("olga"), &json!({})), 200, "published");
    let body = json!({"flow": "loan", "environment": "prod", "reason": "promote"});
    assert_status(&api.post("/v1/releases", &token("olga"), &body), 201, "prod");
    assert_status(&api.post("/v1/releases/rel-2/approve", &token("max"), &json!({"reason": "limits"})), 200, "max");
    assert_status(&api.post("/v1/releases/rel-2/reject", &token("mia"), &json!({"reason": "not now"})), 200, "mia");
    let notices = received(&dir.join("desk.jsonl"), |lines| lines.len() >= 5);
    notices.iter().for_each(|notice| contract.check_notice(notice));
    let told: Vec<(&str, &str, &str)> = notices
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["type"].as_str().unwrap(), n["data"]["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("releases.0", "release.proposed", "approved"),
            ("releases.1", "release.published", "live"),
            ("releases.2", "release.proposed", "proposed"),
            ("releases.3", "release.approved", "proposed"),
            ("releases.4", "release.rejected", "rejected"),
        ],
        "{notices:#?}"
    );
    let rejected = &notices[4]["data"];
    assert_eq!((rejected["principal"].clone(), rejected["reason"].clone()), (json!("mia"), json!("not now")));
    assert_eq!((rejected["approvals"].clone(), rejected["approvals_needed"].clone()), (json!(1), json!(2)));
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}
