//! Open an arbitrary image and run arbitrary operations on it, for fuzz targets: whatever the
//! bytes, every failure comes back as an error value, never a panic.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use morgana::block::{Block, BlockError, BlockInfo};
use morgana::kv::{Key, KvRo, KvRw};
use morgana::time::WallClock;

use crate::{Batch, Store};

/// A RAM disk of 512-byte sectors holding an image.
pub struct Image {
    data: Vec<u8>,
}

impl Image {
    /// The image, cut to whole sectors.
    pub fn new(bytes: &[u8]) -> Self {
        let len = bytes.len() / 512 * 512;
        Self { data: bytes[..len].to_vec() }
    }

    /// The bytes now.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl Block for Image {
    fn info(&self) -> BlockInfo {
        BlockInfo { sector_size: 512, sectors: self.data.len() as u64 / 512, read_only: false }
    }
    async fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info().check(sector, buf.len())?;
        let at = sector as usize * 512;
        buf.copy_from_slice(&self.data[at..at + buf.len()]);
        Ok(())
    }
    async fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.info().check(sector, buf.len())?;
        let at = sector as usize * 512;
        self.data[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}

struct Epoch;

impl WallClock for Epoch {
    fn now_unix(&self) -> Duration {
        Duration::from_secs(1_700_000_000)
    }
}

const KEYS: [&str; 8] = ["/a", "/a/b", "/a/c", "/d", "/d/e/f", "/d/e/g", "/h", "/a/b/x"];

/// Open `image` as a store (formatting it if it is all zeros) and apply the operations that
/// `script` encodes, four bytes each: operation, key, size or offset, fill byte. Returns how
/// many succeeded, or `None` if the image was refused.
pub async fn exercise(image: &[u8], script: &[u8]) -> Option<usize> {
    let store = Store::open(Image::new(image), Epoch).await.ok()?;
    let key = |b: u8| Key::parse(KEYS[b as usize % KEYS.len()]).expect("valid key");
    let mut ok = 0;
    for op in script.chunks_exact(4) {
        let (k, n, fill) = (key(op[1]), op[2] as usize, op[3]);
        let value = vec![fill; n * 61];
        let done = match op[0] % 10 {
            0 => store.set(&k, &value).await.is_ok(),
            1 => store.set_partial(&k, (n * 97) as u64, &value[..n.min(value.len())]).await.is_ok(),
            2 => store.remove(&k).await.is_ok(),
            3 => store.rename(&k, &key(fill)).await.is_ok(),
            4 => store.get(&k).await.is_ok(),
            5 => store.get_partial(&k, (n * 53) as u64, 5000).await.is_ok(),
            6 => store.list(&k.parent()).await.is_ok(),
            7 => store.digest(&k).await.is_ok() && store.last_modified(&k).await.is_ok(),
            8 => store.allocate(&k, (n * 1000) as u64).await.is_ok(),
            _ => {
                let mut b = Batch::new();
                b.set(k.clone(), value.clone()).remove(key(fill));
                store.batch(&b).await.is_ok()
            }
        };
        ok += done as usize;
    }
    Some(ok)
}
