//! Health: healthy / degraded / unhealthy, with reasons.
//!
//! - unhealthy: an expected program is not attached, or a self-test failed
//!   (enforcement cannot be trusted);
//! - degraded: enforcing, but something happened recently (within
//!   `window`): kernel read errors (failed open), lost events, stale or
//!   conflicting membership updates, map write failures, a skipped
//!   self-test, slow event subscribers;
//! - healthy otherwise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::model::view::Health;

use super::dataplane::{Attachment, HookCounts, SelfTest, SelfTestOutcome};
use super::hooks::{HOOKS, VERDICT_ERROR, VERDICT_LOST};

/// How long a problem keeps health degraded after it last happened.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// A counted event and when it last happened.
#[derive(Debug, Default)]
pub struct Signal {
    total: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Signal {
    pub fn hit(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.total.fetch_add(n, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn recent(&self, window: Duration) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < window)
    }
}

/// Problems counted in userspace.
#[derive(Debug, Default)]
pub struct Signals {
    pub membership_stale: Signal,
    pub membership_conflicts: Signal,
    pub map_write_failures: Signal,
    /// A rollback itself failed: kernel maps may differ from the registry.
    pub rollback_failures: Signal,
    pub events_dropped: Signal,
    pub event_decode_errors: Signal,
}

/// Remembers the kernel's error/lost counters to tell when they last grew.
#[derive(Debug, Default)]
pub struct KernelWatch {
    last: Mutex<Vec<HookCounts>>,
    pub errors: Signal,
    pub lost: Signal,
}

impl KernelWatch {
    /// Feed the current counters; growth since the last call is recorded.
    pub fn observe(&self, counters: &[HookCounts]) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.len() == counters.len() {
            let grew = |slot: usize| -> u64 {
                counters
                    .iter()
                    .zip(last.iter())
                    .map(|(now, before)| now[slot].saturating_sub(before[slot]))
                    .sum()
            };
            self.errors.add(grew(VERDICT_ERROR));
            self.lost.add(grew(VERDICT_LOST));
        } else {
            // First observation: anything already counted happened before
            // we looked, but still happened.
            let sum = |slot: usize| counters.iter().map(|c| c[slot]).sum::<u64>();
            self.errors.add(sum(VERDICT_ERROR));
            self.lost.add(sum(VERDICT_LOST));
        }
        *last = counters.to_vec();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub health: Health,
    pub reasons: Vec<String>,
}

pub fn evaluate(
    attachments: &[Attachment],
    self_tests: &[SelfTest],
    signals: &Signals,
    kernel: &KernelWatch,
    window: Duration,
) -> Report {
    let mut unhealthy = Vec::new();
    let mut degraded = Vec::new();
    for a in attachments.iter().filter(|a| !a.attached) {
        unhealthy.push(format!(
            "program {} ({}) is not attached{}",
            a.program,
            a.hook,
            a.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    for t in self_tests {
        match &t.outcome {
            SelfTestOutcome::Passed(_) => {}
            SelfTestOutcome::Failed(d) => {
                unhealthy.push(format!("self-test {} failed: {d}", t.name))
            }
            SelfTestOutcome::Skipped(d) => {
                degraded.push(format!("self-test {} could not run: {d}", t.name));
            }
        }
    }
    let mins = window.as_secs() / 60;
    let recent = |s: &Signal, what: &str, out: &mut Vec<String>| {
        if s.recent(window) {
            out.push(format!(
                "{what} in the last {mins} min ({} in total)",
                s.total()
            ));
        }
    };
    recent(
        &kernel.errors,
        "kernel read errors (failed open)",
        &mut degraded,
    );
    recent(
        &kernel.lost,
        "events lost in the kernel ring buffer",
        &mut degraded,
    );
    recent(
        &signals.membership_stale,
        "stale membership updates",
        &mut degraded,
    );
    recent(
        &signals.membership_conflicts,
        "conflicting membership updates",
        &mut degraded,
    );
    recent(
        &signals.map_write_failures,
        "BPF map write failures",
        &mut degraded,
    );
    recent(
        &signals.events_dropped,
        "events dropped for slow subscribers",
        &mut degraded,
    );
    recent(
        &signals.event_decode_errors,
        "undecodable kernel events",
        &mut degraded,
    );
    if signals.rollback_failures.total() > 0 {
        // Not time-bound: until core restarts, maps may not match the registry.
        degraded.push(format!(
            "{} rollbacks of failed map writes failed: kernel state may differ from the registry \
             until restart",
            signals.rollback_failures.total()
        ));
    }
    let health = if !unhealthy.is_empty() {
        Health::Unhealthy
    } else if !degraded.is_empty() {
        Health::Degraded
    } else {
        Health::Healthy
    };
    unhealthy.extend(degraded);
    Report {
        health,
        reasons: unhealthy,
    }
}

/// Hooks whose programs must be attached for enforcement to be complete.
pub fn expected_programs() -> impl Iterator<Item = &'static str> {
    HOOKS.iter().map(|h| h.program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hooks::VERDICTS;

    fn attached(ok: bool) -> Attachment {
        Attachment {
            program: "syva_file_open",
            hook: "lsm/file_open",
            attached: ok,
            error: (!ok).then(|| "EPERM".into()),
        }
    }

    #[test]
    fn healthy_by_default() {
        let r = evaluate(
            &[attached(true)],
            &[],
            &Signals::default(),
            &KernelWatch::default(),
            DEFAULT_WINDOW,
        );
        assert_eq!(r.health, Health::Healthy);
        assert!(r.reasons.is_empty());
    }

    #[test]
    fn missing_attachment_or_failed_selftest_is_unhealthy() {
        let r = evaluate(
            &[attached(false)],
            &[],
            &Signals::default(),
            &KernelWatch::default(),
            DEFAULT_WINDOW,
        );
        assert_eq!(r.health, Health::Unhealthy);
        assert!(r.reasons[0].contains("syva_file_open"), "{:?}", r.reasons);

        let t = SelfTest {
            name: "file_open",
            outcome: SelfTestOutcome::Failed("cgroup id 5, expected 7".into()),
        };
        let r = evaluate(
            &[],
            &[t],
            &Signals::default(),
            &KernelWatch::default(),
            DEFAULT_WINDOW,
        );
        assert_eq!(r.health, Health::Unhealthy);
    }

    #[test]
    fn recent_problems_degrade_then_expire() {
        let s = Signals::default();
        s.membership_conflicts.hit();
        let r = evaluate(&[], &[], &s, &KernelWatch::default(), DEFAULT_WINDOW);
        assert_eq!(r.health, Health::Degraded);
        assert!(r.reasons[0].contains("conflicting"), "{:?}", r.reasons);
        // With a zero window nothing is recent any more.
        let r = evaluate(&[], &[], &s, &KernelWatch::default(), Duration::ZERO);
        assert_eq!(r.health, Health::Healthy);
    }

    #[test]
    fn kernel_counter_growth_is_detected() {
        let w = KernelWatch::default();
        let mut c = vec![[0u64; VERDICTS.len()]; 2];
        w.observe(&c);
        assert_eq!(w.errors.total(), 0);
        c[1][VERDICT_ERROR] = 3;
        c[0][VERDICT_LOST] = 1;
        w.observe(&c);
        assert_eq!(w.errors.total(), 3);
        assert_eq!(w.lost.total(), 1);
        w.observe(&c);
        assert_eq!(w.errors.total(), 3, "no growth, no new errors");
        let r = evaluate(&[], &[], &Signals::default(), &w, DEFAULT_WINDOW);
        assert_eq!(r.health, Health::Degraded);
    }
}
