//! Receipts: a reviewer's statement that it holds a batch safely.

use serde::{Deserialize, Serialize};

use crate::{BatchId, Digest, Error};

/// The `format` value this build writes and reads.
pub const RECEIPT_FORMAT: &str = "relay-receipt/1";

/// Written by `reviewer open` once every submission of a batch is decrypted
/// and on disk; sent back with `reviewer ack` (or handed to `relay ack`),
/// after which the relay deletes the batch's submissions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The relay's minisign public key the batch verified against.
    pub relay_key: String,
    /// The batch.
    pub batch_id: BatchId,
    /// Its sequence number.
    pub sequence: u64,
    /// SHA-256 of its `manifest.json`.
    pub manifest_sha256: Digest,
}

impl Receipt {
    /// The receipt's file bytes (pretty JSON, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        crate::pretty_json(self)
    }

    /// Parses a receipt file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "receipt";
        let r: Receipt = crate::read_json(WHAT, bytes, 64 * 1024)?;
        if r.format != RECEIPT_FORMAT {
            return Err(Error::UnsupportedFormat {
                what: WHAT,
                found: r.format.clone(),
                expected: RECEIPT_FORMAT,
            });
        }
        Ok(r)
    }
}

/// Body of `POST /api/v1/batches/{batch_id}/ack`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// SHA-256 of the acknowledged batch's `manifest.json`: proves the
    /// reviewer holds exactly the batch the relay made.
    pub manifest_sha256: Digest,
}

/// Body of `GET /api/v1/batches`: the batches the relay has made and not
/// yet seen acknowledged, oldest first. Each can be downloaded again with
/// `GET /api/v1/batches/{batch_id}` until it is acknowledged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchListing {
    /// The unacknowledged batches.
    pub batches: Vec<BatchSummary>,
}

/// One entry of [`BatchListing`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchSummary {
    /// The batch's id.
    pub batch_id: BatchId,
    /// Its sequence number.
    pub sequence: u64,
    /// How many submissions it holds.
    pub submissions: u64,
}

/// Body of a successful `POST /api/v1/batches/{batch_id}/ack`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AckResponse {
    /// How many submissions the relay deleted now (0 when the batch had
    /// been acknowledged before).
    pub deleted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let r = Receipt {
            format: RECEIPT_FORMAT.into(),
            relay_key: "RWQkey".into(),
            batch_id: BatchId::from_bytes([1; 16]),
            sequence: 4,
            manifest_sha256: Digest::of(b"m"),
        };
        assert_eq!(Receipt::from_json(&r.to_json()).unwrap(), r);
        let mut bad = r.clone();
        bad.format = "x".into();
        assert!(Receipt::from_json(&bad.to_json()).is_err());
        assert!(Receipt::from_json(b"not json").is_err());
    }
}
