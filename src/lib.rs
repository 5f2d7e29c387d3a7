//! Syva: a node-local eBPF LSM enforcement engine that isolates container
//! workloads into zones. One crate, one static binary, several roles; see
//! `cli` for the entry point and README.md for the design.

pub mod api;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod core;
pub mod ctl;
pub mod error;
pub mod file;
pub mod k8s;
pub mod model;
pub mod proto;
pub mod telemetry;
