//! The web pages in a real browser: headless Chromium driven through its WebDriver
//! (`chromedriver`) against a real `flowc serve`, as the people of a flow use them — a
//! requester's run waits; a manager signs in, finds it in the inbox, decides it with a
//! reason and an edit; a second manager completes the approval; an auditor opens the run,
//! sees the path in the graph and downloads the evidence, which `flowc verify` accepts; a
//! principal without `view pii` sees redaction and no value; a form whose CSRF token was
//! changed is refused, and a page asked for without a session sends to the sign-in; a
//! steward reads a version's governance, runs a what-if and sees the transitions, and opens
//! the dashboard. A screenshot of each page is written to `target/web-screenshots/`
//! (printed), for a person to look at.
//!
//! Skipped (and said so) without `chromium` and `chromedriver`, except in CI.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::{AT, Api, Contract, Server, assert_status, install, request, serving};

/// `chromedriver` on a port of its own, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    /// The driver and every browser it started (its process group): a test that fails
    /// leaves no Chromium behind.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Option<Driver> {
    let found = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .any(|dir| dir.join(name).is_file())
    };
    if !(found("chromedriver") && found("chromium")) {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("Chromium and its WebDriver are needed in CI (`chromium`, `chromium-driver`)");
        }
        crate::postgres::skipped("`chromium` and `chromedriver` are not installed: the browser test");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let child = Command::new("chromedriver")
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver { child, port };
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "chromedriver did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(driver)
}

/// A headless Chromium of its own (a fresh profile: no cookies of another test), saving
/// what it downloads in `downloads`.
async fn browser(driver: &Driver, downloads: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
            },
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap_or_else(|e| panic!("no browser session: {e}"))
}

/// Where the screenshots go: `target/web-screenshots/`, beside the build.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

async fn page(client: &Client) -> String {
    client.source().await.unwrap()
}

