//! Media in a network namespace without a multicast route (issue 19): containers and hosts
//! without a default route have none, and peer-connection set-up used to fail there with
//! "No such device (os error 19)" because webrtc joined the mDNS multicast group, which a server
//! answering with host candidates does not need. The test makes a fresh namespace of its own
//! (`ip netns add`, root needed), checks that it reproduces the failure for a peer connection
//! with webrtc's default settings, and that the hub's publisher → viewer path works there.

use std::process::Command;

/// A network namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let name = format!(
            "inspector-media-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("the ip command (iproute2) runs");
        assert!(
            out.status.success(),
            "ip netns add {name} failed (the test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns(name)
    }

    /// Runs a command inside the namespace.
    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn media_flows_in_a_namespace_without_a_multicast_route() {
    let child = std::env::current_exe()
        .expect("test exe")
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("examples")
        .join("netns_child");
    assert!(
        child.exists(),
        "{} missing: cargo test builds examples",
        child.display()
    );
    let ns = Netns::create();
    assert!(ns.exec(&["ip", "link", "set", "lo", "up"]).status.success());
    let routes = ns.exec(&["ip", "route", "show", "table", "all"]);
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains("127.0.0.1") && !routes.contains("224.0.0.0"),
        "loopback only, no multicast route: {routes}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ns.exec(&[
        child.to_str().expect("utf-8 path"),
        dir.path().to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("control failed") && stdout.contains("os error 19"),
        "the namespace reproduces the defect for webrtc's defaults: {stdout}"
    );
    assert!(
        out.status.success() && stdout.contains("keyframe "),
        "the viewer gets video through the hub: {stdout}\n{stderr}"
    );
}
