//! The online commands: `fetch`, `ack` and `push` (no identity needed),
//! and `onion-auth`, the Tor client key they use to reach the API's own
//! onion service.

use super::*;

pub(super) const FETCH_EXAMPLES: &str = "\
Examples:
  # Online machine, no identity needed: save every new batch
  reviewer fetch --relay https://relay.example.org --token-file reviewer.token --out batches

  # A relay with a self-signed certificate: pin it
  reviewer fetch --relay https://127.0.0.1:8443 --token-file api.token --tls-cert cert.pem --out batches

  # Download batch 7 again (a copy in batches/ that is cut off or damaged is replaced)
  reviewer fetch --relay https://relay.example.org --token-file reviewer.token --out batches --batch 7

  # The API's own onion service, through the Tor daemon (README: The reviewer API over Tor)
  reviewer fetch --relay http://ADDRESS.onion --proxy socks5h://127.0.0.1:9050 --token-file reviewer.token --out batches

A copy in --out that is not whole is always downloaded again and replaced.
Carry the batches to the offline machine and run `reviewer open`.";

pub(super) const ACK_EXAMPLES: &str = "\
Examples:
  # Online: the relay deletes what the receipts say you hold
  reviewer ack ~/cases/receipts/*.json --relay https://relay.example.org --token-file reviewer.token

A receipt acknowledged before is reported as such: running the same command
again is safe.";

pub(super) const PUSH_EXAMPLES: &str = "\
Examples:
  # Online: upload the bundles `reviewer reply` wrote
  reviewer push reply-1.json reply-2.json --relay https://relay.example.org --token-file reviewer.token

  # A relay with a self-signed certificate: pin it
  reviewer push reply-1.json --relay https://127.0.0.1:8443 --token-file api.token --tls-cert cert.pem

With no network path to the relay, the operator imports the bundle instead,
with the relay stopped:
  relay import-replies --data /var/lib/relay reply-1.json";

pub(super) const ONION_AUTH_EXAMPLES: &str = "\
Examples:
  # On the online machine: a key for the API's onion service (its address is
  # /var/lib/tor/relay-api/hostname on the relay host)
  reviewer onion-auth --onion ADDRESS.onion --out alice.auth_private

Writes alice.auth_private (secret: for this computer's tor) and alice.auth
(public: for the relay host). Then:
  - here: put alice.auth_private in the directory `ClientOnionAuthDir` names
    in torrc (e.g. /var/lib/tor/onion-auth, owned by tor's user, mode 0700)
    and restart tor; Tor Browser instead asks for the key (the part after
    the last colon) when it first opens the address;
  - the operator: copies alice.auth into
    /var/lib/tor/relay-api/authorized_clients/ and restarts tor.
Then fetch, ack and push take --relay http://ADDRESS.onion --proxy socks5h://127.0.0.1:9050.
To revoke a key, the operator deletes its .auth file and restarts tor.";

#[derive(Debug, Args)]
pub(super) struct OnionAuthArgs {
    /// The API onion service's address (…onion), from its hostname file.
    #[arg(long, value_name = "ADDRESS")]
    onion: String,
    /// The private key file to write: NAME.auth_private (never
    /// overwritten); the public NAME.auth is written beside it.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(super) fn onion_auth_cmd(a: OnionAuthArgs) -> Result<(), Error> {
    let key = crate::onion::new_client_key(&a.onion, &a.out)?;
    out_line(&key.public_line);
    let _ = writeln!(
        std::io::stderr().lock(),
        "reviewer: wrote {} (secret: for this computer's ClientOnionAuthDir) and {} (the line above: give it to the operator for /var/lib/tor/relay-api/authorized_clients/)",
        printable(&key.private_file.display().to_string()),
        printable(&key.public_file.display().to_string())
    );
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct RelayArgs {
    /// The relay's base URL (https://…).
    #[arg(long, value_name = "URL")]
    relay: String,
    /// File whose first line is the reviewer API token.
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// Trust only this certificate (PEM) for the relay, e.g. a self-signed one.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// Reach the relay through Tor's SOCKS port, e.g.
    /// socks5h://127.0.0.1:9050 (needed for a .onion relay; no other proxy
    /// is ever used, whatever the environment says).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct FetchArgs {
    #[command(flatten)]
    relay: RelayArgs,
    /// Directory to save batches in.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Download only this batch (its sequence number or id), replacing a
    /// copy in --out that is cut off or damaged.
    #[arg(long, value_name = "N|ID")]
    batch: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct AckArgs {
    /// Receipts `reviewer open` wrote (ARCHIVE/receipts/*.json).
    #[arg(value_name = "RECEIPT", required = true)]
    receipts: Vec<PathBuf>,
    #[command(flatten)]
    relay: RelayArgs,
}

#[derive(Debug, Args)]
pub(super) struct PushArgs {
    /// Reply bundles written by `reviewer reply`.
    #[arg(value_name = "BUNDLE", required = true)]
    bundles: Vec<PathBuf>,
    #[command(flatten)]
    relay: RelayArgs,
}

pub(super) fn client(r: &RelayArgs) -> Result<RelayClient, Error> {
    RelayClient::new(
        &r.relay,
        &r.token_file,
        r.tls_cert.as_deref(),
        r.proxy.as_deref(),
    )
}

pub(super) fn fetch_cmd(a: FetchArgs) -> Result<(), Error> {
    let client = client(&a.relay)?;
    let which = a.batch.clone().map_or(fetch::Which::New, fetch::Which::One);
    let saved = fetch::fetch(&client, &a.out, &which, |f| {
        out_line(&format!(
            "{} {} (batch {}, {} submissions)",
            if f.replaced {
                "replaced a cut-off or damaged copy with"
            } else {
                "saved"
            },
            f.path.display(),
            f.sequence,
            f.submissions
        ));
    })?;
    if saved.is_empty() {
        match &a.batch {
            Some(b) => out_line(&format!(
                "batch {b} is already in {}, whole: nothing to do",
                a.out.display()
            )),
            None => out_line(&format!("no new batches (in {})", a.out.display())),
        }
    }
    Ok(())
}

pub(super) fn push_cmd(a: PushArgs) -> Result<(), Error> {
    // Every bundle is read and checked before anything goes on the network.
    let bundles = a
        .bundles
        .iter()
        .map(|p| CheckedBundle::read(p))
        .collect::<Result<Vec<_>, Error>>()?;
    let client = client(&a.relay)?;
    for bundle in bundles {
        let path = bundle.path().to_owned();
        let n = bundle.bundle().replies.len();
        let done = fetch::push(&client, bundle)?;
        out_line(&format!(
            "pushed {} ({n} repl{}): {} stored, {} already held, {} deleted by the source",
            path.display(),
            if n == 1 { "y" } else { "ies" },
            done.stored,
            done.already_held,
            done.deleted_by_source
        ));
    }
    Ok(())
}

pub(super) fn ack_cmd(a: AckArgs) -> Result<(), Error> {
    let client = client(&a.relay)?;
    let mut failed = 0usize;
    for receipt in &a.receipts {
        match fetch::ack(&client, receipt) {
            // A batch is never empty (the relay makes one only when there
            // is something new), so nothing deleted means acknowledged
            // before.
            Ok(acked) if acked.deleted == 0 => out_line(&format!(
                "batch {} was already acknowledged: nothing to do",
                acked.sequence
            )),
            Ok(acked) => out_line(&format!(
                "relay deleted {} submissions of batch {}",
                acked.deleted, acked.sequence
            )),
            // What concerns this receipt alone: say so and go on.
            Err(
                e @ Error::Fetch(
                    fetch::FetchError::AckConflict { .. }
                    | fetch::FetchError::AckUnknown { .. }
                    | fetch::FetchError::BadReceipt { .. },
                ),
            )
            | Err(e @ Error::Io { .. }) => {
                // One receipt: its error is the command's.
                if a.receipts.len() == 1 {
                    return Err(e);
                }
                failed += 1;
                let mut err = std::io::stderr().lock();
                let _ = writeln!(
                    err,
                    "reviewer: {}: {}",
                    printable(&receipt.display().to_string()),
                    printable(&e.to_string())
                );
            }
            // The relay, the token or the network: the same for every
            // receipt, so stop.
            Err(e) => return Err(e),
        }
    }
    if failed > 0 {
        return Err(Error::Fetch(fetch::FetchError::SomeAcksFailed {
            failed,
            total: a.receipts.len(),
        }));
    }
    Ok(())
}
