//! Real browsers driven through WebDriver (fantoccini), for end-to-end tests of the web
//! pages: headless Chromium through chromedriver (geolocation set through the DevTools
//! protocol), Firefox ESR through geckodriver inside a network namespace of the test's own
//! (`crate::netns`), and WebKitGTK's MiniBrowser through WebKitWebDriver on Xvfb. One driver
//! per browser (stopped on drop, with its browser), a fresh profile per browser, a fake
//! camera and microphone, and screenshots saved under `artifacts/screenshots/` at the
//! workspace root.

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

/// Where Firefox ESR is (override with `FIREFOX`).
fn firefox_path() -> String {
    std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".to_owned())
}

/// Where geckodriver is: `GECKODRIVER`, else the copy `scripts/install-deps test` builds into
/// `.cache/`, else `geckodriver` on the PATH.
fn geckodriver_path() -> String {
    if let Ok(p) = std::env::var("GECKODRIVER") {
        return p;
    }
    let cached = workspace_root().join(".cache/geckodriver-0.37.1/bin/geckodriver");
    if cached.exists() {
        return cached.display().to_string();
    }
    "geckodriver".to_owned()
}

/// Where WebKitGTK's WebDriver is (override with `WEBKITDRIVER`).
fn webkitdriver_path() -> String {
    std::env::var("WEBKITDRIVER").unwrap_or_else(|_| "/usr/bin/WebKitWebDriver".to_owned())
}

/// Where WebKitGTK's MiniBrowser is (override with `MINIBROWSER`).
fn minibrowser_path() -> String {
    std::env::var("MINIBROWSER")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser".to_owned())
}

