//! Test support for `syva api`: run the real binary against a core socket,
//! talk to it over real HTTP (ureq), and snapshot core's state over gRPC to
//! prove that rejected requests change nothing.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use syva::client::CoreClient;
use syva::proto::pb;

use crate::common::SYVA;

pub const TOKEN: &str = "ci-token-0123456789abcdef0123456789abcdef";

/// A running `syva api`; killed on drop.
pub struct Api {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub log: PathBuf,
    pub token: Option<String>,
    pub agent: ureq::Agent,
    pub dir: tempfile::TempDir,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A problem+json error of this status, naming this field.
    pub fn assert_problem(&self, status: u16, field: Option<&str>) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        let p = self.json();
        assert_eq!(p["status"], status, "{p}");
        assert!(
            p["type"].as_str().unwrap().starts_with("urn:syva:problem:"),
            "{p}"
        );
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{p}");
        assert_eq!(p["field"].as_str(), field, "{p}");
        p
    }
}

pub fn agent(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)));
    if let Some(t) = tls {
        cfg = cfg.tls_config(t);
    }
    cfg.build().into()
}

/// Options of a test instance.
#[derive(Default)]
pub struct Opts<'a> {
    pub listen: Option<String>,
    pub token: bool,
    pub extra: &'a [&'a str],
    pub tls: Option<(PathBuf, PathBuf, ureq::tls::TlsConfig)>,
}

/// The port from the "syva api listening addr=IP:PORT" log line.
fn wait_listening(child: &mut Child, log: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text
            .lines()
            .find(|l| l.contains("syva api listening"))
            .and_then(|l| l.split("addr=").nth(1))
        {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            return addr.rsplit(':').next().unwrap().parse().unwrap();
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("syva api exited with {st}:\n{text}");
        }
        assert!(Instant::now() < deadline, "syva api did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Api {
    pub fn start(socket: &Path) -> Self {
        Self::start_opts(socket, Opts::default())
    }

    pub fn start_with_token(socket: &Path) -> Self {
        Self::start_opts(
            socket,
            Opts {
                token: true,
                ..Default::default()
            },
        )
    }

    pub fn start_opts(socket: &Path, opts: Opts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Port 0: the kernel picks a free port, read back from the log.
        let listen = opts
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let log = dir.path().join("api.log");
        let mut cmd = Command::new(SYVA);
        cmd.args(["api", "--log", "info,syva=debug", "--listen", &listen])
            .arg("--core-socket")
            .arg(socket)
            .args(opts.extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let token = opts.token.then(|| TOKEN.to_owned());
        if token.is_some() {
            let file = dir.path().join("tokens");
            std::fs::write(&file, format!("# test\nci:{TOKEN}\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            cmd.arg("--token-file").arg(&file);
        }
        let scheme = if let Some((cert, key, _)) = &opts.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            "https"
        } else {
            "http"
        };
        let mut child = cmd.spawn().expect("spawn syva api");
        let port = wait_listening(&mut child, &log);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        Api {
            child,
            addr,
            base: format!("{scheme}://{host}:{port}"),
            log,
            token,
            agent: agent(opts.tls.map(|t| t.2)),
            dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send a request; `body` is sent as application/json.
    pub fn send(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        self.send_with(method, path, body, &[])
    }

    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = self.url(path);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("Content-Type", "application/json");
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        let req = req.body(body.unwrap_or_default().to_owned()).unwrap();
        let mut res = self
            .agent
            .run(req)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.log_text()));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.body_mut().read_to_string().unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None)
    }

    pub fn put(&self, path: &str, body: &str) -> Resp {
        self.send("PUT", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None)
    }

    /// Poll until `f` holds (or fail after `secs`).
    pub fn eventually(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}\n--- api log ---\n{}",
            self.log_text()
        );
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "api did not stop:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything core knows that a request could change, read over gRPC.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub zones: Vec<pb::Zone>,
    pub pairs: Vec<pb::CommPair>,
    pub containers: Vec<pb::Container>,
    pub audit: bool,
}

pub fn snapshot(socket: &Path) -> Snapshot {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut api = CoreClient::connect(socket).await.unwrap().api();
        Snapshot {
            zones: api
                .list_zones(pb::ListZonesRequest {})
                .await
                .unwrap()
                .into_inner()
                .zones,
            pairs: api
                .list_comms(pb::ListCommsRequest {})
                .await
                .unwrap()
                .into_inner()
                .pairs,
            containers: api
                .list_containers(pb::ListContainersRequest::default())
                .await
                .unwrap()
                .into_inner()
                .containers,
            audit: api
                .status(pb::StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .audit_mode,
        }
    })
}

/// Run one async gRPC step against core (to set up state of other sources).
pub fn with_core<T>(
    socket: &Path,
    f: impl AsyncFnOnce(&mut syva::proto::SyvaCoreClient<tonic::transport::Channel>) -> T,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut api = CoreClient::connect(socket).await.unwrap().api();
        f(&mut api).await
    })
}
