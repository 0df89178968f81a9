//! Every file in `deploy/` goes through a real parser and keeps its
//! security-relevant values:
//!
//! - `relay.example.toml` through the relay's own config parser: it refuses
//!   to load while its placeholders are there, loads once they are filled,
//!   and is not demo mode, keeps plain HTTP on loopback, and requires TLS 1.3.
//! - `relay.service` through a small unit-file reader (the hardening
//!   directives and their values) and through `systemd-analyze security
//!   --offline=true` (exposure score at most 1.5, lower with the onion-only drop-in; no
//!   directive ignored).
//! - `torrc` through a small torrc reader (the onion service points at the
//!   relay's loopback listener, with DoS defences) and through
//!   `tor --verify-config` and `tor --dump-config`.
//! - `certbot-deploy-hook` by running it (redirected to a temporary
//!   directory): it copies the certificate and key to the paths `[tls]`
//!   names, the key readable by the relay's group only, and reloads the
//!   relay only if it runs.
//!
//! `systemd-analyze` and `tor` are stock Debian tools; `scripts/test`
//! installs them. Without them these tests fail, never skip.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use relay::config::{Config, Limits, TlsVersion};

/// A well-formed v3 onion address (the Tor Project's own; its checksum is
/// valid), standing in for the one Tor writes to `hostname`.
const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

/// The score `systemd-analyze security` may give the unit at most: what
/// it gives today (it must not rise).
const MAX_EXPOSURE: f64 = 1.5;

fn deploy_file(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path, text)
}

