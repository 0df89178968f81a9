//! The metadata scrubber in a child process, with limits.
//!
//! Attachments are hostile input and the scrubber's parsers (lopdf,
//! img-parts, kamadak-exif) are large. A 3.6 MB PDF whose object streams
//! expand to 3.6 GiB made an in-process `reviewer open` abort on a laptop
//! with 2 GiB to spare, and a deeply nested one can exhaust the stack:
//! neither is a panic that `catch_unwind` could stop. So each file is
//! scrubbed by a child process, the same `reviewer` binary started with a
//! hidden first argument ([`CHILD_COMMAND`]), which first lowers its own
//! limits and then runs [`crate::scrub::scrub_file`]:
//!
//! | limit | default | enforced by |
//! | --- | --- | --- |
//! | address space | 1 GiB (`--scrub-memory`) | `RLIMIT_AS` in the child (allocation fails, the child aborts) |
//! | CPU time | 60 s | `RLIMIT_CPU` (SIGXCPU, then SIGKILL) |
//! | wall time | 120 s | the parent kills the child |
//! | the copy's size | 4 × the original + 64 MiB | `RLIMIT_FSIZE` (SIGXFSZ) |
//! | its answer | 1 MiB | the parent stops reading and kills the child |
//! | core dumps | none | `RLIMIT_CORE` = 0: a crash leaves no plaintext on disk |
//!
//! A child stopped by a limit, or one that crashed, means only this: that
//! file gets no scrubbed copy and is flagged with the reason
//! ([`ScrubOutcome::Failed`]); its original is kept. It never fails an
//! `open`. Up to `jobs` children run at once (default: the number of
//! cores).
//!
//! The limits are set with `setrlimit` on Unix. On Windows, which has no
//! rlimits, only the wall-time and answer limits hold (a job object would
//! be the way; this build does not make one), as `SECURITY.md` says.
//!
//! The child's standard error is discarded unread: a parser's panic
//! message can quote the hostile file.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::workbench::{FileKind, MetadataReport, ScrubOutcome};

/// The hidden first argument that makes `reviewer` a scrubbing child.
pub const CHILD_COMMAND: &str = "__scrub-child";

/// The child's first line: it proves the helper is a reviewer binary that
/// speaks this protocol (and not, say, a test harness).
const HELLO: &str = "reviewer-scrub-child 1";

/// The most the parent reads of a child's answer.
const MAX_ANSWER: u64 = 1024 * 1024;

/// How often the parent looks whether a child has finished.
const POLL: Duration = Duration::from_millis(5);

/// Limits for each scrubbing child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubLimits {
    /// Address space, in bytes.
    pub memory: u64,
    /// CPU time, in seconds.
    pub cpu_seconds: u64,
    /// Wall-clock time.
    pub wall: Duration,
    /// How many children at once.
    pub jobs: usize,
}

impl Default for ScrubLimits {
    fn default() -> Self {
        Self {
            memory: 1024 * 1024 * 1024,
            cpu_seconds: 60,
            wall: Duration::from_secs(120),
            jobs: std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1),
        }
    }
}

/// The scrubber, run as child processes of `exe`.
#[derive(Clone, Debug)]
pub struct Scrubber {
    exe: PathBuf,
    limits: ScrubLimits,
}

/// One file to scrub: the original, and where its copy goes (it must not
/// exist).
#[derive(Clone, Debug)]
pub struct ScrubJob {
    /// The decrypted original (only read).
    pub original: PathBuf,
    /// Where the scrubbed copy is written.
    pub copy: PathBuf,
}

impl Scrubber {
    /// Children of `exe` (a `reviewer` binary) with these limits. Checks
    /// once that `exe` answers as a scrubbing child.
    pub fn new(exe: PathBuf, limits: ScrubLimits) -> Result<Self, Error> {
        let s = Self { exe, limits };
        s.probe()?;
        Ok(s)
    }

