//! File system watches (notify, inotify underneath) turned into what the
//! adapter loop needs:
//! - the policy directory: a level-triggered, debounced "something changed,
//!   re-read it all" signal (editors save in several steps: write a temp
//!   file, rename it over, chmod; re-reading everything once they are done
//!   handles every saving style the same way);
//! - the cgroup tree: one event per cgroup created or removed, undebounced
//!   (every millisecond counts before a new cgroup is enforced), with a
//!   "rescan" signal when events were lost.
//!
//! The adapter reads the files it watches: opens and closes (access events)
//! are ignored, or it would wake itself up forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use notify::event::{CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};

/// Longest time between the first change and the re-read.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Capacity of the cgroup event queue; beyond it events are dropped and a
/// full rescan is done instead.
const CGROUP_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    pub path: PathBuf,
    #[source]
    pub source: notify::Error,
}

/// Does this event change what a directory listing or a file read returns?
fn is_change(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

/// Watch of the policy directory.
#[derive(Debug)]
pub struct PolicyWatch {
    _watcher: RecommendedWatcher,
    changed: mpsc::Receiver<()>,
    /// The watched directory itself was removed or moved: this watch sees
    /// nothing any more.
    dead: Arc<AtomicBool>,
}

impl PolicyWatch {
    /// Watch `dir` (not recursively: policies are its direct entries). Files
    /// are re-read through the directory, so a file replaced by rename, a
    /// symlink swapped, or a new file are all seen.
    pub fn start(dir: &Path, debounce: Duration) -> Result<Self, WatchError> {
        let raw = Arc::new(Notify::new());
        let signal = raw.clone();
        let dead = Arc::new(AtomicBool::new(false));
        let gone = dead.clone();
        let watched = dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if is_change(&ev.kind) || ev.need_rescan() => {
                    let about_dir = ev.paths.contains(&watched);
                    if about_dir
                        && matches!(
                            ev.kind,
                            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                        )
                    {
                        gone.store(true, Ordering::Release);
                    }
                    signal.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "policy directory watch error; re-reading it");
                    signal.notify_one();
                }
            })
            .map_err(|source| WatchError {
                path: dir.to_path_buf(),
                source,
            })?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                path: dir.to_path_buf(),
                source,
            })?;
        let (tx, changed) = mpsc::channel(1);
        tokio::spawn(debounce_task(raw, tx, debounce));
        Ok(Self {
            _watcher: watcher,
            changed,
            dead,
        })
    }

    /// The directory this watch was set on is gone (removed or renamed).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Resolves when the directory changed and then stayed quiet for the
    /// debounce time (or one second passed since the first change).
    pub async fn changed(&mut self) {
        if self.changed.recv().await.is_none() {
            // The debounce task ended (it never does while we hold the
            // receiver); never resolve rather than spin.
            std::future::pending::<()>().await;
        }
    }
}

async fn debounce_task(raw: Arc<Notify>, tx: mpsc::Sender<()>, quiet: Duration) {
    loop {
        raw.notified().await;
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            tokio::select! {
                () = raw.notified() => continue,
                () = tokio::time::sleep(quiet) => break,
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        // A full channel already holds a pending "changed": coalesced.
        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
            return;
        }
    }
}

/// What happened in the cgroup tree.
#[derive(Debug)]
pub enum CgroupEvent {
    Created(PathBuf, Instant),
    Removed(PathBuf),
    /// Events were lost (queue overflow): rescan everything.
    Rescan,
    /// The watch itself failed (e.g. the inotify watch limit).
    Failed(String),
}

/// Recursive watch of the cgroup v2 tree.
#[derive(Debug)]
pub struct CgroupWatch {
    _watcher: RecommendedWatcher,
    events: mpsc::Receiver<CgroupEvent>,
    overflow: Arc<AtomicBool>,
}

impl CgroupWatch {
    /// Watch every cgroup below `root`; new cgroups are watched as they
    /// appear. Start this before the initial scan so nothing created in
    /// between is missed. A tree that cannot be watched completely (the
    /// inotify watch limit) is not fatal: the watch covers what it could,
    /// the periodic resync the rest, and the returned message says so.
    pub fn start(root: &Path) -> Result<(Self, Option<String>), WatchError> {
        let (tx, events) = mpsc::channel(CGROUP_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let lost = overflow.clone();
        let send = move |e: CgroupEvent| {
            if tx.try_send(e).is_err() {
                lost.store(true, Ordering::Release);
            }
        };
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let ev = match res {
                Ok(ev) => ev,
                Err(e) => {
                    send(CgroupEvent::Failed(e.to_string()));
                    return;
                }
            };
            if ev.need_rescan() {
                send(CgroupEvent::Rescan);
                return;
            }
            let now = Instant::now();
            match ev.kind {
                // Cgroups are directories; files only appear in a
                // test tree (kernfs creates interface files silently).
                EventKind::Create(CreateKind::File) => {}
                EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    for p in ev.paths {
                        send(CgroupEvent::Created(p, now));
                    }
                }
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                    for p in ev.paths {
                        send(CgroupEvent::Removed(p));
                    }
                }
                // Interface file writes (cgroup.procs, cgroup.events),
                // opens and closes: not about membership.
                _ => {}
            }
        })
        .map_err(|source| WatchError {
            path: root.to_path_buf(),
            source,
        })?;
        let partial = watcher
            .watch(root, RecursiveMode::Recursive)
            .err()
            .map(|e| format!("cannot watch every cgroup below {}: {e}", root.display()));
        Ok((
            Self {
                _watcher: watcher,
                events,
                overflow,
            },
            partial,
        ))
    }

    /// The next event; `Rescan` first when the queue overflowed.
    pub async fn next(&mut self) -> CgroupEvent {
        if self.overflow.swap(false, Ordering::AcqRel) {
            return CgroupEvent::Rescan;
        }
        match self.events.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// An event already queued, without waiting.
    pub fn try_next(&mut self) -> Option<CgroupEvent> {
        if self.overflow.swap(false, Ordering::AcqRel) {
            return Some(CgroupEvent::Rescan);
        }
        self.events.try_recv().ok()
    }
}
