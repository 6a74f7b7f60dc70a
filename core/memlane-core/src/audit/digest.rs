//! Digests of ids, contents and sets: the keys and checksums the audits keep.

/// blake3-128 of some bytes.
pub fn digest16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// blake3-128 of a record id, the key the id and content audits keep (no allocation per
/// row; two ids collide with probability about 2^-128 per pair).
pub fn id_key(id: &str) -> u128 {
    u128::from_le_bytes(digest16(id.as_bytes()))
}

/// Hashes a `u128` key that is already a uniform digest: its low 64 bits.
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // not reached for u128 keys; FNV-1a keeps it correct for anything else
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Build hasher of maps keyed by [`id_key`].
pub type DigestState = std::hash::BuildHasherDefault<DigestHasher>;

/// An order-independent digest of a multiset of byte strings (sum and xor of their
/// blake3-128, and the count): equal sets give equal digests whatever the row order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetDigest {
    sum: u128,
    xor: u128,
    count: u64,
}

impl SetDigest {
    /// Add one element.
    pub fn add(&mut self, bytes: &[u8]) {
        self.add_digest(u128::from_le_bytes(digest16(bytes)));
    }

    /// Add one element by its blake3-128 (as [`id_key`] gives it).
    pub fn add_digest(&mut self, h: u128) {
        self.sum = self.sum.wrapping_add(h);
        self.xor ^= h;
        self.count += 1;
    }

    /// Elements added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Hex form, for reports and history.
    pub fn hex(&self) -> String {
        format!("{:032x}{:032x}", self.sum, self.xor)
    }
}

/// A row's content digest, bound to its id: blake3-128 of the id's [`id_key`], a flag
/// for absent content, and the content. One hash per row serves both the per-row
/// comparison and the version's root digest (the set of these).
pub fn content_digest(key: u128, content: Option<&str>) -> u128 {
    let c = content.map_or(&[][..], str::as_bytes);
    let n = 17 + c.len();
    let mut out = [0u8; 16];
    if n <= 256 {
        // short content (most memories): one contiguous buffer, one call
        let mut buf = [0u8; 256];
        buf[..16].copy_from_slice(&key.to_le_bytes());
        buf[16] = u8::from(content.is_some());
        buf[17..n].copy_from_slice(c);
        out.copy_from_slice(&blake3::hash(&buf[..n]).as_bytes()[..16]);
    } else {
        let mut h = blake3::Hasher::new();
        h.update(&key.to_le_bytes());
        h.update(&[u8::from(content.is_some())]);
        h.update(c);
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    }
    u128::from_le_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_digest_ignores_order() {
        let (mut a, mut b) = (SetDigest::default(), SetDigest::default());
        for x in ["a", "b", "c"] {
            a.add(x.as_bytes());
        }
        for x in ["c", "a", "b"] {
            b.add(x.as_bytes());
        }
        assert_eq!(a, b);
        b.add(b"d");
        assert_ne!(a.hex(), b.hex());
    }
}
