//! Follow-up threads and the replies waiting in them.

use format::{ReplyId, ReplyImport, ThreadId};

use super::{
    DELETED_REPLY, LOOKUP, REPLY, Store, THREAD, ThreadRecord, decode, encode, key, store_err,
};
use crate::Error;

impl Store {
    /// Records a new follow-up thread: `lookup` (from the codename) leads
    /// to `thread`, whose source's recipient is `recipient`. Durable after
    /// the next [`Store::sync`]. Refuses to replace an existing lookup id
    /// (two codenames deriving the same 256-bit id does not happen; if it
    /// ever did, the second source must not take over the first's thread).
    pub fn create_thread(
        &self,
        lookup: &[u8; 32],
        thread: ThreadId,
        record: &ThreadRecord,
    ) -> Result<(), Error> {
        let db = &self.inner.db;
        let swapped = db
            .compare_and_swap(
                key(LOOKUP, lookup),
                None as Option<&[u8]>,
                Some(&thread.as_bytes()[..]),
            )
            .map_err(store_err("record a thread"))?;
        if swapped.is_err() {
            return Err(Error::Corrupt(
                "a codename's lookup id is already in use".into(),
            ));
        }
        db.insert(key(THREAD, thread.as_bytes()), encode(record))
            .map_err(store_err("record a thread"))?;
        Ok(())
    }

    /// Forgets a thread that was created for a submission that then failed
    /// (its source never saw the codename).
    pub fn remove_thread(&self, lookup: &[u8; 32], thread: ThreadId) -> Result<(), Error> {
        let db = &self.inner.db;
        db.remove(key(LOOKUP, lookup))
            .map_err(store_err("remove a thread"))?;
        db.remove(key(THREAD, thread.as_bytes()))
            .map_err(store_err("remove a thread"))?;
        Ok(())
    }

    /// The thread a lookup id leads to, if any.
    pub fn thread_for_lookup(&self, lookup: &[u8; 32]) -> Result<Option<ThreadId>, Error> {
        let Some(v) = self
            .inner
            .db
            .get(key(LOOKUP, lookup))
            .map_err(store_err("look up a thread"))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 16] = v[..]
            .try_into()
            .map_err(|_| Error::Corrupt("a thread lookup entry is not 16 bytes".into()))?;
        Ok(Some(ThreadId::from_bytes(bytes)))
    }

    /// A thread's record.
    pub fn thread(&self, id: &ThreadId) -> Result<Option<ThreadRecord>, Error> {
        self.inner
            .db
            .get(key(THREAD, id.as_bytes()))
            .map_err(store_err("read a thread"))?
            .map(|v| decode("thread record", &v))
            .transpose()
    }

    /// Stores reviewers' replies, all or none: if any names a thread the
    /// store does not hold, nothing is stored and the error names it.
    /// A reply already held, or deleted by its source, is not stored again.
    /// Durable when this returns (it flushes the index).
    pub fn import_replies(
        &self,
        replies: &[(ThreadId, ReplyId, Vec<u8>)],
    ) -> Result<ReplyImport, Error> {
        let db = &self.inner.db;
        for (thread, _, _) in replies {
            if self.thread(thread)?.is_none() {
                return Err(Error::BadReplies(format!(
                    "thread {thread} is not on this relay (check the batch it came from)"
                )));
            }
        }
        let mut outcome = ReplyImport {
            stored: 0,
            already_held: 0,
            deleted_by_source: 0,
        };
        let mut batch = sled::Batch::default();
        for (thread, id, ciphertext) in replies {
            let mut k = thread.as_bytes().to_vec();
            k.extend_from_slice(id.as_bytes());
            if db
                .contains_key(key(DELETED_REPLY, &k))
                .map_err(store_err("import replies"))?
            {
                outcome.deleted_by_source += 1;
            } else if db
                .contains_key(key(REPLY, &k))
                .map_err(store_err("import replies"))?
            {
                outcome.already_held += 1;
            } else {
                batch.insert(key(REPLY, &k), &ciphertext[..]);
                outcome.stored += 1;
            }
        }
        db.apply_batch(batch).map_err(store_err("import replies"))?;
        db.flush().map_err(store_err("flush the index"))?;
        Ok(outcome)
    }

    /// A thread's replies (id, age ciphertext), in id order.
    pub fn replies(&self, thread: &ThreadId) -> Result<Vec<(ReplyId, Vec<u8>)>, Error> {
        let mut out = Vec::new();
        for item in self.inner.db.scan_prefix(key(REPLY, thread.as_bytes())) {
            let (k, v) = item.map_err(store_err("read replies"))?;
            let bytes: [u8; 16] = k
                .get(17..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Error::Corrupt("a reply key has the wrong length".into()))?;
            out.push((ReplyId::from_bytes(bytes), v.to_vec()));
        }
        Ok(out)
    }

    /// Deletes a reply for good (the source read it) and remembers its id
    /// so that importing it again does not bring it back. Returns whether
    /// it was there. Durable after the next [`Store::sync`].
    ///
    /// Like every deletion here, this does not erase the disk blocks that
    /// held the ciphertext (see the module notes): what may linger is
    /// ciphertext only the source's identity and the reviewers' can open.
    pub fn delete_reply(&self, thread: &ThreadId, id: &ReplyId) -> Result<bool, Error> {
        let mut k = thread.as_bytes().to_vec();
        k.extend_from_slice(id.as_bytes());
        let db = &self.inner.db;
        let removed = db
            .remove(key(REPLY, &k))
            .map_err(store_err("delete a reply"))?;
        if removed.is_some() {
            db.insert(key(DELETED_REPLY, &k), &[][..])
                .map_err(store_err("delete a reply"))?;
        }
        Ok(removed.is_some())
    }
}
