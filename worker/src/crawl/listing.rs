//! Which listed keys a target crawls: `exclude` globs relative to the prefix (`*` one level,
//! `**` any depth), folder markers and hidden/marker files skipped.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::crawl::error::CrawlError;

/// Compiled `exclude` patterns of a target.
#[derive(Debug)]
pub struct Excludes(GlobSet);

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Excludes, CrawlError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|source| CrawlError::Glob {
                    pattern: p.clone(),
                    source,
                })?;
            b.add(glob);
        }
        b.build().map(Excludes).map_err(|source| CrawlError::Glob {
            pattern: patterns.join(","),
            source,
        })
    }

    pub fn excluded(&self, rel: &str) -> bool {
        self.0.is_match(rel)
    }
}

/// The key relative to the target prefix; a prefix naming one object gives its file name.
pub fn relative<'a>(prefix: &str, key: &'a str) -> &'a str {
    if key == prefix {
        return key.rsplit('/').next().unwrap_or(key);
    }
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    rest.trim_start_matches('/')
}

/// Keys that are never data: folder markers, Spark/Hadoop markers and hidden files.
pub fn is_noise(key: &str, size: u64) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    (key.ends_with('/') && size == 0)
        || name.starts_with('_')
        || name.starts_with('.')
        || name.ends_with(".crc")
}

/// The prefix to LIST for a target: a folder prefix gets its trailing `/`… unless it names an
/// object, which LIST returns too (a prefix is a prefix).
pub fn list_prefix(prefix: &str) -> &str {
    prefix
}

/// Whether a listed key belongs to the target: under the folder `prefix/`, or the object
/// `prefix` itself (so `data/orders` does not pick up `data/orders_old/…`).
pub fn in_target(prefix: &str, key: &str) -> bool {
    prefix.is_empty()
        || prefix.ends_with('/')
        || key == prefix
        || key.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_relative_and_levelled() {
        let ex = Excludes::new(&[
            "*.tmp".into(),
            "**/skip/**".into(),
            "logs/{a,b}?.csv".into(),
        ])
        .expect("globs");
        assert!(ex.excluded("x.tmp"));
        assert!(!ex.excluded("dir/x.tmp"), "* does not cross folders");
        assert!(ex.excluded("a/skip/b/c.csv"));
        assert!(ex.excluded("logs/a1.csv"));
        assert!(!ex.excluded("logs/c1.csv"));
        assert!(Excludes::new(&["[".into()]).is_err());
    }

    #[test]
    fn relative_keys_and_targets() {
        assert_eq!(relative("raw/", "raw/a/b.csv"), "a/b.csv");
        assert_eq!(relative("raw", "raw/a/b.csv"), "a/b.csv");
        assert_eq!(relative("raw/one.csv", "raw/one.csv"), "one.csv");
        assert!(in_target("data/orders", "data/orders/x.csv"));
        assert!(!in_target("data/orders", "data/orders_old/x.csv"));
        assert!(is_noise("a/_SUCCESS", 0));
        assert!(is_noise("a/", 0));
        assert!(!is_noise("a/b.csv", 0));
    }
}
