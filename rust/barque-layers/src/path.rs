//! Entry path normalisation: what a tar entry name means inside the layer, or why it is refused.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("entry has an empty name")]
    Empty,
    #[error("entry {entry:?}: name contains a NUL byte")]
    Nul { entry: String },
    #[error("entry {entry:?}: absolute path")]
    Absolute { entry: String },
    #[error("entry {entry:?}: \"..\" path component would escape the layer")]
    DotDot { entry: String },
}

/// A normalised, relative path inside the layer: no `.`, `..` or empty components.
/// No components at all means the layer root itself (an entry named `./`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EntryPath {
    parts: Vec<OsString>,
}

impl EntryPath {
    /// Normalises a raw tar name. A leading `./` (as `tar -C dir .` writes) is fine;
    /// `..` anywhere, a leading `/` and NUL bytes are refused rather than rewritten, since a
    /// layer carrying them is hostile or broken.
    pub fn parse(raw: &[u8]) -> Result<Self, PathError> {
        let entry = || String::from_utf8_lossy(raw).into_owned();
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.contains(&0) {
            return Err(PathError::Nul { entry: entry() });
        }
        if raw.starts_with(b"/") {
            return Err(PathError::Absolute { entry: entry() });
        }
        let mut parts = Vec::new();
        for part in raw.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(PathError::DotDot { entry: entry() }),
                name => parts.push(OsString::from_vec(name.to_vec())),
            }
        }
        Ok(EntryPath { parts })
    }

    pub fn components(&self) -> &[OsString] {
        &self.parts
    }

    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// Components of the directory holding this entry.
    pub fn parent(&self) -> &[OsString] {
        match self.parts.split_last() {
            Some((_, parent)) => parent,
            None => &[],
        }
    }

    pub fn file_name(&self) -> Option<&OsStr> {
        self.parts.last().map(OsString::as_os_str)
    }

    /// `a/b/c`, the key under which entries are remembered.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    /// Joins a sibling name onto this entry's parent.
    pub fn sibling(&self, name: &OsStr) -> EntryPath {
        let mut parts = self.parent().to_vec();
        parts.push(name.to_owned());
        EntryPath { parts }
    }

    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        EntryPath::parse(raw.as_bytes()).map(|p| p.display())
    }

    #[test]
    fn normalises_harmless_forms() {
        assert_eq!(norm("./etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(norm("etc//passwd").unwrap(), "etc/passwd");
        assert_eq!(norm("etc/./x/").unwrap(), "etc/x");
        assert_eq!(norm("a..b/..c/c..").unwrap(), "a..b/..c/c..");
        assert_eq!(norm("...").unwrap(), "...");
        assert_eq!(norm("./").unwrap(), "");
        assert!(EntryPath::parse(b".").unwrap().is_root());
    }

    #[test]
    fn refuses_escapes() {
        assert!(matches!(
            norm("../etc/passwd"),
            Err(PathError::DotDot { .. })
        ));
        assert!(matches!(norm("a/../../b"), Err(PathError::DotDot { .. })));
        assert!(matches!(norm("a/.."), Err(PathError::DotDot { .. })));
        assert!(matches!(norm("./.."), Err(PathError::DotDot { .. })));
        assert!(matches!(
            norm("/etc/passwd"),
            Err(PathError::Absolute { .. })
        ));
        assert!(matches!(norm("//etc"), Err(PathError::Absolute { .. })));
        assert_eq!(norm(""), Err(PathError::Empty));
        assert!(matches!(
            EntryPath::parse(b"a\0b"),
            Err(PathError::Nul { .. })
        ));
    }

    #[test]
    fn parent_and_name() {
        let p = EntryPath::parse(b"a/b/c").unwrap();
        assert_eq!(p.parent(), &[OsString::from("a"), OsString::from("b")]);
        assert_eq!(p.file_name(), Some(OsStr::new("c")));
        assert_eq!(p.sibling(OsStr::new("d")).display(), "a/b/d");
        let top = EntryPath::parse(b"c").unwrap();
        assert!(top.parent().is_empty());
    }
}
