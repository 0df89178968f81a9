//! `manifest.json`: what a batch holds, signed by the relay.

use serde::{Deserialize, Serialize};

use crate::{BATCH_SUBMISSIONS_DIR, BatchId, Day, Digest, Error, SubmissionId, ThreadId};

/// The `format` value this build writes and reads.
pub const MANIFEST_FORMAT: &str = "relay-batch/1";
/// The largest manifest a reader accepts (16 MiB; a full manifest of
/// [`MAX_MANIFEST_ENTRIES`] submissions takes about 14 MiB).
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;
/// The largest signature file a reader accepts.
pub const MAX_SIGNATURE_BYTES: usize = 4096;
/// Most submissions one manifest may list.
pub const MAX_MANIFEST_ENTRIES: usize = 65_536;

/// One sealed submission in a batch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// The submission's random id; its member is `submissions/<id>.age`.
    pub id: SubmissionId,
    /// UTC day the relay received it.
    pub received_day: Day,
    /// The reviewer key epoch it was sealed to (1 or more): only the
    /// identities of that epoch open it. Once every reviewer has retired
    /// the epoch's identities, nobody can.
    pub epoch: u32,
    /// Exact length of the `.age` file in bytes.
    pub size: u64,
    /// SHA-256 of the `.age` file.
    pub sha256: Digest,
    /// The follow-up thread it belongs to, when its source took a codename
    /// (absent otherwise). The thread is listed in [`Manifest::threads`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadId>,
}

/// A follow-up thread some submission of the batch belongs to: what a
/// reviewer needs to reply to its source offline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThreadEntry {
    /// The thread.
    pub id: ThreadId,
    /// The source's age X25519 recipient (`age1…`), derived by the relay
    /// from the source's codename. Replies are encrypted to it (and to the
    /// reviewers).
    pub recipient: String,
}

/// The manifest of one batch.
///
/// Its SHA-256, over the *exact bytes* of `manifest.json` as found in the
/// batch (never a re-serialisation), is what the next batch's
/// `previous_manifest_sha256` and a reviewer's receipt refer to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The relay's minisign public key (base64, as `relay pubkey` prints
    /// it). Informative: reviewers verify with the key they pinned.
    pub relay_key: String,
    /// Random id of this batch.
    pub batch_id: BatchId,
    /// 1 for a relay's first batch, then one more for each batch.
    pub sequence: u64,
    /// SHA-256 of the previous batch's `manifest.json`; `null` exactly when
    /// `sequence` is 1.
    pub previous_manifest_sha256: Option<Digest>,
    /// UTC day the batch was made.
    pub created_day: Day,
    /// The submissions, in the order of their tar members.
    pub submissions: Vec<ManifestEntry>,
    /// The follow-up threads the submissions belong to, in id order: each
    /// thread named by an entry exactly once, and no other. Absent when no
    /// submission has a thread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadEntry>,
    /// `true` when a demo relay made the batch: its submissions are sealed
    /// to the demo reviewer key that sits in that relay's data directory,
    /// so nothing in it is protected. Absent (false) for a real relay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

