//! Sealing: turning a submission into one age file.
//!
//! This is the only relay module that imports `age`.
//!
//! A submission's plaintext is a tar (`docs/format.md`, "Sealed
//! submission"): `testimony.json` first, listing every attachment with its
//! size and SHA-256, then the attachments, then padding. Because the list
//! comes first, attachments must be read completely before sealing starts,
//! and they can be far larger than memory. They are therefore *spooled*: as
//! they arrive they are encrypted under a random key that exists only in
//! this process's memory (`spool.rs`: AES-256-GCM, STREAM chunks),
//! into one of a fixed pool of spool files made at start ([`Spools`]: a
//! file per upload would date it). When the form is complete the spool is
//! decrypted as a stream straight into the real seal. Plaintext never
//! reaches the disk, and memory per upload stays at a few 64 KiB chunks
//! whatever the upload's size.
//!
//! [`seal`] writes the age file to any writer and returns what the store
//! records with it; it knows nothing of the store.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;

use age::secrecy::ExposeSecret;
use format::{
    Attachment, Day, Digest, PADDING_ENTRY, TESTIMONY_ENTRY, TESTIMONY_FORMAT, Testimony,
};
use sha2::Digest as _;
use zeroize::Zeroize;
use zeroize::Zeroizing;

use crate::Error;
use crate::fsutil::{FilePool, PooledFile};
use crate::pipeline::ThreadedWriter;
use crate::spool::{SpoolReader, SpoolWriter};

/// Buffer in front of every age output. age turns an error while writing its
/// header into a bare "failed to write header", dropping the operating
/// system's error kind; buffered, the header reaches the file with the
/// first chunk, whose errors age passes through, so a full disk is still
/// recognised as one ([`Error::is_out_of_space`]).
const HEADER_BUFFER: usize = 4 * 1024;

fn seal_err(stage: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::Seal {
        stage,
        source: Box::new(e),
    }
}

/// The reviewer recipients every submission is sealed to.
pub struct Recipients {
    list: Vec<age::x25519::Recipient>,
    key_set: String,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipients")
            .field("count", &self.list.len())
            .field("key_set", &self.key_set)
            .finish()
    }
}

impl Recipients {
    /// Parses `age1…` recipient strings. At least one is required.
    pub fn parse<S: AsRef<str>>(strings: &[S]) -> Result<Self, Error> {
        let mut list = Vec::with_capacity(strings.len());
        let mut canonical: Vec<String> = Vec::with_capacity(strings.len());
        for s in strings {
            let s = s.as_ref().trim();
            let r: age::x25519::Recipient =
                s.parse().map_err(|_| Error::BadRecipient(s.to_owned()))?;
            canonical.push(r.to_string());
            list.push(r);
        }
        canonical.sort();
        canonical.dedup();
        let key_set = Digest::of(canonical.join("\n").as_bytes()).to_string()[..16].to_owned();
        Ok(Self { list, key_set })
    }

    /// A short fingerprint of the recipient set, stored with each
    /// submission so reviewers know which keys sealed it.
    pub fn key_set(&self) -> &str {
        &self.key_set
    }

    /// How many recipients there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The canonical form of one `age1…` recipient string (surrounding white
/// space removed), or why it is not one. Lets the config compare
/// recipients across key epochs.
pub fn canonical_recipient(s: &str) -> Result<String, Error> {
    let s = s.trim();
    s.parse::<age::x25519::Recipient>()
        .map(|r| r.to_string())
        .map_err(|_| Error::BadRecipient(s.to_owned()))
}

/// Parses the age header at the start of `reader` (`relay check`): the
/// version line, the recipient stanzas and the header MAC's line. Needs no
/// identity and decrypts nothing, so it cannot tell whether the payload
/// is intact; the store's SHA-256 does that.
pub fn check_header(reader: &mut dyn Read) -> Result<(), Error> {
    age::Decryptor::new(reader)
        .map(drop)
        .map_err(|e| Error::Seal {
            stage: "parse an age header",
            source: Box::new(e),
        })
}

/// The age identity of a raw X25519 secret (a source's, derived from a
/// codename), built for one use: `AGE-SECRET-KEY-1…` in zeroizing memory.
fn x25519_identity(secret: &[u8; 32]) -> Result<age::x25519::Identity, Error> {
    let hrp = bech32::Hrp::parse_unchecked("AGE-SECRET-KEY-");
    let mut encoded = Zeroizing::new(
        bech32::encode::<bech32::Bech32>(hrp, &secret[..])
            .map_err(|e| Error::Followup(format!("encode an identity: {e}")))?,
    );
    encoded.make_ascii_uppercase();
    encoded
        .parse::<age::x25519::Identity>()
        .map_err(|e| Error::Followup(format!("build an identity: {e}")))
}

/// The `age1…` recipient of a raw X25519 secret.
pub fn x25519_recipient(secret: &[u8; 32]) -> Result<String, Error> {
    Ok(x25519_identity(secret)?.to_public().to_string())
}

/// Decrypts a small age file (a reply) with a raw X25519 secret; more than
/// `limit` bytes of plaintext is an error.
pub fn open_with_x25519(
    ciphertext: &[u8],
    secret: &[u8; 32],
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let identity = x25519_identity(secret)?;
    let failed = |e: &dyn std::fmt::Display| Error::Followup(format!("open a reply: {e}"));
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|e| failed(&e))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| failed(&e))?;
    let mut plain = Zeroizing::new(Vec::new());
    (&mut reader)
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| failed(&e))?;
    if plain.len() > limit {
        return Err(failed(&"longer than a reply may be"));
    }
    Ok(plain)
}