/// Runs a stock tool, failing the test with what to do if it is missing.
fn run_tool(program: &str, package: &str, args: &[&std::ffi::OsStr]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed, so deploy/ cannot be checked. \
             scripts/test installs it (apt-get install {package}); run the tests through scripts/test"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

// --- relay.example.toml -------------------------------------------------------

const RECIPIENT_PLACEHOLDER: &str = "age1-REPLACE-WITH-A-REVIEWER-RECIPIENT";
const TOKEN_PLACEHOLDER: &str = "REPLACE-WITH-THE-LINE-relay-token-PRINTS";
const ONION_PLACEHOLDER: &str =
    "# onion_address = \"REPLACE-WITH-THE-CONTENTS-OF-/var/lib/tor/relay/hostname\"";

fn example() -> (PathBuf, String) {
    let (_, text) = deploy_file("relay.example.toml");
    // Parsed as the file the unit's ExecStart names, so relative paths
    // would resolve as they do in production.
    (PathBuf::from("/etc/relay/relay.toml"), text)
}

/// The example with its placeholders filled as an operator fills them.
struct Filled {
    path: PathBuf,
    text: String,
    recipient: String,
    token_hash: format::Digest,
}

fn filled_example() -> Filled {
    let (path, text) = example();
    let (_, recipient) = relay::seal::generate_identity(format::Day::today(), "test");
    let (_, token_hash) = relay::keys::new_api_token();
    let text = text
        .replace(RECIPIENT_PLACEHOLDER, &recipient)
        .replace(TOKEN_PLACEHOLDER, &token_hash.to_string());
    Filled {
        path,
        text,
        recipient,
        token_hash,
    }
}

#[test]
fn placeholders_stop_the_relay() {
    let (path, text) = example();
    let e = Config::parse(&path, &text).unwrap_err().to_string();
    assert!(e.contains("reviewers.recipients[0]"), "{e}");

    // With the recipient filled, the token placeholder still stops it.
    let (_, recipient) = relay::seal::generate_identity(format::Day::today(), "test");
    let e = Config::parse(&path, &text.replace(RECIPIENT_PLACEHOLDER, &recipient))
        .unwrap_err()
        .to_string();
    assert!(e.contains("api.token_sha256"), "{e}");
}

#[test]
fn filled_example_loads_with_safe_values() {
    let f = filled_example();
    let c = Config::parse(&f.path, &f.text).unwrap();
    assert!(!c.demo, "the production example must not be in demo mode");
    assert_eq!(c.recipients, [f.recipient]);
    assert_eq!(c.api_token_sha256, f.token_hash);

    // Plain HTTP for Tor only, on loopback; HTTPS for the public name.
    let onion_listen = c.onion_listen.expect("the example serves an onion service");
    assert!(onion_listen.ip().is_loopback(), "{onion_listen}");
    assert_eq!(onion_listen, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(c.listen, Some("0.0.0.0:443".parse().unwrap()));
    assert_eq!(c.tls_min_version, TlsVersion::V1_3);
    assert_eq!(
        c.tls_cert.as_deref(),
        Some(Path::new("/etc/relay/tls/fullchain.pem"))
    );
    assert_eq!(
        c.tls_key.as_deref(),
        Some(Path::new("/etc/relay/tls/privkey.pem"))
    );
    // Unknown until Tor has created the service: commented out.
    assert_eq!(c.onion_address, None);

    // The example states the defaults explicitly; keep them in step.
    assert_eq!(c.limits, Limits::default());
    assert!(c.store.cache_mib <= 64, "sled's cache must stay small");
    assert_eq!(c.form.category.len(), 5);
    assert_eq!(c.form.region.len(), 21);
    // The example ships the built-in default questionnaire verbatim.
    assert_eq!(c.form, relay::form::Form::default_form().unwrap());
}

#[test]
fn example_onion_address_line_works_once_uncommented() {
    let f = filled_example();
    assert!(
        f.text.contains(ONION_PLACEHOLDER),
        "the example's commented-out onion_address line changed; update this test"
    );
    let uncommented = ONION_PLACEHOLDER.trim_start_matches("# ");

    // Uncommented but not filled in: refused, naming the key.
    let text = f.text.replace(ONION_PLACEHOLDER, uncommented);
    let e = Config::parse(&f.path, &text).unwrap_err().to_string();
    assert!(e.contains("onion_address"), "{e}");

    // Filled in with the address from Tor's `hostname` file: loaded.
    let line = format!("onion_address = \"{ONION}\"");
    let text = f.text.replace(ONION_PLACEHOLDER, &line);
    let c = Config::parse(&f.path, &text).unwrap();
    assert_eq!(c.onion_address.as_deref(), Some(ONION));
}

#[test]
fn example_can_go_onion_only() {
    // The example's comments say: leave out `listen` and [tls] for an
    // onion-only relay.
    let f = filled_example();
    let mut text = String::new();
    let mut in_tls = false;
    for line in f.text.lines() {
        if line.starts_with('[') {
            in_tls = line == "[tls]";
        }
        if !in_tls && !line.starts_with("listen =") {
            text.push_str(line);
            text.push('\n');
        }
    }
    let c = Config::parse(&f.path, &text).unwrap();
    assert_eq!(c.listen, None, "no HTTPS listener without `listen`");
    assert_eq!(c.onion_listen, Some("127.0.0.1:8081".parse().unwrap()));
}

#[test]
fn every_example_key_is_explained() {
    // Each `key = value` line (and the commented-out `onion_address`) is
    // preceded by a comment, directly or through the keys just above it
    // that share the comment (`cert` and `key`).
    let (_, text) = example();
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |l: &str| {
        !l.starts_with('#')
            && l.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
    };
    let mut keys = 0;
    // The questionnaire's tables ([form.help], [[form.category]],
    // [[form.region]]) are data, explained once by the comment above [form].
    let mut in_form_data = false;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('[') {
            in_form_data = line.starts_with("[form.") || line.starts_with("[[form.");
        }
        if in_form_data || (!is_key(line) && *line != ONION_PLACEHOLDER) {
            continue;
        }
        keys += 1;
        let before = lines[..i]
            .iter()
            .rev()
            .find(|l| !is_key(l))
            .copied()
            .unwrap_or("");
        assert!(
            before.starts_with('#'),
            "deploy/relay.example.toml: `{line}` has no comment saying what it does"
        );
    }
    // demo, listen, onion_listen, onion_address, tls (3), reviewers (2),
    // api, limits (10), form (2), store (3), followup (7).
    assert_eq!(
        keys, 32,
        "a key was added or removed: explain it and update this count"
    );
}

// --- relay.service --------------------------------------------------------------

/// A systemd unit file as `(section, key) -> values`, in order. An empty
/// assignment resets the list, as systemd does.
#[derive(Debug, Default)]
struct Unit {
    entries: Vec<(String, String, Vec<String>)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut unit = Unit::default();
        let mut section = String::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
                continue;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("relay.service: not `Key=value`: {line}"));
            let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
            let slot = match unit
                .entries
                .iter_mut()
                .find(|(s, k, _)| *s == section && *k == key)
            {
                Some((_, _, values)) => values,
                None => {
                    unit.entries.push((section.clone(), key, Vec::new()));
                    &mut unit.entries.last_mut().unwrap().2
                }
            };
            if value.is_empty() {
                slot.clear();
            } else {
                slot.push(value);
            }
        }
        unit
    }

    fn all(&self, key: &str) -> &[String] {
        self.entries
            .iter()
            .find(|(s, k, _)| s == "Service" && k == key)
            .map_or(&[], |(_, _, v)| v.as_slice())
    }

    /// The one value of `[Service] key`.
    fn get(&self, key: &str) -> &str {
        match self.all(key) {
            [v] => v,
            [] => panic!("relay.service: `{key}=` is missing"),
            many => panic!("relay.service: `{key}=` is set {} times", many.len()),
        }
    }

    /// The space-separated words of every `[Service] key` line.
    fn words(&self, key: &str) -> BTreeSet<&str> {
        self.all(key)
            .iter()
            .flat_map(|v| v.split_whitespace())
            .collect()
    }
}

