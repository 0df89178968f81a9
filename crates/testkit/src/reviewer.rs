//! `reviewer` command lines, and the `reviewer` binary to run them with.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A `reviewer` command line, built flag by flag: run it in-process with
/// `reviewer::run(cmd.argv())` or as the binary with [`ReviewerCmd::output`].
///
/// ```text
/// let open = ReviewerCmd::open([&batch])
///     .identity(&key)
///     .relay_key(&relay_key)
///     .out(&out);
/// reviewer::run(open.argv())?;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReviewerCmd {
    args: Vec<OsString>,
}

impl ReviewerCmd {
    /// `reviewer ARGS…`: a command and its arguments, in order.
    pub fn new<A: AsRef<OsStr>>(args: impl IntoIterator<Item = A>) -> Self {
        Self::default().args(args)
    }

    /// `reviewer open BATCH…`; add the flags with the methods below.
    pub fn open<B: AsRef<OsStr>>(batches: impl IntoIterator<Item = B>) -> Self {
        Self::new(["open"]).args(batches)
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// `--identity FILE` (once per key epoch).
    pub fn identity(self, file: impl AsRef<OsStr>) -> Self {
        self.arg("--identity").arg(file)
    }

    /// `--relay-key KEY`: the relay's public key, or a file holding it.
    pub fn relay_key(self, key: impl AsRef<OsStr>) -> Self {
        self.arg("--relay-key").arg(key)
    }

    /// `--out DIR`.
    pub fn out(self, dir: impl AsRef<OsStr>) -> Self {
        self.arg("--out").arg(dir)
    }

    /// The arguments after the program name.
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The whole argument vector for `reviewer::run`: the program name,
    /// the arguments, and `--scrub-helper` naming [`reviewer_bin`]. A test
    /// binary is no reviewer, so `open` could not run itself as the
    /// scrubbing child it starts for each attachment.
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv = vec![OsString::from("reviewer")];
        argv.extend(self.args.iter().cloned());
        argv.push("--scrub-helper".into());
        argv.push(reviewer_bin().into());
        argv
    }

    /// The `reviewer` binary with these arguments, with no terminal on its
    /// standard input (and no `REVIEWER_STATE_DIR`, which older reviewers
    /// read).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(reviewer_bin());
        cmd.args(&self.args)
            .env_remove("REVIEWER_STATE_DIR")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs [`ReviewerCmd::command`] to completion.
    pub fn output(&self) -> Output {
        self.command().output().unwrap()
    }
}

/// The `reviewer` binary of this build: `target/<profile>/reviewer`, beside
/// the `deps/` directory the running test binary is in.
///
/// `cargo test --workspace` (or `-p reviewer`) builds it before any test
/// runs. `cargo test -p e2e` alone does not (cargo builds the binaries of
/// the packages under test only), yet the end-to-end tests need it as the
/// scrubbing child of `reviewer open`. So under cargo (`$CARGO` set), or
/// if it is missing, the first call builds it (a no-op when it is up to
/// date; without it, `cargo test -p relay` after a change to the reviewer
/// would run a stale one), once per test process (a `OnceLock`; cargo's own lock keeps
/// two processes apart), with `cargo build --locked -p reviewer --bin
/// reviewer` into the same target directory and profile. The package under
/// test is named too, so that the dependencies resolve with the features the
/// test build used and are reused, not rebuilt. (Chosen over a copy of the
/// reviewer's `main` in the e2e package, a second binary to link on every
/// build, and over cargo's artifact dependencies, which are unstable.)
pub fn reviewer_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test>-<hash> -> target/<profile>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()))
            .to_owned();
        let bin = profile_dir.join(format!("reviewer{}", std::env::consts::EXE_SUFFIX));
        if std::env::var_os("CARGO").is_some() || !bin.is_file() {
            build_reviewer(&profile_dir);
        }
        assert!(
            bin.is_file(),
            "{} is missing: build it with `cargo build -p reviewer --bin reviewer`, or run \
             the tests with `cargo test --workspace`",
            bin.display()
        );
        bin
    })
}

/// `cargo build --locked -p reviewer --bin reviewer` into the target
/// directory and profile `profile_dir` belongs to.
fn build_reviewer(profile_dir: &Path) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--locked", "--bin", "reviewer", "-p", "reviewer"]);
    // Cargo sets CARGO_PKG_NAME for the test binaries it runs.
    if let Some(package) = std::env::var_os("CARGO_PKG_NAME")
        && package != "reviewer"
    {
        cmd.arg("-p").arg(package);
    }
    match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    cmd.arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    eprintln!("testkit: building the reviewer binary ({cmd:?})");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&cargo).display()));
    assert!(status.success(), "{cmd:?} failed: {status}");
}
