//! A packet buffer with headroom, like an mbuf or an skb: the packet occupies
//! `storage[head..head + len]`, and headers can be pushed into the bytes before `head`.

use super::error::{Error, Result};

/// A packet inside a larger buffer, with headroom before it and tailroom after it.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    storage: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> PacketBuf<'a> {
    /// A packet of `len` bytes starting at `head` in `storage`.
    ///
    /// # Errors
    /// [`Error::BadBounds`] when the packet does not lie inside `storage`.
    pub fn new(storage: &'a mut [u8], head: usize, len: usize) -> Result<Self> {
        let end = head.checked_add(len).ok_or(Error::BadBounds)?;
        if end > storage.len() {
            return Err(Error::BadBounds);
        }
        Ok(PacketBuf { storage, head, len })
    }

    /// Offset of the first packet byte in the storage.
    #[must_use]
    pub fn head(&self) -> usize {
        self.head
    }

    /// Packet length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty packet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free before the packet.
    #[must_use]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// The packet bytes.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        self.storage.get(self.head..self.head.saturating_add(self.len)).unwrap_or(&[])
    }

    /// The packet bytes, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.head.saturating_add(self.len);
        self.storage.get_mut(self.head..end).unwrap_or(&mut [])
    }

    /// Grows the packet by `n` bytes at the front (into headroom); the new bytes keep whatever
    /// the storage held.
    ///
    /// # Errors
    /// [`Error::NoHeadroom`].
    pub fn push_head(&mut self, n: usize) -> Result<()> {
        self.head = self.head.checked_sub(n).ok_or(Error::NoHeadroom)?;
        self.len = self.len.saturating_add(n);
        Ok(())
    }

    /// Removes `n` bytes from the front of the packet.
    ///
    /// # Errors
    /// [`Error::BadBounds`] when the packet is shorter than `n`.
    pub fn pull_head(&mut self, n: usize) -> Result<()> {
        self.len = self.len.checked_sub(n).ok_or(Error::BadBounds)?;
        self.head = self.head.saturating_add(n);
        Ok(())
    }

    /// Shortens the packet to `len` bytes (drops link-layer padding, for example).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}