fn unit() -> Unit {
    Unit::parse(&deploy_file("relay.service").1)
}

fn yes(v: &str) -> bool {
    matches!(v, "yes" | "true" | "on" | "1")
}

#[test]
fn unit_runs_the_relay_as_deployed() {
    let u = unit();
    assert_eq!(
        u.get("ExecStart"),
        "/usr/bin/relay serve --data /var/lib/relay --config /etc/relay/relay.toml"
    );
    // The data dir is the state dir systemd creates 0700 and makes writable;
    // the config lives in the configuration dir.
    assert_eq!(u.get("StateDirectory"), "relay");
    assert_eq!(u.get("StateDirectoryMode"), "0700");
    assert_eq!(u.get("ConfigurationDirectory"), "relay");
    // SIGHUP reloads the TLS certificate; SIGTERM stops gracefully, and the
    // stop timeout leaves the relay's 30 s grace period room to finish.
    assert_eq!(u.get("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(u.get("KillSignal"), "SIGTERM");
    let stop: u32 = u.get("TimeoutStopSec").parse().unwrap();
    assert!((35..=90).contains(&stop), "TimeoutStopSec={stop}");
    assert_eq!(u.get("Restart"), "on-failure");
    // Output goes to the journal only: no file or console redirect.
    for key in ["StandardOutput", "StandardError"] {
        assert!(u.all(key).is_empty(), "relay.service must not set {key}=");
    }
    assert!(
        !u.all("Environment")
            .iter()
            .any(|e| e.contains("RUST_LOG") && (e.contains("debug") || e.contains("trace"))),
        "no debug logging in production"
    );
}

#[test]
fn unit_is_sandboxed() {
    let u = unit();

    // Not root: a dedicated user or a dynamic one.
    let dynamic = u.all("DynamicUser").iter().any(|v| yes(v));
    if !dynamic {
        let user = u.get("User");
        assert!(!matches!(user, "root" | "0"), "User={user}");
    }

    // Only the state directory is writable; the OS is read-only.
    assert_eq!(u.get("ProtectSystem"), "strict");
    for rw in u.words("ReadWritePaths") {
        assert_eq!(
            rw, "/var/lib/relay",
            "ReadWritePaths may only hold the data dir"
        );
    }
    for key in [
        "PrivateTmp",
        "PrivateDevices",
        "ProtectHome",
        "NoNewPrivileges",
        "MemoryDenyWriteExecute",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
    ] {
        assert!(yes(u.get(key)), "relay.service: {key}= must be yes");
    }
    assert_eq!(u.get("ProtectProc"), "invisible");
    assert_eq!(u.get("ProcSubset"), "pid");
    assert_eq!(u.get("UMask"), "0077");
    // No core dumps: relay memory holds plaintext of uploads in flight.
    assert_eq!(u.get("LimitCORE"), "0");

    // At most the capability to bind port 443, and nothing can gain more.
    let allowed = BTreeSet::from(["CAP_NET_BIND_SERVICE"]);
    let bounding = u.words("CapabilityBoundingSet");
    assert!(
        !u.all("CapabilityBoundingSet").is_empty() && bounding.is_subset(&allowed),
        "CapabilityBoundingSet={bounding:?}"
    );
    let ambient = u.words("AmbientCapabilities");
    assert!(
        ambient.is_subset(&bounding),
        "AmbientCapabilities={ambient:?}"
    );

    assert_eq!(
        u.words("RestrictAddressFamilies"),
        BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"])
    );

    // Never swapped (plaintext in flight), and capped below the host.
    assert_eq!(u.get("MemorySwapMax"), "0");
    let mib = |v: &str| -> u64 {
        let (n, unit) = v.split_at(v.len() - 1);
        n.parse::<u64>().unwrap()
            * match unit {
                "M" => 1,
                "G" => 1024,
                other => panic!("memory size unit {other} in {v}"),
            }
    };
    let (high, max) = (mib(u.get("MemoryHigh")), mib(u.get("MemoryMax")));
    assert!(
        high < max && max <= 768,
        "a 1 GB VPS keeps room: MemoryHigh={high}M MemoryMax={max}M"
    );
    // Room for every connection the example config allows (an open file
    // each) and the store's own files.
    let nofile: usize = u.get("LimitNOFILE").parse().unwrap();
    assert!(
        nofile >= relay::config::Limits::default().max_connections * 2,
        "LimitNOFILE={nofile}"
    );
    // Its two ports only: the example's `listen` and `onion_listen`.
    assert_eq!(u.get("SocketBindDeny"), "any");
    assert_eq!(
        u.all("SocketBindAllow")
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["tcp:443", "tcp:8081"])
    );
    let (_, example) = example();
    for (key, port) in [("listen", "443"), ("onion_listen", "8081")] {
        assert!(
            example
                .lines()
                .any(|l| l.starts_with(&format!("{key} = ")) && l.contains(&format!(":{port}\""))),
            "the example's {key} is not on port {port}: change SocketBindAllow= with it"
        );
    }
    // Nothing is executed but the relay, its libraries and ExecReload's kill.
    assert_eq!(u.get("NoExecPaths"), "/");
    let exec = u.words("ExecPaths");
    for cmd in ["ExecStart", "ExecReload"] {
        let program = u.get(cmd).split_whitespace().next().unwrap();
        assert!(
            exec.contains(program),
            "{cmd}'s {program} is not in ExecPaths={exec:?}"
        );
    }
    assert_eq!(u.get("SystemCallArchitectures"), "native");

    // An allow list (the first line decides), with privileged calls taken
    // out again, and setrlimit kept for RLIMIT_CORE.
    let filters = u.all("SystemCallFilter");
    assert_eq!(filters.first().map(String::as_str), Some("@system-service"));
    let denied: BTreeSet<&str> = filters
        .iter()
        .filter_map(|f| f.strip_prefix('~'))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(denied.contains("@privileged"), "{filters:?}");
    let after_deny = filters
        .iter()
        .skip_while(|f| !f.starts_with('~'))
        .filter(|f| !f.starts_with('~'))
        .flat_map(|f| f.split_whitespace())
        .collect::<BTreeSet<_>>();
    if denied.contains("@resources") {
        assert!(
            after_deny.contains("setrlimit"),
            "the relay sets RLIMIT_CORE: re-allow setrlimit after ~@resources"
        );
    }
}

#[test]
fn unit_exposure_does_not_rise() {
    let score = exposure(false);
    assert!(
        score <= MAX_EXPOSURE,
        "relay.service exposure {score} > {MAX_EXPOSURE}"
    );
}

#[test]
fn the_onion_only_drop_in_refuses_every_non_loopback_packet_and_lowers_exposure() {
    let (_, text) = deploy_file("relay-onion-only.conf");
    let d = Unit::parse(&text);
    assert_eq!(d.get("IPAddressDeny"), "any");
    assert_eq!(d.get("IPAddressAllow"), "localhost");
    // It resets the unit's SocketBindAllow= (an empty line) to the onion
    // port alone.
    assert!(text.contains("\nSocketBindAllow=\n"), "{text}");
    assert_eq!(d.all("SocketBindAllow"), ["tcp:8081"]);
    let (unit, with) = (exposure(false), exposure(true));
    assert!(
        with < unit,
        "the drop-in does not lower the exposure: {with} vs {unit}"
    );
}

/// `systemd-analyze security` of the unit as written, with the onion-only
/// drop-in when `onion_only`.
fn exposure(onion_only: bool) -> f64 {
    if onion_only {
        exposure_with(&[("relay-onion-only.conf", "onion-only.conf")])
    } else {
        exposure_with(&[])
    }
}

/// The API drop-in adds its port after the onion-only one resets the list:
/// drop-ins apply in file-name order, so the names the README installs
/// them under must sort that way. systemd loads the unit with both (no
/// directive ignored), and the exposure stays what the onion-only drop-in
/// gives.
#[test]
fn the_api_drop_in_adds_its_port_after_the_onion_only_reset() {
    let (_, text) = deploy_file("relay-api-onion.conf");
    let d = Unit::parse(&text);
    assert_eq!(d.all("SocketBindAllow"), ["tcp:8082"]);
    assert!(
        !text.contains("\nSocketBindAllow=\n"),
        "it must not reset the list"
    );
    let readme = readme();
    for installed in [
        "/etc/systemd/system/relay.service.d/onion-only.conf",
        "/etc/systemd/system/relay.service.d/reviewer-api.conf",
    ] {
        assert!(
            readme.contains(installed),
            "README does not install {installed}"
        );
    }
    assert!("onion-only.conf" < "reviewer-api.conf");
    // The port is the example's commented `[api] listen`, and torrc-api's.
    let api = example_api_listen();
    assert_eq!(format!("tcp:{}", api.port()), "tcp:8082");
    let both = exposure_with(&[
        ("relay-onion-only.conf", "onion-only.conf"),
        ("relay-api-onion.conf", "reviewer-api.conf"),
    ]);
    assert!(both <= exposure(true), "{both}");
}

/// The example's `[api] listen`, uncommented as an operator would.
fn example_api_listen() -> SocketAddr {
    let f = filled_example();
    let commented = "# listen = \"127.0.0.1:8082\"";
    assert!(
        f.text.contains(commented),
        "the example's [api] has no {commented}"
    );
    let text = f.text.replace(commented, "listen = \"127.0.0.1:8082\"");
    Config::parse(&f.path, &text).unwrap().api_listen.unwrap()
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// `systemd-analyze security` of the unit with these drop-ins (deploy/
/// file, name under relay.service.d/).
fn exposure_with(drop_ins: &[(&str, &str)]) -> f64 {
    // `--root` with a copy of the unit in a temporary tree: the score is the
    // file's own, whatever drop-ins this machine has for relay.service.
    let (path, text) = deploy_file("relay.service");
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(units.join("relay.service.d")).unwrap();
    std::fs::write(units.join("relay.service"), &text).unwrap();
    for (file, name) in drop_ins {
        let (_, dropin) = deploy_file(file);
        std::fs::write(units.join("relay.service.d").join(name), dropin).unwrap();
    }
    let mut root_arg = std::ffi::OsString::from("--root=");
    root_arg.push(root.path());
    let out = run_tool(
        "systemd-analyze",
        "systemd",
        &[
            "security".as_ref(),
            "--offline=true".as_ref(),
            "--no-pager".as_ref(),
            &root_arg,
            "relay.service".as_ref(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze security failed on {}:\n{stderr}{stdout}",
        path.display()
    );
    // A misspelt or invalid directive is ignored with a warning: then the
    // score would not describe the unit as written.
    assert!(
        !stderr.contains("ignoring") && !stderr.contains("Unknown"),
        "systemd ignores part of {}:\n{stderr}",
        path.display()
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level for relay.service:"))
        .unwrap_or_else(|| panic!("no overall exposure line in:\n{stdout}"));
    let score: f64 = line
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    score
}

// --- certbot-deploy-hook ---------------------------------------------------------

#[test]
fn certbot_hook_installs_what_the_example_config_reads() {
    use std::os::unix::fs::PermissionsExt as _;

    let (path, text) = deploy_file("certbot-deploy-hook");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "certbot-deploy-hook must be executable");
    assert!(
        text.contains("dir=/etc/relay/tls\n"),
        "the hook's target changed"
    );
    let f = filled_example();
    let c = Config::parse(&f.path, &f.text).unwrap();
    assert_eq!(
        c.tls_cert.as_deref(),
        Some(Path::new("/etc/relay/tls/fullchain.pem"))
    );
    assert_eq!(
        c.tls_key.as_deref(),
        Some(Path::new("/etc/relay/tls/privkey.pem"))
    );
    // The key is readable by the group the unit runs the relay as.
    let group = unit().get("Group").to_owned();
    assert!(text.contains(&format!("-o root -g {group}")), "{text}");

    // Run it for real, with its target and owner redirected to a temporary
    // directory and `systemctl` replaced by a recorder.
    let tmp = tempfile::tempdir().unwrap();
    let lineage = tmp.path().join("live/relay.example.org");
    std::fs::create_dir_all(&lineage).unwrap();
    std::fs::write(lineage.join("fullchain.pem"), "CHAIN").unwrap();
    std::fs::write(lineage.join("privkey.pem"), "KEY").unwrap();
    let target = tmp.path().join("tls");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = tmp.path().join("systemctl.calls");
    let fake = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" != is-active ] || exit \"$FAKE_ACTIVE\"\n",
        calls.display()
    );
    std::fs::write(bin.join("systemctl"), fake).unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let script = tmp.path().join("hook");
    let redirected = text
        .replace("dir=/etc/relay/tls", &format!("dir='{}'", target.display()))
        .replace(&format!(" -o root -g {group}"), "");
    std::fs::write(&script, redirected).unwrap();
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |active: &str| {
        let out = Command::new("sh")
            .arg(&script)
            .env("RENEWED_LINEAGE", &lineage)
            .env("PATH", &path_var)
            .env("FAKE_ACTIVE", active)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the hook failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    run("3"); // relay not running: copy only
    let mode = |name: &str| {
        std::fs::metadata(target.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        std::fs::read_to_string(target.join("fullchain.pem")).unwrap(),
        "CHAIN"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("privkey.pem")).unwrap(),
        "KEY"
    );
    assert_eq!(
        mode("privkey.pem"),
        0o640,
        "the key is for root and group relay only"
    );
    assert_eq!(mode("fullchain.pem"), 0o644);
    assert_eq!(mode(""), 0o750);
    let mut left: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["fullchain.pem", "privkey.pem"],
        "no temporary files left"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "is-active --quiet relay.service\n"
    );

    std::fs::write(lineage.join("privkey.pem"), "NEW KEY").unwrap();
    run("0"); // relay running: copy, then SIGHUP through systemd
    assert_eq!(
        std::fs::read_to_string(target.join("privkey.pem")).unwrap(),
        "NEW KEY"
    );
    assert!(
        std::fs::read_to_string(&calls)
            .unwrap()
            .ends_with("is-active --quiet relay.service\nreload relay.service\n")
    );
}

// --- torrc ----------------------------------------------------------------------

/// A torrc as `(keyword, value)` lines; tor's keywords are case-insensitive.
fn torrc_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (k.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect()
}

fn torrc_values<'a>(lines: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    let key = key.to_ascii_lowercase();
    lines
        .iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The one value of `key`.
fn torrc_one<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    match torrc_values(lines, key)[..] {
        [v] => v,
        ref vs => panic!("torrc: expected one `{key}`, found {vs:?}"),
    }
}

#[test]
fn torrc_publishes_the_loopback_listener_with_dos_defences() {
    let (_, text) = deploy_file("torrc");
    let lines = torrc_lines(&text);
    // Tor's own seccomp sandbox.
    assert_eq!(torrc_one(&lines, "Sandbox"), "1");
    let one = |key: &str| torrc_one(&lines, key);

    assert_eq!(one("HiddenServiceDir"), "/var/lib/tor/relay/");
    assert_eq!(one("HiddenServiceVersion"), "3");
    // The only port, onion port 80, goes to the relay's `onion_listen`.
    let port = one("HiddenServicePort");
    let (virtual_port, target) = port.split_once(' ').unwrap();
    assert_eq!(virtual_port, "80");
    let target: SocketAddr = target.trim().parse().unwrap();
    assert!(target.ip().is_loopback(), "{target}");
    let f = filled_example();
    let c = Config::parse(&f.path, &f.text).unwrap();
    assert_eq!(
        Some(target),
        c.onion_listen,
        "torrc and relay.example.toml disagree"
    );

    // DoS defences: proof of work, intro-point rate limits, stream caps.
    assert_eq!(one("HiddenServicePoWDefensesEnabled"), "1");
    assert_eq!(one("HiddenServiceEnableIntroDoSDefense"), "1");
    let streams: u32 = one("HiddenServiceMaxStreams").parse().unwrap();
    assert!(
        (1..=100).contains(&streams),
        "HiddenServiceMaxStreams {streams}"
    );
    assert_eq!(one("HiddenServiceMaxStreamsCloseCircuit"), "1");

    // Publishing only, and anonymously.
    assert_eq!(one("SocksPort"), "0");
    assert_eq!(one("HiddenServiceNonAnonymousMode"), "0");
    assert_eq!(one("HiddenServiceSingleHopMode"), "0");
    for key in [
        "ORPort",
        "DirPort",
        "ExitRelay",
        "ControlPort",
        "HiddenServiceExportCircuitID",
    ] {
        assert!(
            torrc_values(&lines, key).is_empty(),
            "torrc must not set {key}"
        );
    }
}

/// `tor COMMAND…` on `torrc` alone (no system-wide torrc-defaults: only
/// this file counts), with its DataDirectory at `data`.
fn tor_on(torrc: &Path, data: &Path, command: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = command.iter().map(|a| a.as_ref()).collect();
    args.extend::<[&std::ffi::OsStr; 6]>([
        "--defaults-torrc".as_ref(),
        "/dev/null".as_ref(),
        "-f".as_ref(),
        torrc.as_os_str(),
        "--DataDirectory".as_ref(),
        data.as_os_str(),
    ]);
    run_tool("tor", "tor", &args)
}

#[test]
fn tor_accepts_the_torrc() {
    // The real HiddenServiceDir belongs to the debian-tor user; point it and
    // the DataDirectory at a temporary directory so this runs as any user.
    let (_, text) = deploy_file("torrc");
    let tmp = tempfile::tempdir().unwrap();
    let hs_dir = format!("{}/", tmp.path().join("hs").display());
    let copy = text.replace(
        "HiddenServiceDir /var/lib/tor/relay/",
        &format!("HiddenServiceDir {hs_dir}"),
    );
    assert_ne!(copy, text, "HiddenServiceDir line not found");
    let torrc = tmp.path().join("torrc");
    std::fs::write(&torrc, &copy).unwrap();
    let data = tmp.path().join("data");
    let tor = |command: &[&str]| tor_on(&torrc, &data, command);

    let out = tor(&["--verify-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Configuration was valid"),
        "tor --verify-config refused deploy/torrc:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What tor itself makes of the file.
    let out = tor(&["--dump-config", "full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = String::from_utf8_lossy(&out.stdout);
    let effective = torrc_lines(&dumped);
    for (key, value) in [
        ("SocksPort", "0"),
        ("HiddenServicePort", "80 127.0.0.1:8081"),
        ("HiddenServicePoWDefensesEnabled", "1"),
        ("HiddenServiceEnableIntroDoSDefense", "1"),
        ("HiddenServiceMaxStreamsCloseCircuit", "1"),
        ("HiddenServiceNonAnonymousMode", "0"),
    ] {
        assert_eq!(
            torrc_values(&effective, key),
            [value],
            "tor reads {key} differently:\n{dumped}"
        );
    }
    assert_eq!(
        torrc_values(&effective, "HiddenServiceDir"),
        [hs_dir.as_str()]
    );
}

/// deploy/torrc-api beside deploy/torrc, as the README installs them (two
/// files of /etc/tor/torrc.d): tor accepts them together and reads two
/// services, the API's on the example's `[api] listen`.
#[test]
fn tor_accepts_the_api_service_beside_the_relays() {
    let (_, main) = deploy_file("torrc");
    let (_, api) = deploy_file("torrc-api");
    let lines = torrc_lines(&api);
    let target: SocketAddr = torrc_one(&lines, "HiddenServicePort")
        .strip_prefix("80 ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(target.ip().is_loopback(), "{target}");
    assert_eq!(
        Some(target),
        Some(example_api_listen()),
        "torrc-api and the example disagree"
    );
    // Options that belong to the whole tor stay in torrc, set once (the
    // anonymity of every service among them).
    for key in [
        "SocksPort",
        "Sandbox",
        "ControlPort",
        "ORPort",
        "HiddenServiceNonAnonymousMode",
        "HiddenServiceSingleHopMode",
    ] {
        assert!(
            torrc_values(&lines, key).is_empty(),
            "torrc-api must not set {key}"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let hs = format!("{}/", tmp.path().join("hs").display());
    let hs_api = format!("{}/", tmp.path().join("hs-api").display());
    let joined = format!(
        "{}\n{}",
        main.replace(
            "HiddenServiceDir /var/lib/tor/relay/",
            &format!("HiddenServiceDir {hs}")
        ),
        api.replace(
            "HiddenServiceDir /var/lib/tor/relay-api/",
            &format!("HiddenServiceDir {hs_api}")
        )
    );
    assert_eq!(
        joined.matches(&*tmp.path().display().to_string()).count(),
        2
    );
    let torrc = tmp.path().join("torrc");
    std::fs::write(&torrc, &joined).unwrap();
    let data = tmp.path().join("data");
    let tor = |command: &[&str]| tor_on(&torrc, &data, command);
    let out = tor(&["--verify-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // No warning either (an option set twice is one), but the one about
    // running as root, which CI does.
    let warned = stdout
        .lines()
        .any(|l| l.contains("[warn]") && !l.contains("running Tor as root"));
    assert!(
        out.status.success() && stdout.contains("Configuration was valid") && !warned,
        "tor --verify-config refused deploy/torrc + torrc-api:\n{stdout}"
    );
    let out = tor(&["--dump-config", "full"]);
    let dumped = String::from_utf8_lossy(&out.stdout);
    let effective = torrc_lines(&dumped);
    assert_eq!(
        torrc_values(&effective, "HiddenServiceDir"),
        [hs.as_str(), hs_api.as_str()]
    );
    assert_eq!(
        torrc_values(&effective, "HiddenServicePort"),
        ["80 127.0.0.1:8081", "80 127.0.0.1:8082"],
        "{dumped}"
    );
}

// --- onionbalance/ --------------------------------------------------------------

/// Several relays behind one onion address, through deploy/onionbalance/check:
/// Onionbalance's own config loader on config.yaml, and `tor --verify-config`
/// on deploy/torrc + torrc-backend (ob_config in place) and on torrc-frontend,
/// each refusing its placeholders first.
#[test]
fn onionbalance_files_pass_their_check() {
    let (check, _) = deploy_file("onionbalance/check");
    let out = Command::new(&check)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", check.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "deploy/onionbalance/check needs onionbalance and tor. scripts/test installs them \
         (apt-get install onionbalance tor); run the tests through scripts/test:\n{stderr}"
    );
    assert!(
        out.status.success(),
        "deploy/onionbalance/check failed:\n{stdout}{stderr}"
    );
    // Every check printed its line: one that silently stopped running fails here.
    for what in [
        "config.yaml as shipped: Onionbalance refuses it",
        "config.yaml filled: Onionbalance loads frontend",
        "config.yaml with the frontend as an instance: refused",
        "config.yaml with a mistyped address: refused",
        "ob_config: one MasterOnionAddress line",
        "tor --verify-config accepts deploy/torrc + torrc-backend",
        "tor refuses ob_config with its placeholder",
        "tor refuses torrc-backend read before relay.conf",
        "tor --verify-config accepts torrc-frontend",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("ok: {what}"))),
            "no `ok: {what}` line in:\n{stdout}"
        );
    }
}

#[test]
fn onionbalance_fragments_keep_the_relays_settings() {
    // Each relay: one line, nothing that changes deploy/torrc's service or opens a port.
    let (_, backend) = deploy_file("onionbalance/torrc-backend");
    let lines = torrc_lines(&backend);
    assert_eq!(
        lines,
        [(
            "hiddenserviceonionbalanceinstance".to_owned(),
            "1".to_owned()
        )],
        "torrc-backend must hold only HiddenServiceOnionbalanceInstance 1"
    );
    let (_, ob) = deploy_file("onionbalance/ob_config");
    assert_eq!(
        torrc_lines(&ob),
        [(
            "masteronionaddress".to_owned(),
            "REPLACE-WITH-THE-FRONTEND-ONION-ADDRESS.onion".to_owned()
        )]
    );
    // The frontend: a control socket with cookie auth; no TCP control port,
    // no SOCKS port, no onion service of its own.
    let (_, frontend) = deploy_file("onionbalance/torrc-frontend");
    let lines = torrc_lines(&frontend);
    let one = |key: &str| torrc_one(&lines, key);
    assert_eq!(one("SocksPort"), "0");
    assert!(
        one("ControlSocket").starts_with("/run/tor/control "),
        "{}",
        one("ControlSocket")
    );
    assert_eq!(one("CookieAuthentication"), "1");
    assert_eq!(one("CookieAuthFileGroupReadable"), "1");
    for key in [
        "ControlPort",
        "HiddenServiceDir",
        "ORPort",
        "DirPort",
        "ExitRelay",
    ] {
        assert!(
            torrc_values(&lines, key).is_empty(),
            "torrc-frontend must not set {key}"
        );
    }
}

/// The Debian package's assets (`[package.metadata.deb]` of the relay's
/// Cargo.toml), as (source relative to the crate, installed path).
fn package_assets() -> Vec<(String, String, String)> {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let s = |i: usize| a[i].as_str().unwrap().to_owned();
            (s(0), format!("/{}", s(1)), s(2))
        })
        .collect()
}

#[test]
fn the_package_ships_every_deploy_file_where_the_readme_and_the_unit_look() {
    let assets = package_assets();
    let installed: BTreeSet<&str> = assets.iter().map(|(_, to, _)| to.as_str()).collect();
    // Every operator-facing file of deploy/ is in the package.
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            continue; // debian/ (maintainer scripts), onionbalance/ (its own README)
        }
        assert!(
            assets
                .iter()
                .any(|(from, _, _)| from == &format!("../../deploy/{name}")),
            "deploy/{name} is not in [package.metadata.deb] assets"
        );
    }
    // The unit starts the binary where the package puts it, and may execute it.
    let unit = unit();
    let exec = unit.get("ExecStart");
    let binary = exec.split_whitespace().next().unwrap();
    assert!(
        installed.contains(binary),
        "ExecStart runs {binary}, which the package does not install"
    );
    assert!(
        unit.get("ExecPaths")
            .split_whitespace()
            .any(|p| p == binary),
        "ExecPaths does not allow {binary}"
    );
    assert!(installed.contains("/lib/systemd/system/relay.service"));
    // Every packaged path the README's "Deploying" names exists in the package.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let mut named = 0;
    for (i, _) in readme.match_indices("/usr/share/submission-relay/") {
        let path: String = readme[i..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '`' && *c != ')')
            .collect();
        assert!(
            installed.contains(path.as_str()),
            "README names {path}, which the package does not install"
        );
        named += 1;
    }
    assert!(
        named >= 5,
        "README's Deploying names only {named} packaged files"
    );
    // Nothing in /etc/relay or /var/lib/relay: the operator's config and the
    // store are never dpkg's to replace or remove.
    for to in &installed {
        assert!(
            !to.starts_with("/etc/relay") && !to.starts_with("/var/lib/relay"),
            "the package ships {to}"
        );
    }
    // The maintainer scripts create the user the unit runs as, as the unit names it.
    let postinst = std::fs::read_to_string(deploy.join("debian/postinst")).unwrap();
    assert!(
        postinst.contains("useradd --system")
            && postinst.contains("--home-dir /var/lib/relay")
            && postinst.contains(&format!(" {}\n", unit.get("User"))),
        "postinst does not create the unit's User= with home /var/lib/relay"
    );
    let postrm = std::fs::read_to_string(deploy.join("debian/postrm")).unwrap();
    assert!(
        !postrm.contains("rm "),
        "postrm must never delete the store or the config"
    );
}
