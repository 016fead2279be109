//! GraphiQL, the GraphQL door's in-browser IDE (`GET /graphiql`), as a person uses it: headless
//! Chromium (Debian's `/usr/bin/chromium`, driven through its `/usr/bin/chromedriver`, which
//! `infra/local/stack.sh install` installs) opens the page with the caller's token in its
//! fragment, runs a query for the caller's wallets and shows the answer; and loads nothing from
//! outside the local stack (the machine may have no internet: GraphiQL's assets come from the
//! local front, `/graphiql/assets`).

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use paysaga_tests::{Stack, eventually, repo_root, unique};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long chromedriver, the page and the query each may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// The query the test types into GraphiQL.
const MY_WALLETS: &str = "{\n  viewer {\n    wallets {\n      id\n      available {\n        \
                          minorUnits\n        currency\n      }\n    }\n  }\n}\n";

/// A chromedriver this test started, on a free loopback port, its output in
/// `.local/logs/chromedriver.log`. Dropping it kills it and every process it started (the
/// browser's among them): its process group.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until its `/status` says it is ready.
    async fn start(http: &reqwest::Client) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = repo_root().join(".local/logs/chromedriver.log");
        if let Some(logs) = log.parent() {
            std::fs::create_dir_all(logs)?;
        }
        let output = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {CHROMEDRIVER} (infra/local/stack.sh install installs it)")
            })?;
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        driver
            .wait_until_ready(http)
            .await
            .with_context(|| format!("chromedriver's output: {}", driver.output()))?;
        Ok(driver)
    }

    async fn wait_until_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let status = format!("{}/status", self.url);
        let child = &mut self.child;
        eventually(PATIENCE, "chromedriver to answer ready", || {
            let exited = child.try_wait();
            let request = http.get(&status).timeout(Duration::from_secs(2)).send();
            async move {
                if let Some(exit) = exited? {
                    bail!("chromedriver exited: {exit}");
                }
                let Ok(response) = request.await else {
                    return Ok(None);
                };
                let answer: Value = response.json().await?;
                Ok((answer["value"]["ready"] == true).then_some(()))
            }
        })
        .await
    }

    /// What chromedriver has written so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|error| format!("cannot read {}: {error}", self.log.display()))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The child is not reaped (its id is None once it is), so its pid still names the
        // group it leads (process_group(0)), which holds the browser it started.
        if let Some(group) = self
            .child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
        {
            // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names the
            // process group of our own child.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A WebDriver session in headless Chromium with a fresh profile in `profile`.
async fn browser(driver: &ChromeDriver, profile: &Path) -> anyhow::Result<Client> {
    // The connector's rustls needs a process-wide provider: this binary links both of rustls'
    // own, so it cannot choose. Installed already is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let arguments = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let mut capabilities = Capabilities::new();
    capabilities.insert("browserName".to_owned(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({"binary": CHROMIUM, "args": arguments}),
    );
    let client = ClientBuilder::rustls()?
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .with_context(|| {
            format!(
                "a Chromium session through chromedriver; its output: {}",
                driver.output()
            )
        })?;
    Ok(client)
}

/// How long the page took to render and to answer, and how many resources it loaded.
struct Timings {
    rendered: Duration,
    answered: Duration,
    resources: usize,
}

/// Opens `page` (GraphiQL, a caller's token in its fragment), runs [`MY_WALLETS`] and waits
/// until the result pane shows an answer, which must be `wallet` holding `balance`; then checks
/// where the page loaded everything from.
async fn run_the_query(
    client: &Client,
    page: &str,
    wallet: &str,
    balance: u64,
) -> anyhow::Result<Timings> {
    let started = Instant::now();
    client.goto(page).await?;
    let execute = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(".graphiql-execute-button"))
        .await
        .context("GraphiQL's execute button never showed")?;
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(".graphiql-query-editor .CodeMirror"))
        .await
        .context("GraphiQL's query editor never showed")?;
    let rendered = started.elapsed();

    // GraphiQL 3.8's editors are CodeMirror 5 instances, each on its wrapper element.
    let typed = client
        .execute(
            "const editor = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
             editor.setValue(arguments[0]);
             return editor.getValue();",
            vec![json!(MY_WALLETS)],
        )
        .await?;
    ensure!(typed == MY_WALLETS, "the editor holds {typed}");
    let clicked = Instant::now();
    execute.click().await?;
    let expected = json!({"data": {"viewer": {"wallets": [
        {"id": wallet, "available": {"minorUnits": balance, "currency": "EUR"}}
    ]}}});
    // The first answer the result pane shows (it is empty until one comes).
    let shown = eventually(PATIENCE, "GraphiQL to show an answer", || async {
        let text = client
            .execute(
                "const result = document.querySelector('.result-window .CodeMirror');
                 return result ? result.CodeMirror.getValue() : '';",
                vec![],
            )
            .await?;
        Ok(serde_json::from_str::<Value>(text.as_str().unwrap_or_default()).ok())
    })
    .await?;
    let answered = clicked.elapsed();
    ensure!(shown == expected, "GraphiQL shows {shown}, not {expected}");

    // Everything the page loaded or names came from the local stack: its assets, the
    // introspection and the query.
    let loaded = client
        .execute(
            "return performance.getEntriesByType('resource').map(entry => entry.name)
               .concat(Array.from(document.querySelectorAll('script[src], link[href], img[src], iframe[src]'))
                 .map(element => element.src || element.href))
               .concat([window.location.href]);",
            vec![],
        )
        .await?;
    let loaded: Vec<String> = serde_json::from_value(loaded)?;
    let elsewhere: Vec<_> = loaded
        .iter()
        .filter(|url| !(url.starts_with("http://127.0.0.1:") || url.starts_with("data:")))
        .collect();
    ensure!(
        elsewhere.is_empty(),
        "loaded from outside 127.0.0.1: {elsewhere:?}"
    );
    for needed in [
        "/graphiql/assets/graphiql@",
        "/graphiql/assets/react@",
        "/graphql",
    ] {
        ensure!(
            loaded.iter().any(|url| url.contains(needed)),
            "nothing from {needed} among {loaded:?}"
        );
    }
    Ok(Timings {
        rendered,
        answered,
        resources: loaded.len(),
    })
}

