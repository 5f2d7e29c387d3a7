//! `k8sfake`: the fake Kubernetes API server of the tests as a program, for
//! the VM test guest (busybox only): `k8sfake 127.0.0.1:8080` serves until
//! killed. Objects are created with plain HTTP (busybox wget --post-data).

#[path = "mod.rs"]
mod k8s_fake;

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("usage: k8sfake ADDR:PORT");
    let api = k8s_fake::FakeApi::start_on(addr, Duration::from_secs(1)).await;
    eprintln!("k8sfake: serving on {}", api.url());
    if let Some(path) = std::env::args().nth(2) {
        api.write_kubeconfig(std::path::Path::new(&path));
    }
    std::future::pending::<()>().await;
}