/// Where Xvfb is (override with `XVFB`).
fn xvfb_path() -> String {
    std::env::var("XVFB").unwrap_or_else(|_| "/usr/bin/Xvfb".to_owned())
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

/// How a driver is told to quit when dropped.
enum Quit {
    /// chromedriver's `/shutdown` ends every session it opened.
    Shutdown,
    /// geckodriver and WebKitWebDriver serve one session and have no `/shutdown`: the session
    /// is deleted (the browser quits and its profile goes), then the driver is killed.
    DeleteSession,
}

/// A WebDriver server process (chromedriver, geckodriver, WebKitWebDriver) on its own port;
/// stopped when dropped, together with its browser.
pub struct Driver {
    child: Child,
    host: String,
    port: u16,
    quit: Quit,
    /// The session to delete on drop (set once a session is open).
    session: Option<String>,
    /// Processes that serve this driver (Xvfb for WebKit); killed after it, by their handles.
    helpers: Vec<Child>,
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
        Driver::wait_ready(child, "127.0.0.1".into(), port, Quit::Shutdown, vec![]).await
    }

    async fn wait_ready(
        child: Child,
        host: String,
        port: u16,
        quit: Quit,
        helpers: Vec<Child>,
    ) -> Result<Driver> {
        let mut driver = Driver {
            child,
            host,
            port,
            quit,
            session: None,
            helpers,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url())).send().await {
                if r.status().is_success() {
                    return Ok(driver);
                }
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                bail!(
                    "the WebDriver server on {}:{port} exited: {status}",
                    driver.host
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the WebDriver server did not answer on {}:{port} within 20 s",
                    driver.host
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The driver's base URL.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// One blocking HTTP request to the driver (used on drop, where there is no runtime to
    /// await on); the answer is read and dropped.
    fn blocking_request(&self, method: &str, path: &str) {
        use std::io::{Read, Write};
        let Ok(addr) = format!("{}:{}", self.host, self.port).parse::<std::net::SocketAddr>()
        else {
            return;
        };
        if let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        {
            // Deleting a session waits for the browser to quit: a few seconds at most.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.host, self.port
            );
            if stream.write_all(req.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink);
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver's /shutdown quits every session it opened (and so the Chromium behind
        // it), also when a failing test never closed its session; the other drivers delete
        // their one session. Blocking requests are fine here: the driver is on this machine.
        match self.quit {
            Quit::Shutdown => self.blocking_request("GET", "/shutdown"),
            Quit::DeleteSession => {
                if let Some(id) = self.session.take() {
                    self.blocking_request("DELETE", &format!("/session/{id}"));
                }
                // Neither geckodriver nor WebKitWebDriver exits by itself.
                let _ = self.child.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !exited {
            // Only this child, by its own handle.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for h in &mut self.helpers {
            let _ = h.kill();
            let _ = h.wait();
        }
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

/// The browser engine behind a [`Browser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian's Chromium through chromedriver.
    Chromium,
    /// Debian's Firefox ESR through geckodriver, in a network namespace.
    Firefox,
    /// Debian's WebKitGTK MiniBrowser through WebKitWebDriver, on Xvfb.
    WebKit,
}

/// How to start a Firefox (see [`Browser::launch_firefox`]).
pub struct FirefoxOptions<'a> {
    /// The test's namespace: geckodriver and Firefox run inside it.
    pub ns: &'a crate::netns::NetNs,
    /// geckodriver's port on the namespace's address (one per Firefox).
    pub port: u16,
    /// The server's base URL (on the namespace's host end).
    pub server: &'a str,
    /// Window size.
    pub device: Device,
    /// The position Firefox reports: latitude, longitude, accuracy in metres.
    pub geo: Option<(f64, f64, f64)>,
    /// The time zone (`TZ`) Firefox runs in, e.g. `Europe/Moscow`.
    pub tz: &'a str,
    /// Look like Firefox on an Android phone to the page (user agent, ARM platform, touch,
    /// a phone GPU's WebGL renderer), so that the trust verdict is the one a real phone gets
    /// rather than "emulator"; `navigator.webdriver` stays true under geckodriver whatever
    /// the prefs say: see [`Browser::hide_webdriver`].
    pub real_phone: bool,
}

/// Firefox for Android's user agent (the version of Debian's ESR).
pub const FIREFOX_ANDROID_UA: &str =
    "Mozilla/5.0 (Android 14; Mobile; rv:153.0) Gecko/153.0 Firefox/153.0";

/// Percent-encode everything but unreserved characters (for a data: URL).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Start Xvfb on a display it chooses itself (`-displayfd`), so parallel tests never race for
/// a display number. Gives the process and the `DISPLAY` value.
async fn start_xvfb() -> Result<(Child, String)> {
    use std::io::BufRead;
    let mut child = Command::new(xvfb_path())
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1400x900x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", xvfb_path()))?;
    let stdout = child.stdout.take().context("Xvfb's stdout")?;
    // Xvfb writes the display number once it accepts clients.
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await??;
    let n = line.trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        let _ = child.kill();
        let _ = child.wait();
        bail!("Xvfb did not report a display (got {line:?})");
    }
    Ok((child, format!(":{n}")))
}

/// One headless browser with its own driver and profile.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    session_id: String,
    http: reqwest::Client,
    label: String,
    engine: Engine,
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
            engine: Engine::Chromium,
            driver,
            _profile: profile,
        })
    }

    /// Start geckodriver inside the test's network namespace `ns` (listening on the
    /// namespace's own address, on `port`: each Firefox needs its own) and a fresh headless
    /// Firefox ESR session: fake camera and microphone without prompts, host ICE candidates
    /// in the clear, the server's origin (`server`, on the host end of the veth pair) treated
    /// as a secure context as an HTTPS deployment would be, the position `geo` (lat, lon,
    /// accuracy in metres) from Firefox's own network location provider, and the time zone
    /// `tz`.
    pub async fn launch_firefox(label: &str, opts: FirefoxOptions<'_>) -> Result<Browser> {
        let ns = opts.ns;
        let log_dir = workspace_root().join("artifacts").join("geckodriver");
        std::fs::create_dir_all(&log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("{}-{label}.log", ns.name)))?;
        let child = ns
            .command(&geckodriver_path())
            .args([
                "--host",
                &ns.ns_ip.to_string(),
                "--port",
                &opts.port.to_string(),
            ])
            .args(["--binary", &firefox_path()])
            // Firefox takes its time zone from the environment it inherits (firefoxOptions'
            // `env` does not reach Intl here).
            .env("TZ", opts.tz)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} in namespace {}", geckodriver_path(), ns.name))?;
        let mut driver = Driver::wait_ready(
            child,
            ns.ns_ip.to_string(),
            opts.port,
            Quit::DeleteSession,
            vec![],
        )
        .await
        .with_context(|| format!("{label}: geckodriver (GECKODRIVER={})", geckodriver_path()))?;
        let host = opts
            .server
            .split("://")
            .nth(1)
            .and_then(|h| h.split(':').next())
            .unwrap_or_default()
            .to_owned();
        let mut prefs = json!({
            "media.navigator.streams.fake": true,
            "media.navigator.permission.disabled": true,
            "media.peerconnection.ice.obfuscate_host_addresses": false,
            "media.autoplay.default": 0,
            "media.autoplay.blocking_policy": 0,
            // http://<veth address> is trusted like https, so getUserMedia and geolocation
            // are offered as on the real (HTTPS) site.
            "dom.securecontext.allowlist": host,
            // ...but then the page counts as secure and Firefox upgrades its http:// media
            // (the reviewer's video) to https://, which this test server does not speak: "Failed
            // to open media" without a request. On the real HTTPS site nothing is upgraded.
            "security.mixed_content.upgrade_display_content": false,
            "geo.provider.use_geoclue": false,
            "geo.provider.use_gpsd": false,
            "geo.prompt.testing": true,
            "geo.prompt.testing.allow": true,
            // No first-run pages, update or telemetry traffic (the namespace has no route out
            // anyway).
            "browser.shell.checkDefaultBrowser": false,
            "app.update.enabled": false,
            "datareporting.policy.dataSubmissionEnabled": false,
            "toolkit.telemetry.enabled": false,
        });
        if let Some((lat, lon, acc)) = opts.geo {
            // Firefox's network provider asks this URL for its position: a data: URL answers
            // at once, without any network.
            let body = json!({"location": {"lat": lat, "lng": lon}, "accuracy": acc}).to_string();
            prefs["geo.provider.network.url"] =
                json!(format!("data:application/json,{}", url_encode(&body)));
            prefs["geo.provider.testing"] = json!(true);
        }
        if opts.real_phone {
            for (k, v) in [
                ("general.useragent.override", json!(FIREFOX_ANDROID_UA)),
                ("general.platform.override", json!("Linux armv8l")),
                ("dom.maxtouchpoints.testing.value", json!(5)),
                ("webgl.renderer-string-override", json!("Mali-G710")),
                ("webgl.vendor-string-override", json!("ARM")),
            ] {
                prefs[k] = v;
            }
        }
        let (w, h) = match opts.device {
            Device::Desktop => (1400, 900),
            Device::Phone => (360, 740),
        };
        let firefox = json!({
            "binary": firefox_path(),
            "args": ["-headless", "-width", w.to_string(), "-height", h.to_string()],
            "prefs": prefs,
        });
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("firefox"));
        caps.insert("moz:firefoxOptions".into(), firefox);
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .with_context(|| format!("{label}: opening a Firefox session"))?;
        let session_id = client
            .session_id()
            .await?
            .ok_or_else(|| anyhow!("{label}: geckodriver returned no session id"))?;
        driver.session = Some(session_id.clone());
        // Headless Firefox takes -width/-height as the window, not the viewport: set the
        // window so that the page gets the intended width.
        client
            .set_window_size(w, h)
            .await
            .with_context(|| format!("{label}: sizing the window"))?;
        Ok(Browser {
            client,
            session_id,
            http: reqwest::Client::new(),
            label: label.to_owned(),
            engine: Engine::Firefox,
            driver,
            _profile: tempfile::tempdir()?,
        })
    }

    /// Start WebKitWebDriver and a WebKitGTK MiniBrowser session on a private X server
    /// (Xvfb, which picks a free display itself), with WebKit's mock camera and microphone.
    /// Debian's WebKitGTK has no WebRTC and no location service: the engine for the pages'
    /// non-WebRTC parts and for the feature-detection message.
    pub async fn launch_webkit(label: &str, device: Device) -> Result<Browser> {
        let xvfb = start_xvfb().await?;
        let (xvfb, display) = xvfb;
        let port = free_port()?;
        let log_dir = workspace_root().join("artifacts").join("webkitdriver");
        std::fs::create_dir_all(&log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("webkitdriver-{port}.log")))?;
        let child = Command::new(webkitdriver_path())
            .arg(format!("--port={port}"))
            .env("DISPLAY", &display)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", webkitdriver_path()))?;
        let mut driver = Driver::wait_ready(
            child,
            "127.0.0.1".into(),
            port,
            Quit::DeleteSession,
            vec![xvfb],
        )
        .await?;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("MiniBrowser"));
        caps.insert(
            "webkitgtk:browserOptions".into(),
            json!({
                "binary": minibrowser_path(),
                "args": ["--automation", "--enable-media-stream=true",
                         "--enable-mock-capture-devices=true"],
            }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .with_context(|| format!("{label}: opening a WebKitGTK session"))?;
        let session_id = client
            .session_id()
            .await?
            .ok_or_else(|| anyhow!("{label}: WebKitWebDriver returned no session id"))?;
        driver.session = Some(session_id.clone());
        let (w, h) = match device {
            Device::Desktop => (1400, 900),
            Device::Phone => (360, 740),
        };
        client
            .set_window_size(w, h)
            .await
            .with_context(|| format!("{label}: sizing the window"))?;
        Ok(Browser {
            client,
            session_id,
            http: reqwest::Client::new(),
            label: label.to_owned(),
            engine: Engine::WebKit,
            driver,
            _profile: tempfile::tempdir()?,
        })
    }

    /// Make the current page's `navigator.webdriver` false, as on a phone nobody drives
    /// (Firefox keeps it true under geckodriver, and no pref turns it off). Lasts until the
    /// next navigation: call it before the page reads it (the business page does when it
    /// connects, after its start button).
    pub async fn hide_webdriver(&self) -> Result<()> {
        self.js("Object.defineProperty(Navigator.prototype, 'webdriver', \
                 {get: () => false, configurable: true}); return navigator.webdriver")
            .await
            .and_then(|v| {
                if v == json!(false) {
                    Ok(())
                } else {
                    Err(anyhow!("{}: navigator.webdriver is still {v}", self.label))
                }
            })
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        self.engine
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

    /// Signs in on the console's login view (the page must be the console) and waits until
    /// the console shows its signed-in header.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<()> {
        self.wait_true(
            "the login form",
            "return !document.getElementById('view-login').hidden",
            Duration::from_secs(20),
        )
        .await?;
        self.fill("#login-username", username).await?;
        self.fill("#login-password", password).await?;
        self.click("#login-submit").await?;
        self.wait_true(
            "signed in",
            "return !document.getElementById('logout').hidden",
            Duration::from_secs(20),
        )
        .await
    }

    /// Opens the live room of `inspection` on the console at `base` (signed in already),
    /// waits until its socket is open, presses Start and waits until the inspection is live.
    pub async fn start_inspection(
        &self,
        base: &str,
        inspection: impl std::fmt::Display,
    ) -> Result<()> {
        self.goto(&format!("{base}/#/room/{inspection}")).await?;
        self.wait_true(
            "the room connected",
            "return document.getElementById('room-conn').dataset.state === 'open' && \
             !document.getElementById('room-start').hidden",
            Duration::from_secs(20),
        )
        .await?;
        self.click("#room-start").await?;
        self.wait_true(
            "the inspection live",
            "return !document.getElementById('room-finish').hidden",
            Duration::from_secs(20),
        )
        .await
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
        // geckodriver and WebKitWebDriver have no log endpoint (W3C WebDriver has none).
        if self.engine != Engine::Chromium {
            return Ok(vec![]);
        }
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
    pub async fn close(mut self) -> Result<()> {
        self.client.clone().close().await?;
        // Closed: the driver has nothing left to delete on drop.
        self.driver.session = None;
        Ok(())
    }
}