    /// `reviewer` itself as the helper (`std::env::current_exe`).
    pub fn current_exe(limits: ScrubLimits) -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(|e| {
            Error::Open(crate::open::OpenError::ScrubHelper {
                path: PathBuf::from("reviewer"),
                reason: format!("cannot find this program's own path ({e})"),
            })
        })?;
        Self::new(exe, limits)
    }

    /// The limits in force.
    pub fn limits(&self) -> &ScrubLimits {
        &self.limits
    }

    fn probe(&self) -> Result<(), Error> {
        let bad = |reason: String| {
            Error::Open(crate::open::OpenError::ScrubHelper {
                path: self.exe.clone(),
                reason,
            })
        };
        let out = Command::new(&self.exe)
            .arg(CHILD_COMMAND)
            .arg("--probe")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| bad(format!("it does not start ({e})")))?;
        if out.status.success() && out.stdout.starts_with(HELLO.as_bytes()) {
            Ok(())
        } else {
            Err(bad("it is not a reviewer binary of this version".into()))
        }
    }

    /// Scrubs every job, up to `jobs` at once, and returns their reports
    /// in the same order. A report is never missing: a child that failed
    /// gives [`ScrubOutcome::Failed`] and leaves no copy behind.
    pub fn scrub_all(&self, jobs: &[ScrubJob]) -> Vec<MetadataReport> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<MetadataReport>>> = Mutex::new(vec![None; jobs.len()]);
        let workers = self.limits.jobs.clamp(1, jobs.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let report = self.scrub(job);
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(report);
                        }
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        results
            .into_iter()
            .zip(jobs)
            .map(|(r, job)| r.unwrap_or_else(|| failed(&job.original, "the scrubber did not run")))
            .collect()
    }

    /// Scrubs one file in a child.
    pub fn scrub(&self, job: &ScrubJob) -> MetadataReport {
        // A kind no parser reads (not an image, PDF or TIFF by its first
        // bytes: text, video, archives) needs no child: the scrubber would
        // only say so, and plain text is copied by a loop over its bytes,
        // with no parser. This keeps a batch of a thousand notes from
        // costing a thousand processes.
        let head = read_head(&job.original);
        if crate::scrub::sniff(&head) == FileKind::Other && !is_tiff(&head) {
            if crate::scrub::has_text_name(&job.original) {
                match crate::scrub::copy_plain_text(&job.original, &job.copy) {
                    Ok(Some(report)) => return report,
                    Ok(None) => {}
                    Err(_) => {
                        let _ = std::fs::remove_file(&job.copy);
                        return failed(
                            &job.original,
                            "the plain-text copy could not be read or written; no copy was made",
                        );
                    }
                }
            }
            return MetadataReport {
                kind: FileKind::Other,
                findings: Vec::new(),
                scrub: ScrubOutcome::Unsupported {
                    reason: crate::scrub::OTHER_REASON.into(),
                },
            };
        }
        let report = self.run_child(job);
        let report = match report {
            Ok(r) => r,
            Err(reason) => failed(&job.original, &reason),
        };
        // Whatever the child did, a copy stays only if it says "scrubbed".
        if !matches!(report.scrub, ScrubOutcome::Scrubbed) {
            let _ = std::fs::remove_file(&job.copy);
        }
        report
    }

    fn run_child(&self, job: &ScrubJob) -> Result<MetadataReport, String> {
        let size = std::fs::symlink_metadata(&job.original)
            .map(|m| m.len())
            .unwrap_or(0);
        let fsize = size.saturating_mul(4).saturating_add(64 * 1024 * 1024);
        let mut child = Command::new(&self.exe)
            .arg(CHILD_COMMAND)
            .arg(self.limits.memory.to_string())
            .arg(self.limits.cpu_seconds.to_string())
            .arg(fsize.to_string())
            .arg(&job.original)
            .arg(&job.copy)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("the scrubbing helper did not start ({e}); no copy was made"))?;
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut answer = Vec::new();
            if let Some(out) = stdout {
                // One byte past the limit tells "too long" from "just fits".
                let _ = out.take(MAX_ANSWER + 1).read_to_end(&mut answer);
            }
            answer
        });
        let status = wait_until(&mut child, Instant::now() + self.limits.wall);
        let answer = reader.join().unwrap_or_default();
        let status = match status {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(format!(
                    "scrubbing took longer than {} s and was stopped; no copy was made",
                    self.limits.wall.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for the scrubber failed ({e})")),
        };
        if answer.len() as u64 > MAX_ANSWER {
            return Err("the scrubber's answer was too long; no copy was made".into());
        }
        if !status.success() {
            return Err(self.why(status));
        }
        let text = std::str::from_utf8(&answer).map_err(|_| "the scrubber's answer is not text")?;
        let body = text
            .strip_prefix(HELLO)
            .and_then(|t| t.strip_prefix('\n'))
            .ok_or("the scrubber's answer is malformed")?;
        serde_json::from_str(body).map_err(|_| "the scrubber's answer is malformed".into())
    }

    /// Why a child that did not exit with success stopped.
    fn why(&self, status: ExitStatus) -> String {
        let mib = self.limits.memory / (1024 * 1024);
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            // Signal numbers as on Linux, macOS and the BSDs.
            const SIGABRT: i32 = 6;
            const SIGKILL: i32 = 9;
            const SIGSEGV: i32 = 11;
            const SIGXCPU: i32 = 24;
            const SIGXFSZ: i32 = 25;
            match status.signal() {
                Some(SIGXCPU | SIGKILL) => {
                    return format!(
                        "scrubbing used more than {} s of CPU and was stopped; no copy was made",
                        self.limits.cpu_seconds
                    );
                }
                Some(SIGXFSZ) => {
                    return "the scrubbed copy grew too large and was stopped; no copy was made"
                        .into();
                }
                Some(SIGABRT | SIGSEGV) => {
                    return format!(
                        "the file made the scrubber run out of memory (limit {mib} MiB, --scrub-memory) or crash; no copy was made"
                    );
                }
                Some(n) => {
                    return format!("the scrubber was stopped by signal {n}; no copy was made");
                }
                None => {}
            }
        }
        match status.code() {
            Some(CHILD_IO_ERROR) => {
                "the scrubber could not read or write a file; no copy was made".into()
            }
            _ => format!(
                "the file made the scrubber fail (limit {mib} MiB, --scrub-memory); no copy was made"
            ),
        }
    }
}