/// A new reviewer identity for demo mode: the identity file's text
/// (zeroized on drop) and its `age1…` recipient.
pub fn generate_identity(created: Day, comment: &str) -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# created: {created}\n# {comment}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    ));
    (text, recipient)
}

/// One attachment in the spool.
struct Spooled {
    name: String,
    size: u64,
    sha256: Digest,
}

/// Attachments encrypted to an ephemeral key while the form streams in.
///
/// The spool file and its key are made when the first attachment begins:
/// a text-only submission (most of them) costs neither a temporary file
/// nor a key.
pub struct Spool {
    pool: Spools,
    writer: Option<(SpoolWriter, PooledFile)>,
    files: Vec<Spooled>,
    current: Option<(String, sha2::Sha256, u64)>,
    total: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("files", &self.files.len())
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// The spool files: a fixed pool, made at start in the spool directory and
/// reused with a fresh key for each upload, so that no file is created or
/// deleted per upload (a new inode would date it; `crate::store`, "Why
/// segments").
#[derive(Clone, Debug)]
pub struct Spools(std::sync::Arc<FilePool>);

/// How long an upload waits for a spool file when all are lent out (they
/// are as many as the uploads that may run at once, so only briefly, while
/// a finished upload gives its file back).
const SPOOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Spools {
    /// Makes (or empties) `count` spool files in `dir`.
    pub fn open(dir: &Path, count: usize) -> Result<Self, Error> {
        FilePool::open(dir, "spool", count).map(Self)
    }

    /// The files, for the store's cover writes.
    pub fn paths(&self) -> Vec<std::path::PathBuf> {
        self.0.paths().to_vec()
    }
}

impl Spool {
    /// A new, empty spool; it takes a file from `pool` with the first
    /// attachment.
    pub fn new(pool: &Spools) -> Result<Self, Error> {
        Ok(Self {
            pool: pool.clone(),
            writer: None,
            files: Vec::new(),
            current: None,
            total: 0,
        })
    }

    /// Creates the spool file and its key, once.
    fn open(&mut self) -> Result<(), Error> {
        if self.writer.is_some() {
            return Ok(());
        }
        let loan = self.pool.0.take(SPOOL_WAIT).ok_or(Error::StoreFull(
            "every spool file is in use (limits.max_concurrent_uploads uploads at once)",
        ))?;
        let file = loan
            .file()
            .try_clone()
            .map_err(seal_err("open a spool file"))?;
        let writer = SpoolWriter::new(file).map_err(seal_err("start the spool"))?;
        self.writer = Some((writer, loan));
        Ok(())
    }

    /// Starts the next attachment. `raw_name` is the untrusted name the
    /// client sent; it is sanitised here.
    pub fn begin_file(&mut self, raw_name: &str) -> Result<(), Error> {
        self.end_file();
        self.open()?;
        let name = format::sanitize_file_name(raw_name);
        self.current = Some((name, sha2::Sha256::new(), 0));
        Ok(())
    }

