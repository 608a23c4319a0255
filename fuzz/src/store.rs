//! The durable store (`morgana-store`): an arbitrary device image, then arbitrary operations on
//! it, through `morgana_store::exercise`.
//!
//! Checked besides "no panic" (see `exercise`'s docs): an image that is refused is refused in one
//! line and left untouched, a blank one is formatted; a store whose contents can be read whole at
//! open behaves like a model of Mirage_kv semantics (every success is one the model allows, with
//! its effect; reads return the model's bytes; failures change nothing), and after the run it,
//! and the store opened again from the image, equal the model.
//!
//! Input: one byte `n`, then `4 n` bytes of script (four bytes an operation), then patches laid
//! on a blank 640 KiB device: `page u8, offset u16, len u16, bytes` (with the top bit of `len`
//! set, one byte repeated `len` times instead). A store's image is a few pages of headers,
//! records and nodes, so its patches stay well under libFuzzer's length limit.

use futures::executor::block_on;
use morgana_store::exercise::exercise;

/// Pages of the device the patches are laid on.
const PAGES: usize = 160;
const PAGE: usize = 4096;
const FILL: u16 = 0x8000;

/// The device image and the script an input describes.
fn decode(data: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut image = vec![0u8; PAGES * PAGE];
    let Some((&n, rest)) = data.split_first() else { return (image, &[]) };
    let (script, mut patches) = rest.split_at((4 * n as usize).min(rest.len()));
    while patches.len() >= 5 {
        let at = (patches[0] as usize % PAGES) * PAGE
            + u16::from_le_bytes([patches[1], patches[2]]) as usize % PAGE;
        let len = u16::from_le_bytes([patches[3], patches[4]]);
        patches = &patches[5..];
        let room = image.len() - at;
        if len & FILL != 0 {
            let Some((&b, rest)) = patches.split_first() else { break };
            let n = ((len & !FILL) as usize).min(room);
            image[at..at + n].fill(b);
            patches = rest;
        } else {
            let n = (len as usize).min(patches.len());
            let (bytes, rest) = patches.split_at(n);
            let n = n.min(room);
            image[at..at + n].copy_from_slice(&bytes[..n]);
            patches = rest;
        }
    }
    (image, script)
}

/// The inverse of [`decode`] for a whole image: its non-zero stretches as patches.
fn encode(image: &[u8], script: &[u8]) -> Vec<u8> {
    assert!(script.len().is_multiple_of(4) && script.len() / 4 <= 255);
    let mut out = vec![(script.len() / 4) as u8];
    out.extend_from_slice(script);
    for (p, page) in image.chunks(PAGE).enumerate() {
        let mut i = 0;
        while i < PAGE {
            if page[i] == 0 {
                i += 1;
                continue;
            }
            // A stretch that ends at eight zeros in a row.
            let mut j = i;
            while j < PAGE && page[j..(j + 8).min(PAGE)].iter().any(|b| *b != 0) {
                j += 1;
            }
            let run = &page[i..j];
            out.push(p as u8);
            out.extend_from_slice(&(i as u16).to_le_bytes());
            if run.len() > 16 && run.iter().all(|b| *b == run[0]) {
                out.extend_from_slice(&(run.len() as u16 | FILL).to_le_bytes());
                out.push(run[0]);
            } else {
                out.extend_from_slice(&(run.len() as u16).to_le_bytes());
                out.extend_from_slice(run);
            }
            i = j;
        }
    }
    out
}

/// Open the image the input describes and run its script.
pub fn run(data: &[u8]) {
    let (image, script) = decode(data);
    if let Err(e) = block_on(exercise(&image, script)) {
        panic!("the store left the model: {e}");
    }
}

/// A script of every operation on every key.
fn every_op(fill: u8) -> Vec<u8> {
    let mut s = Vec::new();
    for op in 0..10u8 {
        for key in 0..8u8 {
            s.extend_from_slice(&[op, key, key * 3 + op, fill.wrapping_add(key)]);
        }
    }
    s
}

/// Images the store itself wrote: blank, a few small values, chunked values, a torn newest
/// record and a damaged header, each with a script to run on it.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("blank".to_string(), encode(&vec![0u8; PAGES * PAGE], &every_op(1)))];
    let scripts: [(&str, Vec<u8>); 3] = [
        ("small", vec![0, 0, 1, 7, 0, 3, 2, 8, 0, 6, 0, 9, 8, 4, 1, 0]),
        ("chunked", vec![0, 0, 80, 7, 1, 3, 70, 8, 8, 6, 30, 0, 9, 7, 100, 2]),
        ("nested", vec![0, 1, 1, 7, 0, 4, 2, 8, 0, 5, 3, 9, 3, 1, 0, 3, 0, 7, 1, 1]),
    ];
    for (name, script) in scripts {
        let made = block_on(exercise(&vec![0u8; PAGES * PAGE], &script))
            .expect("the store follows the model")
            .expect("a blank image is formatted");
        out.push((name.to_string(), encode(&made.image, &every_op(2))));
        // The newest commit record with a byte changed, in both copies: a torn tail.
        let mut torn = made.image.clone();
        let newest = (1..65)
            .step_by(2)
            .max_by_key(|p| u64::from_le_bytes(torn[p * PAGE + 16..p * PAGE + 24].try_into().unwrap()));
        if let Some(p) = newest {
            torn[p * PAGE + 100] ^= 1;
            torn[(p + 1) * PAGE + 100] ^= 1;
        }
        out.push((format!("{name}-torn-record"), encode(&torn, &every_op(3))));
        let mut header = made.image;
        header[20] ^= 4;
        out.push((format!("{name}-damaged-header"), encode(&header, &every_op(4))));
    }
    for (name, data) in &out {
        assert!(data.len() <= 16384, "seed {name} is {} bytes, past the fuzz length limit", data.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_rebuild_the_image() {
        let mut image = vec![0u8; PAGES * PAGE];
        image[5] = 1;
        image[4095] = 9;
        image[PAGE * 7..PAGE * 8].fill(0x41);
        image[PAGE * 159 + 10..PAGE * 159 + 20].copy_from_slice(b"0123456789");
        let data = encode(&image, &[1, 2, 3, 4]);
        assert_eq!(decode(&data), (image, &[1u8, 2, 3, 4][..]));
    }
}