/// Waits for `child` until `deadline`; kills it (and returns `None`) after.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// The report for a file the scrubber could not handle.
fn failed(original: &Path, reason: &str) -> MetadataReport {
    MetadataReport {
        kind: sniff_file(original),
        findings: Vec::new(),
        scrub: ScrubOutcome::Failed {
            reason: reason.to_owned(),
        },
    }
}

/// The first 512 bytes of a file (empty if it cannot be read).
fn read_head(path: &Path) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    match std::fs::File::open(path).and_then(|f| f.take(512).read_to_end(&mut head)) {
        Ok(_) => head,
        Err(_) => Vec::new(),
    }
}

/// TIFF's byte-order marks: the one "other" kind whose EXIF the scrubber
/// reads (kamadak-exif), so it goes to a child.
fn is_tiff(head: &[u8]) -> bool {
    head.starts_with(b"II*\0") || head.starts_with(b"MM\0*")
}

/// The kind of a file from its first bytes (read in the parent: 512 bytes
/// through a fixed table, no parser).
pub(crate) fn sniff_file(path: &Path) -> FileKind {
    crate::scrub::sniff(&read_head(path))
}

/// The child's exit code when reading the original or writing the copy
/// failed (an I/O error, not a verdict on the file).
const CHILD_IO_ERROR: i32 = 3;

/// The child: `reviewer __scrub-child MEMORY CPU FSIZE ORIGINAL COPY`, or
/// `reviewer __scrub-child --probe`. Called from `main` before any
/// argument parsing.
pub fn child_main(args: &[std::ffi::OsString]) -> ExitCode {
    use std::io::Write;
    let mut stdout = io::stdout().lock();
    if args.len() == 1 && args[0] == "--probe" {
        let _ = writeln!(stdout, "{HELLO}");
        return ExitCode::SUCCESS;
    }
    let [memory, cpu, fsize, original, copy] = args else {
        return ExitCode::from(2);
    };
    let number = |s: &std::ffi::OsString| s.to_str().and_then(|s| s.parse::<u64>().ok());
    let (Some(memory), Some(cpu), Some(fsize)) = (number(memory), number(cpu), number(fsize))
    else {
        return ExitCode::from(2);
    };
    if limit_self(memory, cpu, fsize).is_err() {
        // Never scrub without the limits.
        return ExitCode::from(2);
    }
    match crate::scrub::scrub_file(Path::new(original), Path::new(copy)) {
        Ok(report) => {
            let Ok(json) = serde_json::to_string(&report) else {
                return ExitCode::from(2);
            };
            if writeln!(stdout, "{HELLO}\n{json}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::from(CHILD_IO_ERROR as u8),
    }
}

/// Lowers this process's limits (never raises one above what it inherited).
#[cfg(unix)]
fn limit_self(memory: u64, cpu: u64, fsize: u64) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lower = |resource: Resource, want: u64| -> io::Result<()> {
        let have = getrlimit(resource);
        let value = match have.maximum {
            Some(max) => want.min(max),
            None => want,
        };
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
        .map_err(io::Error::from)
    };
    lower(Resource::Core, 0)?;
    lower(Resource::As, memory)?;
    lower(Resource::Cpu, cpu)?;
    lower(Resource::Fsize, fsize)?;
    Ok(())
}

#[cfg(not(unix))]
fn limit_self(_memory: u64, _cpu: u64, _fsize: u64) -> io::Result<()> {
    Ok(())
}