/// The page, once the browser has gone to a path ending in `suffix` and the page holds
/// `text` (a click's navigation ends after the click returns).
async fn arrive(client: &Client, suffix: &str, text: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let here = client.current_url().await.unwrap();
        let source = page(client).await;
        if here.path().ends_with(suffix) && source.contains(text) {
            return source;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            panic!("the browser is at {here}, not at …{suffix} with `{text}`: {source}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Signs in through the form, typing the token and pressing the button; the inbox it lands
/// on (waited for: the next `goto` must not race the sign-in's own navigation).
async fn sign_in(client: &Client, base: &str, token: &str) -> String {
    client.delete_all_cookies().await.unwrap();
    client.goto(&format!("{base}/ui/sign-in")).await.unwrap();
    client.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    client.find(Locator::Css("form.stacked button[type=submit]")).await.unwrap().click().await.unwrap();
    arrive(client, "/ui/inbox", "<h1>Waiting for you</h1>").await
}

#[test]
fn people_do_their_jobs_in_a_real_browser() {
    let Some(driver) = driver() else { return };
    let contract = Contract::load();
    let (dir, made) = serving("browser", None);
    let extra = super::tokens(&dir, &["aud", "mia"]);
    let token = |who: &str| made.get(who).or(extra.get(who)).map(|(_, t)| t.clone()).unwrap();
    // The flow's steward may replay its runs here: what-ifs are theirs to run.
    let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
    std::fs::write(dir.join("loan.flow"), source.replace("replay by auditor", "replay by auditor, officer")).unwrap();
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let plan = install(&api, &dir, &token("olga"));
    // A requester's run that waits for a manager's review, then for two managers.
    let mut inputs = request("B1", "7000.00", "carl");
    inputs["note"] = json!("<b>private</b> note");
    let body = json!({"plan": plan, "clock": AT, "inputs": {"request": inputs}}).to_string();
    let started = api.call("POST", "/v1/runs", Some(&token("carl")), Some(("application/json", body.as_bytes())), &[]);
    assert_status(&started, 201, "a start");
    let run = started.json()["run"].as_str().unwrap().to_owned();
    // And one that an automatic approval completed: a lower limit would send it to a manager.
    let body = json!({"plan": plan, "clock": AT, "inputs": {"request": request("B2", "500.00", "carl")}}).to_string();
    let small = api.call("POST", "/v1/runs", Some(&token("carl")), Some(("application/json", body.as_bytes())), &[]);
    assert_status(&small, 201, "a start");
    let small = small.json()["run"].as_str().unwrap().to_owned();
    let base = server.base.clone();
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver, &downloads).await;
        // Not signed in: the sign-in page.
        client.goto(&format!("{base}/ui/inbox")).await.unwrap();
        arrive(&client, "/ui/sign-in", "API token").await;
        shot(&client, "1-sign-in").await;

        // The manager finds the run in the inbox and decides it with a reason and an edit.
        let inbox = sign_in(&client, &base, &token("max")).await;
        assert!(inbox.contains(&run) && inbox.contains("check"), "{inbox}");
        shot(&client, "2-inbox").await;
        client.find(Locator::Css(&format!("a[href$='{run}/steps/check']"))).await.unwrap().click().await.unwrap();
        arrive(&client, "/steps/check", "Decide review").await;
        shot(&client, "3-decide").await;
        client.find(Locator::Css("input[name=outcome][value=approve]")).await.unwrap().click().await.unwrap();
        client.find(Locator::Css("#reason")).await.unwrap().select_by_value("doubtful").await.unwrap();
        client.find(Locator::Css("#basis")).await.unwrap().send_keys("Checked the contract").await.unwrap();
        client
            .find(Locator::Css("select[name='edit.score.tier']"))
            .await
            .unwrap()
            .select_by_value("medium")
            .await
            .unwrap();
        client.find(Locator::Css("form.decide button[type=submit]")).await.unwrap().click().await.unwrap();
        let after = arrive(&client, &format!("/ui/runs/{run}"), "check decided by max").await;
        // The manager may not see the note: redacted, no value.
        assert!(!after.contains("private") && after.contains("redacted"), "{after}");
        shot(&client, "4-run-for-the-manager").await;

        // A form whose CSRF token was changed (as another site would have to) is refused.
        client.goto(&format!("{base}/ui/runs/{run}/steps/sign")).await.unwrap();
        arrive(&client, "/steps/sign", "Decide approval").await;
        client
            .execute("document.querySelector('form.decide input[name=csrf]').value = 'forged'; return null;", vec![])
            .await
            .unwrap();
        client.find(Locator::Css("input[name=outcome][value=approve]")).await.unwrap().click().await.unwrap();
        client.find(Locator::Css("#reason")).await.unwrap().send_keys("ok").await.unwrap();
        client.find(Locator::Css("form.decide button[type=submit]")).await.unwrap().click().await.unwrap();
        arrive(&client, "/steps/sign", "does not belong to this session").await;
        shot(&client, "5-forged-form").await;

        // Medium tier: two managers sign; max first, then mia completes the approval.
        for who in ["max", "mia"] {
            let _ = sign_in(&client, &base, &token(who)).await;
            client.goto(&format!("{base}/ui/runs/{run}/steps/sign")).await.unwrap();
            arrive(&client, "/steps/sign", "Decide approval").await;
            client.find(Locator::Css("input[name=outcome][value=approve]")).await.unwrap().click().await.unwrap();
            client.find(Locator::Css("#reason")).await.unwrap().send_keys("ok").await.unwrap();
            client.find(Locator::Css("form.decide button[type=submit]")).await.unwrap().click().await.unwrap();
            // Wait for the run's page: completed once the second manager has signed.
            let signed = if who == "mia" { "<strong>completed</strong>" } else { "What happened" };
            arrive(&client, &format!("/ui/runs/{run}"), signed).await;
        }
        let done = page(&client).await;
        assert!(done.contains("approved by max, mia"), "both managers signed: {done}");

        // The auditor reads the run: the path drawn, the note as text, the evidence link.
        let inbox = sign_in(&client, &base, &token("aud")).await;
        assert!(inbox.contains("Nothing waits for you"), "{inbox}");
        client.goto(&format!("{base}/ui/runs/{run}")).await.unwrap();
        let audited = arrive(&client, &format!("/ui/runs/{run}"), "What happened").await;
        for part in [
            "node review ran",
            "node approval ran",
            "node action ran",
            "&lt;b&gt;private&lt;/b&gt; note",
            "The evidence verifies: ",
        ] {
            assert!(audited.contains(part), "`{part}` missing: {audited}");
        }
        let link = client.find(Locator::Css("a[download]")).await.unwrap();
        assert!(link.attr("href").await.unwrap().unwrap().ends_with(&format!("{run}/evidence")));
        shot(&client, "6-run-for-the-auditor").await;
        // The evidence, downloaded by the browser.
        link.click().await.unwrap();
        let file = downloads.join(format!("{run}.evidence.json"));
        let started = std::time::Instant::now();
        while !file.is_file() {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "no download in {}", downloads.display());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        // Without a session (its cookie gone), a run's page sends to the sign-in.
        client.delete_all_cookies().await.unwrap();
        client.goto(&format!("{base}/ui/runs/{run}")).await.unwrap();
        arrive(&client, "/ui/sign-in", "API token").await;

        // The steward: the flow's version, what stands before what; a what-if with a lower
        // limit, its transitions, the run that changes; the dashboard.
        let _ = sign_in(&client, &base, &token("olga")).await;
        client.find(Locator::LinkText("Flows")).await.unwrap().click().await.unwrap();
        arrive(&client, "/ui/flows", "1.0.0").await;
        client.find(Locator::LinkText("1.0.0")).await.unwrap().click().await.unwrap();
        arrive(&client, &format!("/ui/plans/{plan}"), "What stands before what").await;
        shot(&client, "7-flow-version").await;
        client.find(Locator::Css("#param-limit")).await.unwrap().send_keys("400 USD").await.unwrap();
        client.find(Locator::Css("section[aria-label='What if'] button")).await.unwrap().click().await.unwrap();
        let job = arrive(&client, "", "runs replayed").await;
        assert!(job.contains("completed → pending: 1"), "{job}");
        shot(&client, "8-what-if").await;
        client.find(Locator::XPath("//a[contains(., 'completed → pending')]")).await.unwrap().click().await.unwrap();
        let drilled = arrive(&client, "", "Runs that go from completed to pending").await;
        assert!(drilled.contains(&format!("/ui/runs/{small}")) && !drilled.contains(&format!("/ui/runs/{run}\"")));
        client.find(Locator::LinkText("Dashboard")).await.unwrap().click().await.unwrap();
        arrive(&client, "/ui/dashboard", "runs started in these 30 days").await;
        shot(&client, "9-dashboard").await;
        // On a tablet held upright: the run's page and the inbox fit its width.
        client.set_window_size(820, 1180).await.unwrap();
        client.goto(&format!("{base}/ui/runs/{run}")).await.unwrap();
        arrive(&client, &format!("/ui/runs/{run}"), "What happened").await;
        let width: serde_json::Value =
            client.execute("return document.documentElement.scrollWidth;", vec![]).await.unwrap();
        assert!(width.as_u64().is_some_and(|w| w <= 820), "the page is wider than the tablet: {width}");
        shot(&client, "11-run-on-a-tablet").await;
        client.close().await.unwrap();
    });
    let file = downloads.join(format!("{run}.evidence.json"));
    let verified = super::flowc(&dir, &["verify", &file.display().to_string()]);
    assert!(verified.status.success(), "the downloaded evidence verifies: {}", super::text(&verified));
    eprintln!("screenshots of the pages: {}", shots().display());
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// Signing in through the deployment's OpenID Connect issuer in a real browser: the button
/// on the sign-in page, the issuer (the test's, which signs `mia` in at once), back to the
/// server with a code, and on to the inbox with a session — the browser sends the
/// `SameSite=Strict` session cookie along the navigation the server's page begins, after
/// arriving from the issuer's site.
#[test]
fn signing_in_through_the_issuer_in_a_real_browser() {
    let Some(driver) = driver() else { return };
    let dir = crate::runs::deployment_on("browser_oidc", None);
    let (_, jwks) = super::oidc::issuer_key();
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let issuer = std::sync::Arc::new(std::sync::Mutex::new(super::oidc::Issuer::default()));
    issuer.lock().unwrap().login_as = Some("mia".to_owned());
    // The issuer on another site than the server's (`localhost`, not `127.0.0.1`), as an
    // issuer is: the browser comes back to the server from another site.
    let token_at = super::oidc::issuer(issuer.clone());
    let at = token_at.replace("127.0.0.1", "localhost");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str(&format!(
        "\n[serve.oidc]\nissuer = \"https://id.example.test\"\naudience = \"flow-api\"\njwks = \"jwks.json\"\n\
         authorization_endpoint = \"{at}/authorize\"\ntoken_endpoint = \"{token_at}/token\"\nclient_id = \"flow-web\"\n\
         redirect_uri = \"http://127.0.0.1:{port}/ui/sign-in/oidc/callback\"\n"
    ));
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start_listening(&dir, &[], &format!("127.0.0.1:{port}"));
    let base = server.base.clone();
    let downloads = dir.join("downloads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver, &downloads).await;
        client.goto(&format!("{base}/ui/sign-in")).await.unwrap();
        arrive(&client, "/ui/sign-in", "Sign in through https://id.example.test").await;
        shot(&client, "10-sign-in-through-the-issuer").await;
        client.find(Locator::Css("a.button")).await.unwrap().click().await.unwrap();
        arrive(&client, "/authorize", "Continue").await;
        client.find(Locator::Css("#continue")).await.unwrap().click().await.unwrap();
        let inbox = arrive(&client, "/ui/inbox", "<h1>Waiting for you</h1>").await;
        assert!(inbox.contains("<span>mia</span>"), "{inbox}");
        client.close().await.unwrap();
    });
    let exchanged = issuer.lock().unwrap().seen.len();
    assert_eq!(exchanged, 1, "one code exchanged");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// Releases in a real browser: the steward proposes the version from its page and publishes
/// it alone in dev, promotes it to prod; each approver finds it in the inbox, reads what it
/// changes and approves it with a reason; the steward publishes it.
#[test]
fn a_release_is_proposed_and_approved_in_a_real_browser() {
    let Some(driver) = driver() else { return };
    let contract = Contract::load();
    let (dir, made) = serving("browser-releases", None);
    std::fs::write(dir.join("flow-governance.toml"), super::RELEASE_RULES).unwrap();
    let token = |who: &str| made[who].1.clone();
    let server = Server::start(&dir);
    let api = Api::new(&server, &contract);
    let plan = install(&api, &dir, &token("olga"));
    let base = server.base.clone();
    let downloads = dir.join("downloads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver, &downloads).await;
        let propose = |environment: &'static str, reason: &'static str| {
            let client = client.clone();
            let base = base.clone();
            let plan = plan.clone();
            async move {
                client.goto(&format!("{base}/ui/plans/{plan}")).await.unwrap();
                arrive(&client, &format!("/ui/plans/{plan}"), "Propose this version").await;
                client.find(Locator::Css("#environment")).await.unwrap().select_by_value(environment).await.unwrap();
                client.find(Locator::Css("#propose-reason")).await.unwrap().send_keys(reason).await.unwrap();
                client.find(Locator::Css("section[aria-label='Propose'] button")).await.unwrap().click().await.unwrap();
            }
        };
        let _ = sign_in(&client, &base, &token("olga")).await;
        propose("dev", "First version").await;
        arrive(&client, "/ui/releases/rel-1", "its author may publish it alone").await;
        client.find(Locator::XPath("//button[contains(., 'Publish to dev')]")).await.unwrap().click().await.unwrap();
        arrive(&client, "/ui/releases/rel-1", "Published by <strong>olga</strong>").await;
        propose("prod", "Promote the dev version").await;
        let proposed = arrive(&client, "/ui/releases/rel-2", "Promoted from").await;
        assert!(!proposed.contains("/rel-2/approve"), "the author is offered no approval: {proposed}");
        shot(&client, "12-release-proposed").await;

        for (who, reason) in [("max", "Limits as agreed"), ("mia", "Checked the rows")] {
            let inbox = sign_in(&client, &base, &token(who)).await;
            assert!(inbox.contains("to approve"), "{inbox}");
            client.find(Locator::LinkText("rel-2")).await.unwrap().click().await.unwrap();
            arrive(&client, "/ui/releases/rel-2", "Approvals").await;
            client.find(Locator::Css("#approve-reason")).await.unwrap().send_keys(reason).await.unwrap();
            client.find(Locator::XPath("//button[.='Approve']")).await.unwrap().click().await.unwrap();
            arrive(&client, "/ui/releases/rel-2", &format!("Approved by <strong>{who}</strong>")).await;
        }
        let _ = sign_in(&client, &base, &token("olga")).await;
        client.goto(&format!("{base}/ui/releases/rel-2")).await.unwrap();
        arrive(&client, "/ui/releases/rel-2", "Publish to prod").await;
        client.find(Locator::XPath("//button[contains(., 'Publish to prod')]")).await.unwrap().click().await.unwrap();
        let live = arrive(&client, "/ui/releases/rel-2", "Published by <strong>olga</strong>").await;
        assert!(live.contains(">live</span>"), "{live}");
        shot(&client, "13-release-live").await;
        client.find(Locator::LinkText("Releases")).await.unwrap().click().await.unwrap();
        arrive(&client, "/ui/releases", "Every release, the newest first").await;
        shot(&client, "14-releases").await;
        client.close().await.unwrap();
    });
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}