impl Manifest {
    /// The bytes of `manifest.json`: pretty JSON with one trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 160 * self.submissions.len());
        // Serialising strings and integers into a Vec cannot fail.
        if serde_json::to_writer_pretty(&mut out, self).is_ok() {
            out.push(b'\n');
        }
        out
    }

    /// Parses `manifest.json` and checks its rules. This does not check
    /// the signature: a parsed manifest is still untrusted.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "manifest.json";
        let m: Manifest = crate::read_json(WHAT, bytes, MAX_MANIFEST_BYTES)?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::UnsupportedFormat {
                what: WHAT,
                found: m.format.clone(),
                expected: MANIFEST_FORMAT,
            });
        }
        // Spec: "sequence starts at 1; previous_manifest_sha256 is null
        // exactly for sequence 1".
        if m.sequence == 0 {
            return Err(Error::invalid(WHAT, "sequence must start at 1"));
        }
        if (m.sequence == 1) != m.previous_manifest_sha256.is_none() {
            return Err(Error::invalid(
                WHAT,
                "previous_manifest_sha256 must be null exactly for sequence 1",
            ));
        }
        if m.submissions.len() > MAX_MANIFEST_ENTRIES {
            return Err(Error::invalid(WHAT, "too many submissions"));
        }
        // Spec: "epoch: the reviewer key epoch, 1 or more".
        if m.submissions.iter().any(|e| e.epoch == 0) {
            return Err(Error::invalid(
                WHAT,
                "a submission's epoch is 0 (epochs start at 1)",
            ));
        }
        let mut ids = std::collections::HashSet::with_capacity(m.submissions.len());
        if !m.submissions.iter().all(|e| ids.insert(e.id)) {
            return Err(Error::invalid(WHAT, "a submission id is listed twice"));
        }
        // Spec: "threads: each thread named by a submission, exactly once,
        // in id order, and no other".
        let named: std::collections::BTreeSet<ThreadId> =
            m.submissions.iter().filter_map(|e| e.thread).collect();
        if !m.threads.windows(2).all(|w| w[0].id < w[1].id) {
            return Err(Error::invalid(
                WHAT,
                "threads must be listed once each, in id order",
            ));
        }
        if !m.threads.iter().map(|t| t.id).eq(named.iter().copied()) {
            return Err(Error::invalid(
                WHAT,
                "threads must list exactly the threads the submissions name",
            ));
        }
        if let Some(t) = m
            .threads
            .iter()
            .find(|t| !is_x25519_recipient(&t.recipient))
        {
            return Err(Error::invalid(
                WHAT,
                format!("thread {} has no valid age1… recipient", t.id),
            ));
        }
        Ok(m)
    }
}

/// Whether `s` has the shape of an age X25519 recipient: `age1` and 58
/// lowercase bech32 characters. (Whether it decodes to a curve point is
/// for age to say; this refuses anything else early, with a clear reason.)
pub fn is_x25519_recipient(s: &str) -> bool {
    const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    s.len() == 62 && s.starts_with("age1") && s[4..].chars().all(|c| BECH32.contains(c))
}

/// The tar member name of a submission in a batch: `submissions/<id>.age`.
pub fn batch_member_for(id: &SubmissionId) -> String {
    format!("{BATCH_SUBMISSIONS_DIR}/{id}.age")
}