    /// Appends bytes to the current attachment.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        let (_, hasher, size) = self.current.as_mut().ok_or_else(|| Error::Seal {
            stage: "spool an attachment",
            source: "data before a file was started".into(),
        })?;
        hasher.update(data);
        *size += data.len() as u64;
        self.total += data.len() as u64;
        self.writer
            .as_mut()
            .ok_or_else(|| Error::Seal {
                stage: "spool an attachment",
                source: "spool already closed".into(),
            })?
            .0
            .write_all(data)
            .map_err(seal_err("write the spool"))
    }

    /// Ends the current attachment, if any.
    pub fn end_file(&mut self) {
        if let Some((name, hasher, size)) = self.current.take() {
            self.files.push(Spooled {
                name,
                size,
                sha256: Digest::from_hasher(hasher),
            });
        }
    }

    /// Attachments so far, counting one still being written.
    pub fn file_count(&self) -> usize {
        self.files.len() + usize::from(self.current.is_some())
    }

    /// Bytes of attachments so far.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Closes the spool and returns a reader that decrypts it, with the
    /// attachments' descriptions.
    fn into_reader(mut self) -> Result<(Box<dyn Read>, Vec<Spooled>), Error> {
        self.end_file();
        let Some((writer, loan)) = self.writer.take() else {
            // No attachment was ever begun: nothing was spooled.
            return Ok((Box::new(io::empty()), std::mem::take(&mut self.files)));
        };
        let (mut file, key, len) = writer.finish().map_err(seal_err("close the spool"))?;
        file.rewind().map_err(seal_err("rewind the spool"))?;
        // The loan goes back to the pool (emptied) when the reader drops.
        let reader = Loaned {
            reader: SpoolReader::new(file, key, len),
            _loan: loan,
        };
        Ok((Box::new(reader), std::mem::take(&mut self.files)))
    }
}

/// A spool reader that keeps its file on loan until it is done.
struct Loaned {
    reader: SpoolReader,
    _loan: PooledFile,
}

impl Read for Loaned {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// The form answers of one submission (everything but attachments).
pub struct Submission {
    /// Questionnaire version.
    pub form_version: u32,
    /// Form language.
    pub language: String,
    /// Answers by stable key.
    pub fields: BTreeMap<String, String>,
    /// English wording of the answered questions, by the same keys.
    pub labels: BTreeMap<String, format::FieldLabel>,
    /// The testimony text.
    pub text: String,
    /// Day received.
    pub received_day: Day,
    /// The follow-up thread it joins (kept in the store's index and the
    /// batch manifest, not in the sealed plaintext).
    pub thread: Option<format::ThreadId>,
}

impl Drop for Submission {
    fn drop(&mut self) {
        self.text.zeroize();
        self.language.zeroize();
        format::zeroize_answers(&mut self.fields, &mut self.labels);
    }
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission").finish_non_exhaustive()
    }
}

/// Counts bytes written through it.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Plaintexts from this size on are written through a second thread.
const THREADED_WRITE_BYTES: u64 = 1024 * 1024;

/// Where the ciphertext goes: straight into the store, or through a
/// writer thread.
enum Output<W: Write + Send + 'static> {
    Direct(W),
    Threaded(ThreadedWriter<W>),
}

impl<W: Write + Send + 'static> Output<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Self::Direct(out) => Ok(out),
            Self::Threaded(out) => out.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for Output<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Self::Direct(out) => out.write(data),
            Self::Threaded(out) => out.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Direct(out) => out.flush(),
            Self::Threaded(out) => out.flush(),
        }
    }
}

/// A sealed submission's tar entry: mode 0600 (files a reviewer extracts
/// with stock `tar` are theirs alone).
///
/// An entry's header holds the attachment's name. A `tar::Header` is a
/// 512-byte value, and built on the stack it left the name in the sealing
/// thread's stack, which is never freed (so never wiped) and was read back
/// from `/proc/PID/mem` (`tests/memory.rs`). So it is built on the heap,
/// filled in place, and zeroized when dropped.
fn header(path: &str, size: u64) -> Result<EntryHeader, Error> {
    let mut h = EntryHeader(Box::new(tar::Header::new_ustar()));
    crate::archive::fill_header(&mut h.0, path, size, 0o600)
        .map_err(seal_err("name a tar entry"))?;
    Ok(h)
}

/// A tar header on the heap, zeroized on drop (see [`header`]).
struct EntryHeader(Box<tar::Header>);

impl std::ops::Deref for EntryHeader {
    type Target = tar::Header;
    fn deref(&self) -> &tar::Header {
        &self.0
    }
}

impl Drop for EntryHeader {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0.as_mut_bytes()[..]);
    }
}

