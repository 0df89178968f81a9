//! Batches: choosing what to export, recording batches, and the
//! acknowledgement that deletes their submissions.

use std::collections::BTreeMap;

use format::{BatchId, Digest, SubmissionId};

use super::segments::{self, SegmentRecord};
use super::{
    AckOutcome, BATCH, BatchDocuments, BatchRecord, MANIFEST, META, SIGNATURE, Space, Store,
    SubmissionMeta, decode, encode, id_from_key, key, lock, store_err,
};
use crate::Error;

impl Store {
    /// Up to `limit` submissions not yet in any batch: those received on
    /// the earliest days first, returned in id order.
    ///
    /// Oldest first, so that a backlog larger than a batch cannot hold a
    /// submission back indefinitely: ids are random, and taking the
    /// lowest ids would let every newer submission with a lower id go
    /// ahead of it. Within a day the order is the (random) id order: the
    /// index records no finer time, by design.
    pub fn unexported(&self, limit: usize) -> Result<Vec<(SubmissionId, SubmissionMeta)>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch.is_none() {
                out.push((id_from_key(&k)?, meta));
            }
        }
        // Stable: ties keep the scan's id order.
        out.sort_by_key(|(_, meta)| meta.received_day);
        out.truncate(limit);
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// Every submission held, in id order.
    pub fn submissions(&self) -> Result<Vec<(SubmissionId, SubmissionMeta)>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            out.push((id_from_key(&k)?, decode("submission metadata", &v)?));
        }
        Ok(out)
    }

    /// The most recent batch, if any.
    pub fn last_batch(&self) -> Result<Option<BatchRecord>, Error> {
        self.inner
            .db
            .scan_prefix([BATCH])
            .next_back()
            .transpose()
            .map_err(store_err("read the last batch"))?
            .map(|(_, v)| decode("batch record", &v))
            .transpose()
    }

    /// Records a new batch and marks its submissions exported, atomically.
    pub fn record_batch(
        &self,
        record: &BatchRecord,
        manifest: &[u8],
        signature: &[u8],
        ids: &[SubmissionId],
    ) -> Result<(), Error> {
        // Held so that a compaction cannot rewrite these entries meanwhile.
        let _table = lock(&self.inner.table);
        let seq = record.sequence.to_be_bytes();
        let mut batch = sled::Batch::default();
        batch.insert(key(BATCH, &seq), encode(record));
        batch.insert(key(MANIFEST, &seq), manifest);
        batch.insert(key(SIGNATURE, &seq), signature);
        for id in ids {
            let mut meta = self
                .inner
                .meta(id)?
                .ok_or_else(|| Error::Corrupt(format!("batch lists unknown submission {id}")))?;
            meta.batch = Some(record.sequence);
            batch.insert(key(META, id.as_bytes()), encode(&meta));
        }
        self.inner
            .db
            .apply_batch(batch)
            .map_err(store_err("record a batch"))
    }

    /// Batches not yet acknowledged, oldest first.
    pub fn unacked_batches(&self) -> Result<Vec<BatchRecord>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix([BATCH]) {
            let (_, v) = item.map_err(store_err("scan batches"))?;
            let record: BatchRecord = decode("batch record", &v)?;
            if !record.acked {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Finds a batch by id.
    pub fn batch(&self, id: &BatchId) -> Result<Option<BatchRecord>, Error> {
        for item in self.inner.db.scan_prefix([BATCH]).rev() {
            let (_, v) = item.map_err(store_err("scan batches"))?;
            let record: BatchRecord = decode("batch record", &v)?;
            if record.batch_id == *id {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// The manifest and signature bytes of an unacknowledged batch.
    pub fn batch_documents(&self, sequence: u64) -> Result<Option<BatchDocuments>, Error> {
        let seq = sequence.to_be_bytes();
        let db = &self.inner.db;
        let manifest = db
            .get(key(MANIFEST, &seq))
            .map_err(store_err("read a manifest"))?;
        let sig = db
            .get(key(SIGNATURE, &seq))
            .map_err(store_err("read a signature"))?;
        Ok(manifest.zip(sig).map(|(m, s)| BatchDocuments {
            manifest: m.to_vec(),
            signature: s.to_vec(),
        }))
    }

    /// Deletes the submissions of batch `id` if `manifest_sha256` is its
    /// manifest hash: in one atomic index change, their entries go and
    /// their bytes count as dead in their segments (compaction removes
    /// them from the disk). Durable when this returns.
    pub fn ack(&self, id: &BatchId, manifest_sha256: &Digest) -> Result<AckOutcome, Error> {
        let record = self.batch(id)?.ok_or(Error::UnknownBatch(*id))?;
        if record.manifest_sha256 != *manifest_sha256 {
            return Err(Error::AckMismatch(*id));
        }
        if record.acked {
            return Ok(AckOutcome::AlreadyAcked);
        }
        let inner = &self.inner;
        let mut table = lock(&inner.table);
        let seq = record.sequence.to_be_bytes();
        let mut batch = sled::Batch::default();
        let mut deleted = 0u64;
        let mut bytes = 0u64;
        let mut dead: BTreeMap<u32, SegmentRecord> = BTreeMap::new();
        for item in inner.db.scan_prefix([META]) {
            let (k, v) = item.map_err(store_err("scan submissions"))?;
            let meta: SubmissionMeta = decode("submission metadata", &v)?;
            if meta.batch != Some(record.sequence) {
                continue;
            }
            batch.remove(k);
            deleted += 1;
            bytes = bytes.saturating_add(meta.size);
            if let Some(at) = meta.at
                && let Some(r) = dead
                    .get(&at.segment)
                    .or_else(|| table.records.get(&at.segment))
                    .copied()
            {
                dead.insert(
                    at.segment,
                    SegmentRecord {
                        dead: r.dead.saturating_add(meta.size).min(r.len),
                        ..r
                    },
                );
            }
        }
        for (n, r) in &dead {
            batch.insert(segments::record_key(*n), encode(r));
        }
        batch.remove(key(MANIFEST, &seq));
        batch.remove(key(SIGNATURE, &seq));
        let acked = BatchRecord {
            acked: true,
            ..record
        };
        batch.insert(key(BATCH, &seq), encode(&acked));
        inner
            .db
            .apply_batch(batch)
            .map_err(store_err("delete acknowledged submissions"))?;
        inner.db.flush().map_err(store_err("flush the index"))?;
        for (n, r) in dead {
            table.records.insert(n, r);
        }
        drop(table);
        Space::release(&inner.space.used, bytes);
        Ok(AckOutcome::Deleted(deleted))
    }
}
