//! [`Proc`]: a program started by a test (a peer, a unikernel, a launcher of QEMU), its output
//! collected line by line as it comes, stopped on drop.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use crate::sys;

/// A program running in a namespace: its output lines (stdout and stderr, in arrival order)
/// are collected as they come. Killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
    /// Started in a process group of its own, killed whole on drop.
    group: bool,
}

fn forward(from: impl Read + Send + 'static, to: Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}

impl Proc {
    /// Start `cmd`, collecting its output.
    pub fn spawn(cmd: Command) -> Self {
        Self::start(cmd, false)
    }

    /// Start `cmd` in a process group of its own, collecting its output; dropping it kills the
    /// whole group: a launcher and what it started (`cargo xtask run` and its QEMU, `ip netns
    /// exec` and the program in the namespace).
    pub fn spawn_group(mut cmd: Command) -> Self {
        cmd.process_group(0);
        Self::start(cmd, true)
    }

    fn start(mut cmd: Command, group: bool) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = channel();
        forward(child.stdout.take().expect("piped"), tx.clone());
        forward(child.stderr.take().expect("piped"), tx);
        Self { child, lines, seen: Vec::new(), what, group }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The lines received so far.
    pub fn log(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }

    /// Wait until a line contains `pattern` and return it; panic with the output so far if none
    /// does within `timeout` or the program ends first.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_count(pattern, 1, timeout).swap_remove(0)
    }

    /// Wait until `count` lines contain `pattern` and return them; panic with the output so far
    /// if they do not within `timeout` or the program ends first.
    pub fn wait_for_count(&mut self, pattern: &str, count: usize, timeout: Duration) -> Vec<String> {
        self.try_wait_for_count(pattern, count, timeout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Proc::wait_for`] that returns what went wrong instead of panicking (for a caller that
    /// searches, such as a benchmark trying smaller and smaller memory sizes).
    pub fn try_wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<String, String> {
        self.try_wait_for_count(pattern, 1, timeout).map(|mut v| v.swap_remove(0))
    }

    fn try_wait_for_count(
        &mut self,
        pattern: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self.log().iter().filter(|l| l.contains(pattern)).cloned().collect();
            if found.len() >= count {
                return Ok(found);
            }
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: not {count} lines with {pattern:?} within {timeout:?}; output:\n{}",
                        self.what,
                        self.seen.join("\n")
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!(
                        "{}: ended ({status}) before {count} lines with {pattern:?}; output:\n{}",
                        self.what,
                        self.seen.join("\n")
                    ));
                }
            }
        }
    }

    /// Whether it has ended.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Whether some line so far contains `pattern` (without waiting).
    pub fn printed(&mut self, pattern: &str) -> bool {
        self.log().iter().any(|l| l.contains(pattern))
    }

    /// Everything it printed so far, one indented line each (for a failure's message).
    pub fn text(&mut self) -> String {
        self.log().iter().map(|l| format!("  | {l}\n")).collect()
    }

    /// Wait up to `timeout` for the program to end; its status and all its output. Panics
    /// (killing it) if it does not end in time.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for a child") {
                // The readers end with the pipes: collect everything.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(l);
                }
                return (status, std::mem::take(&mut self.seen));
            }
            if Instant::now() >= deadline {
                self.log();
                panic!("{}: still running after {timeout:?}; output:\n{}", self.what, self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            let _ = sys::kill_group(self.child.id());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
