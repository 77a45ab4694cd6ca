//! Compressed text read through: gzip, zstd, bzip2 — by key suffix or magic bytes.

use std::io::Read;

use crate::crawl::error::ObjectFailure;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
}

impl Compression {
    /// From the key's last suffix.
    pub fn from_key(key: &str) -> Compression {
        let lower = key.to_ascii_lowercase();
        if lower.ends_with(".gz") || lower.ends_with(".gzip") {
            Compression::Gzip
        } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
            Compression::Zstd
        } else if lower.ends_with(".bz2") {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    /// From the first bytes of an object.
    pub fn from_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") && head.len() > 3 && head[3].is_ascii_digit() {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }
}

/// The key without its compression suffix (`a/b.csv.gz` → `a/b.csv`).
pub fn strip_suffix(key: &str) -> &str {
    for suffix in [".gz", ".gzip", ".zst", ".zstd", ".bz2"] {
        if key.len() > suffix.len() && key.to_ascii_lowercase().ends_with(suffix) {
            return &key[..key.len() - suffix.len()];
        }
    }
    key
}

/// Decompresses `data`. With `partial`, `data` is a prefix of the object: decoding stops
/// quietly at its end and at most `limit` bytes are returned.
pub fn decompress(
    data: &[u8],
    compression: Compression,
    partial: bool,
    limit: usize,
) -> Result<Vec<u8>, ObjectFailure> {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => {
            return Ok(data[..data.len().min(limit)].to_vec());
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(data)
                .map_err(|e| ObjectFailure::Decompress(e.to_string()))?,
        ),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(data)),
    };
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut reader = reader;
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() >= limit {
                    out.truncate(limit);
                    break;
                }
            }
            Err(_) if partial && !out.is_empty() => break,
            Err(e) => return Err(ObjectFailure::Decompress(e.to_string())),
        }
    }
    Ok(out)
}

/// Decompresses a whole object, refusing one that expands past `limit` bytes (a
/// decompression bomb is reported against its key, never held in memory).
pub fn decompress_whole(
    data: &[u8],
    compression: Compression,
    limit: usize,
) -> Result<Vec<u8>, ObjectFailure> {
    let out = decompress(data, compression, false, limit.saturating_add(1))?;
    if out.len() > limit {
        return Err(ObjectFailure::TooLarge {
            what: "the decompressed object",
            limit: limit as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("gzip");
        enc.finish().expect("gzip")
    }

    #[test]
    fn a_decompression_bomb_is_refused_not_held() {
        // 64 MiB of zeros gzip to about 64 KiB
        let gz = gzip(&vec![0u8; 64 << 20]);
        assert!(gz.len() < 1 << 20);
        let err = decompress_whole(&gz, Compression::Gzip, 1 << 20).expect_err("over the cap");
        assert!(
            err.to_string().contains("over the limit of 1048576 bytes"),
            "{err}"
        );
        let small = gzip(b"a,b\n1,2\n");
        assert_eq!(
            decompress_whole(&small, Compression::Gzip, 1 << 20).expect("small"),
            b"a,b\n1,2\n"
        );
        assert!(decompress_whole(b"abc", Compression::None, 2).is_err());
    }

    #[test]
    fn reads_through_gzip_zstd_bzip2() {
        let text = b"a,b\n1,2\n".repeat(1000);
        let gz = gzip(&text);
        assert_eq!(Compression::from_magic(&gz), Compression::Gzip);
        assert_eq!(
            decompress(&gz, Compression::Gzip, false, usize::MAX).expect("gz"),
            text
        );
        let zs = zstd::encode_all(&text[..], 3).expect("zstd");
        assert_eq!(Compression::from_magic(&zs), Compression::Zstd);
        assert_eq!(
            decompress(&zs, Compression::Zstd, false, usize::MAX).expect("zstd"),
            text
        );
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&text).expect("bz2");
        let bz = bz.finish().expect("bz2");
        assert_eq!(Compression::from_magic(&bz), Compression::Bzip2);
        assert_eq!(
            decompress(&bz, Compression::Bzip2, false, usize::MAX).expect("bz2"),
            text
        );
    }

    #[test]
    fn partial_gzip_yields_a_prefix() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let gz = gzip(&text);
        let head =
            decompress(&gz[..gz.len() / 2], Compression::Gzip, true, usize::MAX).expect("partial");
        assert!(!head.is_empty() && text.starts_with(&head));
        assert!(decompress(&gz[..gz.len() / 2], Compression::Gzip, false, usize::MAX).is_err());
        assert_eq!(strip_suffix("a/b.csv.gz"), "a/b.csv");
    }
}
