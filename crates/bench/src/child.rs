//! Stage binaries run as child processes, timed, with their own peak resident memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

/// Wall time and peak RSS of one child process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChildRun {
    pub seconds: f64,
    pub peak_rss_mib: f64,
}

/// The stage binaries sit beside this one (`target/release/`).
pub fn stage_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the bench binary")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{}: not built; run `cargo build --release --workspace` first",
            path.display()
        );
    }
    Ok(path)
}

/// Run binary `name` (beside this one) with `args` and measure it.
pub fn run_binary(name: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<ChildRun> {
    let mut command = Command::new(stage_binary(name)?);
    command.args(args);
    run(&mut command)
}

/// Run stage `name` with `args` (stdout and stderr pass through) and measure it.
pub fn run_stage(name: &str, args: &[&str], pipeline: &Path) -> anyhow::Result<ChildRun> {
    let mut command = Command::new(stage_binary(name)?);
    command.args(args).arg("--pipeline").arg(pipeline);
    run(&mut command)
}

fn run(command: &mut Command) -> anyhow::Result<ChildRun> {
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    // `wait4` (not `Child::wait`) reports the resource usage of exactly this child, so each
    // stage gets its own peak RSS rather than the maximum over all children so far.
    let mut status = 0;
    // SAFETY: `rusage` is plain old data that wait4 fills in; the pid is our own child,
    // which has not been waited for yet.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    if pid < 0 {
        bail!(
            "waiting for {command:?}: {}",
            std::io::Error::last_os_error()
        );
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{command:?} failed (wait status {status})");
    }
    Ok(ChildRun {
        seconds,
        // Linux reports ru_maxrss in KiB.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}
