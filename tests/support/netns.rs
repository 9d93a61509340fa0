//! A network namespace of the test's own, joined to the host by a veth pair with private
//! addresses (a /30 in 10.213.0.0/16). Firefox's ICE never offers 127.0.0.1, and a test may
//! send traffic only to loopback or to hosts it made itself: a browser run inside the
//! namespace reaches a server bound to the host end, and nothing else (the namespace has no
//! other route). Removed on drop, also when the test fails; every process still in it (the
//! test's own drivers and browsers) is killed first, by its id. Needs root (`ip netns`).

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One namespace and its veth pair.
pub struct NetNs {
    /// The namespace's name (`ip netns exec <name> ...`).
    pub name: String,
    /// The host end's address: bind the test server here.
    pub host_ip: Ipv4Addr,
    /// The namespace end's address: the browser's own address.
    pub ns_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetNs {
    /// Make a namespace with a free /30. The namespace's name is taken from its subnet, and
    /// `ip netns add` refuses a name that exists, so two tests running at once (or a stale
    /// namespace of a killed run) never share addresses: the loser tries the next subnet.
    pub fn create() -> Result<NetNs> {
        // Start where this process's id points, so parallel test processes rarely collide.
        let start = std::process::id() as usize;
        for k in 0..256 * 64 {
            let n = (start + k) % (256 * 64);
            let (a, b) = ((n / 64) as u8, ((n % 64) * 4) as u8);
            let name = format!("insp-{a}-{b}");
            let made = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .context("running ip netns add (the browser tests need root)")?;
            if !made.status.success() {
                continue;
            }
            let ns = NetNs {
                name,
                host_ip: Ipv4Addr::new(10, 213, a, b + 1),
                ns_ip: Ipv4Addr::new(10, 213, a, b + 2),
            };
            // From here on the guard removes whatever was made, also on an error.
            ns.wire()
                .with_context(|| format!("wiring namespace {}", ns.name))?;
            return Ok(ns);
        }
        bail!("no free namespace name insp-*-* (stale namespaces? see `ip netns list`)")
    }

    /// The host end's interface name (at most 15 characters).
    fn host_if(&self) -> String {
        let o = self.host_ip.octets();
        format!("ih{}x{}", o[2], o[3] - 1)
    }

    fn ns_if(&self) -> String {
        let o = self.host_ip.octets();
        format!("in{}x{}", o[2], o[3] - 1)
    }

    fn wire(&self) -> Result<()> {
        let (h, n) = (self.host_if(), self.ns_if());
        let host = format!("{}/30", self.host_ip);
        let inner = format!("{}/30", self.ns_ip);
        ip(&["link", "add", &h, "type", "veth", "peer", "name", &n])?;
        ip(&["link", "set", &n, "netns", &self.name])?;
        ip(&["addr", "add", &host, "dev", &h])?;
        ip(&["link", "set", &h, "up"])?;
        let e = |args: &[&str]| {
            let mut v = vec!["netns", "exec", &self.name, "ip"];
            v.extend_from_slice(args);
            ip(&v)
        };
        e(&["link", "set", "lo", "up"])?;
        e(&["addr", "add", &inner, "dev", &n])?;
        e(&["link", "set", &n, "up"])?;
        Ok(())
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Whatever still runs in the namespace was started by this test (nothing else can
        // enter it): end those processes by their ids before removing it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if pid.parse::<u32>().is_ok() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
        // Deleting the namespace destroys its veth end, and with it the host end.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if()])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