/// After a failure: a screenshot in `.local/logs/graphiql-failure.png`, and the page's text.
async fn what_the_page_showed(client: &Client) -> String {
    let screenshot = repo_root().join(".local/logs/graphiql-failure.png");
    let saved = match client.screenshot().await {
        Ok(png) => std::fs::write(&screenshot, png)
            .map(|()| format!("screenshot in {}", screenshot.display()))
            .unwrap_or_else(|error| format!("no screenshot ({error})")),
        Err(error) => format!("no screenshot ({error})"),
    };
    let text = client
        .execute(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .await
        .map(|text| text.as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|error| format!("(cannot read it: {error})"));
    format!("GraphiQL as it stood: {saved}; the page's text:\n{text}")
}

#[tokio::test]
#[ignore = "needs the local stack: run `make test`"]
async fn graphiql_in_a_browser_shows_the_callers_wallet() -> anyhow::Result<()> {
    let mut stack = Stack::connect().await?;
    stack.act_as(&format!("graphiql-{}", unique()))?;
    let wallet = format!("wal_graphiql_{}", unique());
    stack
        .funded_wallet(&wallet, "EUR", 4_321, &format!("graphiql-{wallet}"))
        .await?;

    let started = Instant::now();
    let driver = ChromeDriver::start(&stack.http).await?;
    let ready = started.elapsed();
    let profile = tempfile::tempdir()?;
    let client = browser(&driver, profile.path()).await?;
    let page = format!("{}/graphiql#bearer={}", stack.api_url, stack.token);
    let outcome = match run_the_query(&client, &page, &wallet, 4_321).await {
        Ok(timings) => Ok(timings),
        Err(error) => Err(error.context(what_the_page_showed(&client).await)),
    };
    // Ends the session, and with it the browser (the driver's drop would kill it otherwise).
    let closed = client.close().await;
    let timings = outcome?;
    closed?;
    println!(
        "graphiql: chromedriver ready in {:.1} s; GraphiQL rendered in {:.1} s, answered the \
         viewer's wallets {:.0} ms after Execute; {} resources, all from 127.0.0.1",
        ready.as_secs_f64(),
        timings.rendered.as_secs_f64(),
        timings.answered.as_secs_f64() * 1_000.0,
        timings.resources
    );
    Ok(())
}
