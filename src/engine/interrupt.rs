//! Stopping a run: Ctrl-C once stops new work (no host starts, connections being made are
//! cut), tasks in flight finish; Ctrl-C twice, or SIGTERM, aborts what is in flight too.
//! Either way the recap and reports are written. Package transactions are never cut
//! short: they run in their own session on the host and outlive our connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Interrupt {
    stopping: Arc<AtomicBool>,
    aborted: Arc<AtomicBool>,
}

impl Interrupt {
    /// No new work: hosts not started stay so, connections being made are cut.
    pub fn stop_new_work(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        kill_connecting_ssh();
    }

    /// Stop everything now.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.stop_new_work();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Resolves when the run is aborted.
    pub async fn aborted(&self) {
        while !self.is_aborted() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Listens for Ctrl-C (once: stop new work; twice: abort) and SIGTERM (abort).
    pub fn listen(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: no new work starts; tasks in flight finish (package transactions are never cut short); Ctrl-C again to abort them");
                me.stop_new_work();
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted twice: aborting the tasks in flight (package transactions go on on their hosts)");
                    me.abort();
                }
            }
        });
        #[cfg(unix)]
        {
            let me = self.clone();
            tokio::spawn(async move {
                let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
                if term.recv().await.is_some() {
                    eprintln!("\nterminated: aborting the tasks in flight (package transactions go on on their hosts)");
                    me.abort();
                }
            });
        }
    }
}

/// An `ssh` process that is our child is a master connection still being made (once
/// connected it detaches from us; commands go over the multiplexed socket, not through
/// processes). Ending it, with what it started (a ProxyCommand), makes its connect fail at
/// once instead of after its timeout, and leaves nothing behind.
pub fn kill_connecting_ssh() {
    let table = process_table();
    let me = std::process::id() as i32;
    for (pid, _, _) in table.iter().filter(|(_, ppid, comm)| *ppid == me && comm == "ssh") {
        let mut doomed = vec![*pid];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            doomed.extend(table.iter().filter(|(_, ppid, _)| *ppid == parent).map(|(p, _, _)| *p));
            i += 1;
        }
        for pid in doomed.into_iter().rev() {
            // SAFETY: kill(2) on a process we just read as our child or its descendant.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// Every process as (pid, parent pid, command name), from /proc.
fn process_table() -> Vec<(i32, i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut table = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("").to_string();
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) {
            table.push((pid, ppid, comm));
        }
    }
    table
}
