//! Real headless Chromium driven through chromedriver (fantoccini), for end-to-end tests of
//! the web pages: one chromedriver per browser on a free port (killed on drop), a fresh
//! profile per browser, a fake camera and microphone, geolocation set through the DevTools
//! protocol, and screenshots saved under `artifacts/screenshots/` at the workspace root.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Where the Chromium binary is (override with `CHROMIUM`).
fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Where chromedriver is (override with `CHROMEDRIVER`).
fn chromedriver_path() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned())
}

/// The workspace root (the parent of the `tests` crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `artifacts/screenshots/` at the workspace root, created on demand.
pub fn screenshot_dir() -> PathBuf {
    workspace_root().join("artifacts").join("screenshots")
}

fn free_port() -> Result<u16> {
    // The port is released before chromedriver binds it; a collision in that instant only
    // makes the start-up check below fail with a clear message.
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(l.local_addr()?.port())
}

/// A chromedriver process on its own port; killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Start chromedriver on a free loopback port and wait until it answers `/status`.
    pub async fn start() -> Result<Driver> {
        let port = free_port()?;
        let log_dir = workspace_root().join("artifacts").join("chromedriver");
        std::fs::create_dir_all(&log_dir)?;
        let child = Command::new(chromedriver_path())
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log_dir.join(format!("chromedriver-{port}.log")).display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver_path()))?;
        let driver = Driver { child, port };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url())).send().await {
                if r.status().is_success() {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The driver's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver's /shutdown quits every session it opened (and so the Chromium behind
        // it), also when a failing test never closed its session. A blocking request is
        // fine here: it is loopback and answered at once.
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            use std::io::{Read, Write};
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!(
                "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.port
            );
            if stream.write_all(req.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Only this child, by its own handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What kind of browser to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// A desktop window, 1400×900.
    Desktop,
    /// A phone: 360×740 CSS pixels, touch, a mobile user agent.
    Phone,
}

/// One headless Chromium with its own chromedriver and profile.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    session_id: String,
    http: reqwest::Client,
    label: String,
    // Field order matters for drop: the client goes first, then the driver, then the profile.
    driver: Driver,
    _profile: tempfile::TempDir,
}

/// The mandatory Chromium flags for tests (see the issue): headless, fake media devices and
/// permission prompts, no background traffic, a fresh profile.
pub fn chromium_args(profile: &std::path::Path, device: Device) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    if device == Device::Desktop {
        args.push("--window-size=1400,900".to_owned());
    }
    args
}

impl Browser {
    /// Start chromedriver and a fresh Chromium session. `label` prefixes log messages.
    pub async fn launch(label: &str, device: Device) -> Result<Browser> {
        Self::launch_with(label, device, &[]).await
    }

    /// Like [`Browser::launch`], with extra Chromium flags after the mandatory ones.
    pub async fn launch_with(label: &str, device: Device, extra: &[&str]) -> Result<Browser> {
        let driver = Driver::start().await?;
        let profile = tempfile::tempdir().context("creating a Chromium profile directory")?;
        let mut args = chromium_args(profile.path(), device);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut chrome = json!({
            "binary": chromium_path(),
            "args": args,
        });
        if device == Device::Phone {
            chrome["mobileEmulation"] = json!({
                "deviceMetrics": {"width": 360, "height": 740, "pixelRatio": 2.0, "touch": true, "mobile": true},
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36",
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), chrome);
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .with_context(|| format!("{label}: opening a Chromium session"))?;
        let session_id = client
            .session_id()
            .await?
            .ok_or_else(|| anyhow!("{label}: chromedriver returned no session id"))?;
        Ok(Browser {
            client,
            session_id,
            http: reqwest::Client::new(),
            label: label.to_owned(),
            driver,
            _profile: profile,
        })
    }

    /// Run a DevTools protocol command through chromedriver's `goog/cdp/execute`.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        let url = format!(
            "{}/session/{}/goog/cdp/execute",
            self.driver.url(),
            self.session_id
        );
        let res = self
            .http
            .post(url)
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            bail!("{}: CDP {cmd} failed: {status} {body}", self.label);
        }
        Ok(body["value"].clone())
    }

    /// Grant geolocation to `origin` and pin the position (what a phone's GPS would report).
    pub async fn set_geolocation(
        &self,
        origin: &str,
        lat: f64,
        lon: f64,
        accuracy_m: f64,
    ) -> Result<()> {
        self.cdp(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["geolocation"]}),
        )
        .await?;
        self.cdp(
            "Emulation.setGeolocationOverride",
            json!({"latitude": lat, "longitude": lon, "accuracy": accuracy_m}),
        )
        .await?;
        Ok(())
    }

    /// Navigate.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("{}: goto {url}", self.label))
    }

    /// Run a script (`return ...;`) and give back its value.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.client
            .execute(script, vec![])
            .await
            .with_context(|| format!("{}: script failed: {script}", self.label))
    }

    /// Run an asynchronous script: it receives a callback as its last argument
    /// (`const done = arguments[arguments.length - 1]`) and its value is what it passes on.
    pub async fn js_async(&self, script: &str) -> Result<Value> {
        self.client
            .execute_async(script, vec![])
            .await
            .with_context(|| format!("{}: async script failed: {script}", self.label))
    }

    /// Wait until a script returns `true`, polling every 100 ms.
    pub async fn wait_true(&self, what: &str, script: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.client.execute(script, vec![]).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(v) => v,
                Err(e) => json!(e.to_string()),
            };
            if Instant::now() > deadline {
                let logs = self.console_logs().await.unwrap_or_default();
                bail!(
                    "{}: timed out after {:?} waiting for {what}; last value {last}\nbrowser console:\n{}",
                    self.label,
                    timeout,
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the element matching a CSS selector (waiting for it to exist).
    pub async fn click(&self, css: &str) -> Result<()> {
        let el = self.wait_for(css).await?;
        el.click()
            .await
            .with_context(|| format!("{}: click {css}", self.label))
    }

    /// Wait up to 20 s for an element matching a CSS selector.
    pub async fn wait_for(&self, css: &str) -> Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("{}: waiting for {css}", self.label))
    }

    /// Type into the element matching a CSS selector (clearing it first).
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let el = self.wait_for(css).await?;
        el.clear().await?;
        el.send_keys(text)
            .await
            .with_context(|| format!("{}: typing into {css}", self.label))
    }

    /// Save a PNG of the viewport as `artifacts/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// The browser console since the last call (chromedriver's log endpoint).
    pub async fn console_logs(&self) -> Result<Vec<String>> {
        let url = format!("{}/session/{}/se/log", self.driver.url(), self.session_id);
        let res = self
            .http
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await?;
        let body: Value = res.json().await?;
        Ok(body["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        format!(
                            "{} {}",
                            l["level"].as_str().unwrap_or(""),
                            l["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// End the session; the driver and the profile go with the value.
    pub async fn close(self) -> Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}
