//! The stripped image that boots, and the unstripped copy kept beside it.
//!
//! Cargo links an image with its symbols and line tables (profile `release-small`). Every image
//! build then keeps that file as `IMAGE.debug` (what `morgana-qemu` symbolizes a crash's
//! backtrace against, and what a debugger loads) and replaces `IMAGE` with the bytes a loader
//! reads: the ELF header, the program headers and the segments' contents. Debug sections come
//! after all of those in the file, so cutting the file at the segments' end drops them, with the
//! symbol table and the section headers, and leaves every loaded byte where it was.

use std::path::Path;

use morgana_qemu::debug_path;

use crate::Failure;

/// Keep `image` (as cargo linked it) as `IMAGE.debug`, and write its stripped form as `image`.
/// An image already stripped (cargo found nothing to relink or copy) is left as it is.
pub fn split(image: &Path) -> Result<(), Failure> {
    let fail = |what: &str, e: std::io::Error| Failure::new(format!("{what} {}: {e}", image.display()));
    let bytes = std::fs::read(image).map_err(|e| fail("cannot read", e))?;
    let debug = debug_path(image);
    let Some(stripped) = strip(&bytes).map_err(|e| Failure::new(format!("{}: {e}", image.display())))? else {
        return if debug.exists() {
            Ok(())
        } else {
            Err(Failure::new(format!(
                "{}: stripped, and no {} beside it: remove the image and build again",
                image.display(),
                debug.display()
            )))
        };
    };
    std::fs::write(&debug, &bytes).map_err(|e| fail("cannot write the unstripped copy of", e))?;
    // A new file renamed over the old name: cargo's copy of the image may be a hard link to its
    // own output, which must stay whole.
    let tmp = image.with_extension("stripping");
    std::fs::write(&tmp, stripped)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::metadata(image)?.permissions()))
        .map_err(|e| fail("cannot write the stripped", e))?;
    std::fs::rename(&tmp, image).map_err(|e| fail("cannot replace", e))
}

/// `elf` cut after its last segment's bytes, with no section headers; `None` if it has none
/// already (stripped before).
pub fn strip(elf: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at =
        |at: usize| elf.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "truncated ELF headers".to_string();
    let (phoff, shnum) = (u64_at(0x20).ok_or_else(bad)?, u16_at(0x3c).ok_or_else(bad)?);
    let (phentsize, phnum) = (u16_at(0x36).ok_or_else(bad)?, u16_at(0x38).ok_or_else(bad)?);
    if shnum == 0 {
        return Ok(None);
    }
    let mut end = phoff + u64::from(phentsize) * u64::from(phnum);
    for i in 0..usize::from(phnum) {
        let ph = phoff as usize + i * usize::from(phentsize);
        let (offset, filesz) = (u64_at(ph + 8).ok_or_else(bad)?, u64_at(ph + 32).ok_or_else(bad)?);
        if filesz > 0 {
            end = end.max(offset + filesz);
        }
    }
    let mut out = elf.get(..end as usize).ok_or("a segment ends past the end of the file")?.to_vec();
    // e_shoff, e_shnum and e_shstrndx: no section headers.
    out[0x28..0x30].fill(0);
    out[0x3c..0x40].fill(0);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit ELF header, one program header for a segment at `seg` of `len` bytes, and
    /// `tail` bytes of sections after it (section headers claimed).
    fn elf(seg: u64, len: u64, tail: usize) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 56];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        e[0x28..0x30].copy_from_slice(&0x1234u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        e[0x3c..0x3e].copy_from_slice(&7u16.to_le_bytes());
        e[0x40 + 8..0x40 + 16].copy_from_slice(&seg.to_le_bytes());
        e[0x40 + 32..0x40 + 40].copy_from_slice(&len.to_le_bytes());
        e.resize(seg as usize + len as usize, 0xaa);
        e.resize(e.len() + tail, 0xdd);
        e
    }

    #[test]
    fn stripping_keeps_the_segments_and_drops_what_follows() {
        let image = elf(0x1000, 0x300, 5000);
        let out = strip(&image).unwrap().unwrap();
        assert_eq!(out.len(), 0x1300);
        assert_eq!(out[0x40..], image[0x40..0x1300], "program headers and segment bytes unchanged");
        assert_eq!((&out[0x28..0x30], &out[0x3c..0x40]), (&[0u8; 8][..], &[0u8; 4][..]));
        assert_eq!(strip(&out).unwrap(), None, "a stripped image is left alone");
    }

    #[test]
    fn a_file_that_is_not_an_image_is_one_error() {
        assert!(strip(b"#!/bin/sh\n").unwrap_err().contains("not a 64-bit"));
        let mut short = elf(0x1000, 0x300, 0);
        short.truncate(0x1100);
        assert!(strip(&short).unwrap_err().contains("past the end"));
    }
}