/// What the store records of a sealed submission, besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// UTC day it was received.
    pub received_day: Day,
    /// The key epoch it was sealed to.
    pub epoch: u32,
    /// The fingerprint of the recipients that sealed it.
    pub key_set: String,
    /// The follow-up thread it joins.
    pub thread: Option<format::ThreadId>,
}

/// Seals one submission to `recipients`, the reviewer recipients of key
/// epoch `epoch` (the current one), writing the age file to `out`.
///
/// Returns `out` (everything written and flushed through it) and what the
/// store records with it, which includes the epoch so batches can name it.
/// The caller stores both (`PendingSubmission::finish`) and makes them
/// durable with [`crate::store::Store::sync`] before telling the source.
pub fn seal<W: Write + Send + 'static>(
    mut submission: Submission,
    spool: Spool,
    recipients: &Recipients,
    epoch: u32,
    out: W,
) -> Result<(W, Sealed), Error> {
    let thread = submission.thread;
    let (mut attachments, files) = spool.into_reader()?;
    let names = format::unique_names(files.iter().map(|f| f.name.as_str()));
    let testimony = Testimony {
        format: TESTIMONY_FORMAT.to_owned(),
        form_version: submission.form_version,
        language: std::mem::take(&mut submission.language),
        received_day: submission.received_day,
        fields: std::mem::take(&mut submission.fields),
        labels: std::mem::take(&mut submission.labels),
        text: std::mem::take(&mut submission.text),
        attachments: files
            .iter()
            .zip(names)
            .map(|(f, name)| Attachment {
                name,
                size: f.size,
                sha256: f.sha256,
            })
            .collect(),
    };
    drop(submission);
    let json = testimony.to_json();
    let sizes: Vec<u64> = testimony.attachments.iter().map(|a| a.size).collect();
    let unpadded = format::unpadded_tar_len(json.len() as u64, &sizes);
    let padded = format::padded_plaintext_len(unpadded);

    let encryptor = age::Encryptor::with_recipients(recipients.list.iter().map(|r| r as _))
        .map_err(|e| Error::Seal {
            stage: "set up encryption",
            source: Box::new(e),
        })?;
    // A large ciphertext is hashed and written by a second thread while
    // this one encrypts ([`crate::pipeline`]).
    let out = if padded >= THREADED_WRITE_BYTES {
        Output::Threaded(ThreadedWriter::new(out).map_err(seal_err("start the store's writer"))?)
    } else {
        Output::Direct(out)
    };
    let stream = encryptor
        .wrap_output(BufWriter::with_capacity(HEADER_BUFFER, out))
        .map_err(seal_err("start encryption"))?;
    let mut tar = tar::Builder::new(Counting {
        inner: stream,
        count: 0,
    });

    tar.append(&*header(TESTIMONY_ENTRY, json.len() as u64)?, &json[..])
        .map_err(seal_err("write testimony.json"))?;
    for a in &testimony.attachments {
        let mut part = (&mut attachments).take(a.size);
        let before = tar.get_ref().count;
        tar.append(
            &*header(&format::attachment_entry_path(&a.name), a.size)?,
            &mut part,
        )
        .map_err(seal_err("write an attachment"))?;
        // tar pads whatever it copied; a short read would shift every later
        // entry, so check the exact count.
        let written = tar.get_ref().count - before;
        if written != format::tar_entry_len(a.size) {
            return Err(Error::Seal {
                stage: "write an attachment",
                source: "the spool returned fewer bytes than were spooled".into(),
            });
        }
    }
    let padding = padded - unpadded;
    tar.append(
        &*header(PADDING_ENTRY, padding)?,
        io::repeat(0).take(padding),
    )
    .map_err(seal_err("write padding"))?;
    let counting = tar.into_inner().map_err(seal_err("finish the tar"))?;
    if counting.count != padded {
        return Err(Error::Seal {
            stage: "pad",
            source: format!("plaintext is {} bytes, expected {padded}", counting.count).into(),
        });
    }
    let mut out = counting
        .inner
        .finish()
        .and_then(|w| w.into_inner().map_err(io::IntoInnerError::into_error))
        .and_then(Output::finish)
        .map_err(seal_err("finish encryption"))?;
    out.flush().map_err(seal_err("finish encryption"))?;
    Ok((
        out,
        Sealed {
            received_day: testimony.received_day,
            epoch,
            key_set: recipients.key_set.clone(),
            thread,
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Store;
    use format::SubmissionId;

    fn decrypt(store: &Store, id: &SubmissionId, identity: &age::x25519::Identity) -> Vec<u8> {
        let mut ct = Vec::new();
        // Committed first: only then is it in the index.
        store.sync_blocking().unwrap();
        store.ciphertext(id).unwrap().read_to_end(&mut ct).unwrap();
        let d = age::Decryptor::new(&ct[..]).unwrap();
        let mut r = d
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .unwrap();
        let mut pt = Vec::new();
        r.read_to_end(&mut pt).unwrap();
        pt
    }

    fn pool(dir: &Path) -> Spools {
        Spools::open(&dir.join("spool"), 2).unwrap()
    }

    /// Seals into the store, as the intake does.
    fn seal_into(
        submission: Submission,
        spool: Spool,
        recipients: &Recipients,
        epoch: u32,
        out: crate::store::PendingSubmission,
    ) -> Result<crate::store::SubmissionMeta, Error> {
        let (pending, sealed) = seal(submission, spool, recipients, epoch, out)?;
        pending.finish(
            sealed.received_day,
            sealed.epoch,
            sealed.key_set,
            sealed.thread,
        )
    }

    fn submission(text: &str) -> Submission {
        Submission {
            form_version: 1,
            language: "en".into(),
            fields: [("category".to_owned(), "other".to_owned())].into(),
            labels: Default::default(),
            text: text.into(),
            received_day: "2026-11-28".parse().unwrap(),
            thread: None,
        }
    }

    #[test]
    fn a_text_only_submission_makes_no_spool_file_and_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(&pool(dir.path())).unwrap();
        assert!(spool.writer.is_none());
        let (mut reader, files) = Spool::new(&pool(dir.path()))
            .unwrap()
            .into_reader()
            .unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty() && files.is_empty());
        // The first attachment opens it.
        spool.begin_file("a.txt").unwrap();
        assert!(spool.writer.is_some());
    }

    #[test]
    fn sealed_tar_has_the_specified_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let reviewer = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[
            reviewer.to_public().to_string(),
            other.to_public().to_string(),
        ])
        .unwrap();

        let mut spool = Spool::new(&pool(dir.path())).unwrap();
        spool.begin_file("../../evil").unwrap();
        spool.write(b"first ").unwrap();
        spool.write(b"file").unwrap();
        spool.begin_file("EVIL").unwrap();
        spool.write(&vec![9u8; 200_000]).unwrap();
        spool.end_file();
        let id = SubmissionId::from_bytes([1; 16]);
        let meta = seal_into(
            submission("hello"),
            spool,
            &recipients,
            3,
            store.begin(id).unwrap(),
        )
        .unwrap();

        for identity in [&reviewer, &other] {
            let pt = decrypt(&store, &id, identity);
            assert_eq!(pt.len() as u64 % 512, 0);
            let mut archive = tar::Archive::new(&pt[..]);
            let entries: Vec<(String, Vec<u8>)> = archive
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let path = e.path().unwrap().to_string_lossy().into_owned();
                    assert_eq!(e.header().mtime().unwrap(), 0);
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (path, data)
                })
                .collect();
            let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                ["testimony.json", "files/evil", "files/EVIL (2)", "padding"]
            );
            let t = Testimony::from_json(&entries[0].1).unwrap();
            assert_eq!(t.text, "hello");
            assert_eq!(t.attachments[0].sha256, Digest::of(b"first file"));
            assert_eq!(entries[1].1, b"first file");
            assert_eq!(entries[2].1, vec![9u8; 200_000]);
            assert!(entries[3].1.iter().all(|b| *b == 0));
            let unpadded = format::unpadded_tar_len(entries[0].1.len() as u64, &[10, 200_000]);
            assert_eq!(pt.len() as u64, format::padded_plaintext_len(unpadded));
        }
        assert_eq!(meta.key_set, recipients.key_set());
        assert_eq!(meta.epoch, 3);
        let stored = store.meta(&id).unwrap().unwrap();
        assert!(stored.at.is_some());
        assert_eq!(
            stored,
            crate::store::SubmissionMeta {
                at: stored.at,
                ..meta
            }
        );
    }

    #[test]
    fn a_large_submission_round_trips_through_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 30).unwrap();
        let reviewer = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[reviewer.to_public().to_string()]).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut spool = Spool::new(&pool(dir.path())).unwrap();
        spool.begin_file("video.mp4").unwrap();
        for part in data.chunks(70_001) {
            spool.write(part).unwrap();
        }
        let id = SubmissionId::from_bytes([9; 16]);
        let meta = seal_into(
            submission("big"),
            spool,
            &recipients,
            1,
            store.begin(id).unwrap(),
        )
        .unwrap();
        assert!(meta.size >= THREADED_WRITE_BYTES);
        let pt = decrypt(&store, &id, &reviewer);
        let mut archive = tar::Archive::new(&pt[..]);
        let mut entries = archive.entries().unwrap();
        entries.next().unwrap().unwrap();
        let mut file = entries.next().unwrap().unwrap();
        let mut got = Vec::new();
        file.read_to_end(&mut got).unwrap();
        assert!(got == data);
        // The stored hash is the hash of what was written.
        let mut ct = Vec::new();
        store.ciphertext(&id).unwrap().read_to_end(&mut ct).unwrap();
        assert_eq!(meta.sha256, Digest::of(&ct));
    }

    #[test]
    fn short_texts_seal_to_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let reviewer = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[reviewer.to_public().to_string()]).unwrap();
        let mut plain = Vec::new();
        let mut sealed = Vec::new();
        for (n, text) in ["a", &"b".repeat(5000)].iter().enumerate() {
            let spool = Spool::new(&pool(dir.path())).unwrap();
            let id = SubmissionId::from_bytes([n as u8; 16]);
            let meta = seal_into(
                submission(text),
                spool,
                &recipients,
                1,
                store.begin(id).unwrap(),
            )
            .unwrap();
            plain.push(decrypt(&store, &id, &reviewer).len());
            sealed.push(meta.size);
        }
        // The padded plaintexts are exactly the same size...
        assert_eq!(plain[0], plain[1]);
        assert_eq!(plain[0] as u64, format::MIN_PADDED_PLAINTEXT);
        // ...and the ciphertexts differ only by age's random header "grease"
        // stanza (noise independent of the content, at most ~200 bytes).
        assert!(sealed[0].abs_diff(sealed[1]) < 256, "{sealed:?}");
    }

    #[test]
    fn a_full_store_is_recognised_through_age_and_tar() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let reviewer = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[reviewer.to_public().to_string()]).unwrap();
        // Refused in age's header, then in the middle of the payload.
        for (n, quota) in [(1u8, 100), (2, 10_000)] {
            store.set_limits(quota, 0);
            let e = seal_into(
                submission("x"),
                Spool::new(&pool(dir.path())).unwrap(),
                &recipients,
                1,
                store.begin(SubmissionId::from_bytes([n; 16])).unwrap(),
            )
            .unwrap_err();
            assert!(e.is_out_of_space(), "{quota}: {e}");
            assert_eq!(store.held_bytes(), 0);
            let stats = store.stats().unwrap();
            assert_eq!(
                (stats.submissions, stats.pending, stats.segment_bytes),
                (0, 0, 0)
            );
        }
        // A large one, written through the writer thread: refused half-way.
        store.set_limits(3 << 20, 0);
        let mut spool = Spool::new(&pool(dir.path())).unwrap();
        spool.begin_file("big").unwrap();
        spool.write(&vec![5u8; 5 << 20]).unwrap();
        let e = seal_into(
            submission("x"),
            spool,
            &recipients,
            1,
            store.begin(SubmissionId::from_bytes([3; 16])).unwrap(),
        )
        .unwrap_err();
        assert!(e.is_out_of_space(), "{e}");
        assert_eq!(store.held_bytes(), 0);
        let stats = store.stats().unwrap();
        assert_eq!(
            (stats.submissions, stats.pending, stats.segment_bytes),
            (0, 0, 0)
        );
    }

    #[test]
    fn spool_file_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(&pool(dir.path())).unwrap();
        spool.begin_file("x").unwrap();
        let canary = b"CANARY-spool-7f3a9c";
        for _ in 0..1000 {
            spool.write(canary).unwrap();
        }
        let (writer, _loan) = spool.writer.take().unwrap();
        let (mut file, _, _) = writer.finish().unwrap();
        file.rewind().unwrap();
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).unwrap();
        assert!(raw.len() > 1000 * canary.len());
        assert!(!raw.windows(canary.len()).any(|w| w == canary));
    }

    #[test]
    fn bad_recipients_are_refused() {
        assert!(Recipients::parse(&["age1notakey"]).is_err());
        assert!(Recipients::parse(&["AGE-SECRET-KEY-1QQQ"]).is_err());
        assert!(canonical_recipient("age1notakey").is_err());
        let r = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(canonical_recipient(&format!("  {r}\n")).unwrap(), r);
    }
}
