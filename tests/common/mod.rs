//! Shared support for host integration tests: run a real `syva core`
//! process (in-memory dataplane: the host kernel cannot load BPF LSM
//! programs) on a temporary Unix socket, with a temporary cgroup root.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use syva::client::CoreClient;

pub const SYVA: &str = env!("CARGO_BIN_EXE_syva");

/// A running `syva core --dataplane memory`; killed on drop.
pub struct Core {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub cgroup_root: PathBuf,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

impl Core {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("run/core.sock");
        let cgroup_root = dir.path().join("cgroup");
        std::fs::create_dir_all(&cgroup_root).unwrap();
        Self::spawn(dir, socket, cgroup_root, extra)
    }

    /// Kill core (SIGKILL: its socket file stays behind, stale) without
    /// starting it again; `restart()` brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kill core and start it again on the same socket and cgroup root.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, metrics, log) =
            Self::launch(self.dir.path(), &self.socket, &self.cgroup_root, &[]);
        self.child = child;
        self.metrics = metrics;
        self.log = log;
        self.wait_ready();
    }

    fn launch(
        dir: &Path,
        socket: &Path,
        cgroup_root: &Path,
        extra: &[&str],
    ) -> (Child, SocketAddr, PathBuf) {
        let metrics = free_port();
        let log = dir.join(format!("core-{}.log", metrics.port()));
        let child = Command::new(SYVA)
            .args(["core", "--dataplane", "memory", "--log", "debug"])
            .arg("--socket")
            .arg(socket)
            .arg("--cgroup-root")
            .arg(cgroup_root)
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn syva core");
        (child, metrics, log)
    }

    fn spawn(
        dir: tempfile::TempDir,
        socket: PathBuf,
        cgroup_root: PathBuf,
        extra: &[&str],
    ) -> Self {
        let (child, metrics, log) = Self::launch(dir.path(), &socket, &cgroup_root, extra);
        let core = Core {
            child,
            dir,
            socket,
            cgroup_root,
            metrics,
            log,
        };
        core.wait_ready();
        core
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("syva core did not start:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn client(&self) -> CoreClient {
        CoreClient::connect(&self.socket)
            .await
            .expect("connect to core")
    }

    /// Create a cgroup directory under the fake cgroup root; returns its id.
    pub fn cgroup(&self, rel: &str) -> u64 {
        let p = self.cgroup_root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("core did not exit on SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET over plain HTTP/1.1 on loopback; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}
