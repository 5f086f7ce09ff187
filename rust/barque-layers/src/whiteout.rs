//! OCI whiteouts and their overlayfs form.
//!
//! OCI layers mark deletions with `.wh.NAME` files and opaque directories with `.wh..wh..opq`;
//! overlayfs wants a 0:0 character device named NAME, and the `trusted.overlay.opaque=y`
//! xattr on the directory.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

pub const PREFIX: &[u8] = b".wh.";
/// aufs bookkeeping names (`.wh..wh.plnk`, `.wh..wh.aufs`): never materialised.
pub const META_PREFIX: &[u8] = b".wh..wh.";
pub const OPAQUE: &[u8] = b".wh..wh..opq";
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
pub const OPAQUE_VALUE: &[u8] = b"y";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhiteoutError {
    #[error("entry {entry:?}: whiteout names its own directory or a parent")]
    SelfOrParent { entry: String },
    #[error("entry {entry:?}: a whiteout name is used as a directory")]
    InParentPath { entry: String },
}

/// What a final path component means.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout {
    /// The containing directory hides everything below it in lower layers.
    Opaque,
    /// The sibling with this name is deleted.
    Remove(OsString),
    /// aufs metadata: skipped, as Docker does.
    Meta,
}

/// Classifies the last component of an entry path; `entry` is only used for messages.
pub fn parse(name: &OsStr, entry: &str) -> Result<Option<Whiteout>, WhiteoutError> {
    let bytes = name.as_bytes();
    if bytes == OPAQUE {
        return Ok(Some(Whiteout::Opaque));
    }
    if bytes.starts_with(META_PREFIX) {
        return Ok(Some(Whiteout::Meta));
    }
    let Some(target) = bytes.strip_prefix(PREFIX) else {
        return Ok(None);
    };
    if matches!(target, b"" | b"." | b"..") {
        return Err(WhiteoutError::SelfOrParent {
            entry: entry.to_owned(),
        });
    }
    Ok(Some(Whiteout::Remove(OsStr::from_bytes(target).to_owned())))
}

/// Whiteouts are leaves: a path that goes *through* one is malformed.
pub fn check_parents(parents: &[OsString], entry: &str) -> Result<(), WhiteoutError> {
    if parents.iter().any(|p| p.as_bytes().starts_with(PREFIX)) {
        return Err(WhiteoutError::InParentPath {
            entry: entry.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Result<Option<Whiteout>, WhiteoutError> {
        parse(OsStr::new(name), name)
    }

    #[test]
    fn recognises_whiteouts() {
        assert_eq!(p("file").unwrap(), None);
        assert_eq!(p(".whatever").unwrap(), None);
        assert_eq!(p(".wh..wh..opq").unwrap(), Some(Whiteout::Opaque));
        assert_eq!(p(".wh..wh.plnk").unwrap(), Some(Whiteout::Meta));
        assert_eq!(p(".wh.foo").unwrap(), Some(Whiteout::Remove("foo".into())));
        assert_eq!(p(".wh....").unwrap(), Some(Whiteout::Remove("...".into())));
        assert_eq!(
            p(".wh..hidden").unwrap(),
            Some(Whiteout::Remove(".hidden".into()))
        );
    }

    #[test]
    fn refuses_self_and_parent() {
        for bad in [".wh.", ".wh..", ".wh..."] {
            assert!(
                matches!(p(bad), Err(WhiteoutError::SelfOrParent { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_whiteouts_used_as_directories() {
        let parents = [OsString::from("a"), OsString::from(".wh.b")];
        assert!(check_parents(&parents, "a/.wh.b/c").is_err());
        assert!(check_parents(&[OsString::from("a")], "a/c").is_ok());
    }
}