/// The submission id in a member name `submissions/<id>.age`, if it has
/// exactly that shape.
pub fn parse_batch_member(path: &str) -> Option<SubmissionId> {
    path.strip_prefix(BATCH_SUBMISSIONS_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".age")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: u8) -> ManifestEntry {
        ManifestEntry {
            id: SubmissionId::from_bytes([i; 16]),
            received_day: "2026-11-27".parse().unwrap(),
            epoch: 1 + u32::from(i % 3),
            size: 1000 + u64::from(i),
            sha256: Digest::of(&[i]),
            thread: None,
        }
    }

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn sample(sequence: u64) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            relay_key: "RWQtest".into(),
            batch_id: BatchId::from_bytes([7; 16]),
            sequence,
            previous_manifest_sha256: (sequence > 1).then(|| Digest::of(b"prev")),
            created_day: "2026-11-28".parse().unwrap(),
            submissions: vec![entry(1), entry(2)],
            threads: Vec::new(),
            demo: false,
        }
    }

    #[test]
    fn refuses_broken_rules() {
        let mut m = sample(1);
        m.previous_manifest_sha256 = Some(Digest::of(b"x"));
        assert!(Manifest::from_json(&m.to_json()).is_err());
        let mut m = sample(2);
        m.previous_manifest_sha256 = None;
        assert!(Manifest::from_json(&m.to_json()).is_err());
        let mut m = sample(1);
        m.submissions.push(entry(1));
        assert!(Manifest::from_json(&m.to_json()).is_err());
        let m = sample(0);
        assert!(Manifest::from_json(&m.to_json()).is_err());
        let mut m = sample(1);
        m.submissions[1].epoch = 0;
        assert!(Manifest::from_json(&m.to_json()).is_err());
        // A missing epoch is refused too (no default).
        let json = String::from_utf8(sample(1).to_json()).unwrap();
        let without = json
            .replace("\"epoch\": 1,", "")
            .replace("\"epoch\": 2,", "");
        assert_ne!(without, json);
        assert!(Manifest::from_json(without.as_bytes()).is_err());
        assert!(Manifest::from_json(b"{}").is_err());
        assert!(Manifest::from_json(b"\xff").is_err());
    }

    #[test]
    fn threads_must_match_the_entries() {
        let t1 = ThreadId::from_bytes([1; 16]);
        let t2 = ThreadId::from_bytes([2; 16]);
        let thread = |id| ThreadEntry {
            id,
            recipient: RECIPIENT.into(),
        };
        let mut m = sample(1);
        m.submissions[0].thread = Some(t2);
        m.submissions[1].thread = Some(t1);
        m.threads = vec![thread(t1), thread(t2)];
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        // Without threads, the fields are absent from the JSON.
        assert!(
            !String::from_utf8(sample(1).to_json())
                .unwrap()
                .contains("thread")
        );

        let refused = |m: &Manifest| Manifest::from_json(&m.to_json()).unwrap_err().to_string();
        let mut bad = m.clone();
        bad.threads.reverse();
        assert!(refused(&bad).contains("id order"));
        let mut bad = m.clone();
        bad.threads.pop();
        assert!(refused(&bad).contains("exactly the threads"));
        let mut bad = m.clone();
        bad.threads.push(thread(ThreadId::from_bytes([3; 16])));
        assert!(refused(&bad).contains("exactly the threads"));
        let mut bad = m.clone();
        bad.threads.insert(1, thread(t1));
        assert!(refused(&bad).contains("id order"));
        let mut bad = m.clone();
        bad.threads[0].recipient = RECIPIENT.to_uppercase();
        assert!(refused(&bad).contains("recipient"));
        let mut bad = m;
        bad.threads[1].recipient = "age1short".into();
        assert!(refused(&bad).contains("recipient"));
    }

    #[test]
    fn member_names() {
        let id = SubmissionId::from_bytes([0xab; 16]);
        let member = batch_member_for(&id);
        assert_eq!(member, format!("submissions/{id}.age"));
        assert_eq!(parse_batch_member(&member), Some(id));
        assert_eq!(
            parse_batch_member(&format!("submissions/../{id}.age")),
            None
        );
        assert_eq!(parse_batch_member(&format!("x/{id}.age")), None);
        assert_eq!(
            parse_batch_member(&format!("submissions/{id}.age.txt")),
            None
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            seq in 1u64..u64::MAX,
            epochs in proptest::collection::vec(1u32..=u32::MAX, 0..50),
            key in "[A-Za-z0-9+/]{56}",
        ) {
            let mut m = sample(seq);
            m.relay_key = key;
            m.submissions = epochs
                .iter()
                .enumerate()
                .map(|(i, epoch)| ManifestEntry { epoch: *epoch, ..entry(i as u8) })
                .collect();
            let json = m.to_json();
            let back = Manifest::from_json(&json).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_json(), json);
        }

        #[test]
        fn epoch_zero_is_refused_wherever_it_is(n in 1u8..20, at in any::<proptest::sample::Index>()) {
            let mut m = sample(1);
            m.submissions = (0..n).map(entry).collect();
            let i = at.index(m.submissions.len());
            m.submissions[i].epoch = 0;
            let e = Manifest::from_json(&m.to_json()).unwrap_err();
            prop_assert!(e.to_string().contains("epoch"), "{}", e);
        }
    }
}
