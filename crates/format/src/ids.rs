//! Identifiers and digests, written as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// Defines a fixed-size byte value written as lowercase hex in every format.
macro_rules! hex_value {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The value from its raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Spec: lowercase hex, exactly twice the byte length. Upper
                // case is refused so that every value has one spelling and
                // file names derived from it cannot collide.
                let ok = s.len() == 2 * $len
                    && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                let mut out = [0u8; $len];
                if !ok || hex::decode_to_slice(s, &mut out).is_err() {
                    return Err(crate::Error::invalid(
                        $what,
                        format!("expected {} lowercase hex digits", 2 * $len),
                    ));
                }
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_value!(
    /// A submission's random 128-bit identifier. It is drawn from the OS
    /// random source and says nothing about the source or the time.
    SubmissionId,
    16,
    "submission id"
);

hex_value!(
    /// A batch's random 128-bit identifier.
    BatchId,
    16,
    "batch id"
);

hex_value!(
    /// A follow-up thread's random 128-bit identifier. It joins a source's
    /// first submission, the submissions they add later and the reviewers'
    /// replies. It is drawn at random when the source takes a codename and
    /// is not derived from the codename.
    ThreadId,
    16,
    "thread id"
);

hex_value!(
    /// A reply's random 128-bit identifier, chosen by the reviewer who
    /// writes it (so importing the same reply twice stores it once).
    ReplyId,
    16,
    "reply id"
);

hex_value!(
    /// A SHA-256 digest.
    Digest,
    32,
    "sha256"
);

impl Digest {
    /// The SHA-256 digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(sha2::Sha256::digest(data).into())
    }

    /// The digest held by a finished hasher.
    pub fn from_hasher(hasher: sha2::Sha256) -> Self {
        Self(hasher.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_uppercase_and_wrong_length() {
        assert!(
            "00112233445566778899AABBCCDDEEFF"
                .parse::<SubmissionId>()
                .is_err()
        );
        assert!("00112233".parse::<SubmissionId>().is_err());
        assert!(
            "00112233445566778899aabbccddeeff"
                .parse::<SubmissionId>()
                .is_ok()
        );
    }

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 16]>()) {
            let id = SubmissionId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<SubmissionId>().unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<SubmissionId>(&json).unwrap(), id);
        }
    }
}
