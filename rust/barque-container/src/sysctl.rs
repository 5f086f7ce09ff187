//! `linux.sysctl`: written to `/proc/sys` inside the container after `pivot_root`.

use std::collections::HashMap;
use std::ffi::CString;

use crate::failure::{Fail, FailAt, Step};
use crate::sys::{Fd, Sys};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysctlError {
    #[error("sysctl {key:?} is malformed")]
    Invalid { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SysctlPlan {
    /// (key for messages, path relative to the root, value).
    entries: Vec<(String, CString, Vec<u8>)>,
}

pub fn plan(sysctl: Option<&HashMap<String, String>>) -> Result<SysctlPlan, SysctlError> {
    let mut entries = Vec::new();
    let mut keys: Vec<_> = sysctl.iter().flat_map(|m| m.iter()).collect();
    keys.sort();
    for (key, value) in keys {
        let invalid = || SysctlError::Invalid { key: key.clone() };
        if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
            return Err(invalid());
        }
        let path = format!("proc/sys/{}", key.replace('.', "/"));
        entries.push((
            key.clone(),
            CString::new(path).map_err(|_| invalid())?,
            value.as_bytes().to_vec(),
        ));
    }
    Ok(SysctlPlan { entries })
}

impl SysctlPlan {
    pub fn apply<S: Sys>(&self, sys: &S, root: i32) -> Result<(), Fail> {
        for (i, (_, path, value)) in self.entries.iter().enumerate() {
            let fd = Fd::new(
                sys,
                sys.open_in_root(root, path, libc::O_WRONLY | libc::O_TRUNC)
                    .at(Step::Sysctl, i)?,
            );
            sys.write_all(fd.raw(), value).at(Step::Sysctl, i)?;
        }
        Ok(())
    }

    pub fn describe(&self, index: usize) -> String {
        self.entries
            .get(index)
            .map_or_else(String::new, |e| e.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_paths() {
        let m: HashMap<String, String> =
            [("net.ipv4.ip_forward".to_owned(), "1".to_owned())].into();
        let p = plan(Some(&m)).unwrap();
        assert_eq!(
            p.entries[0].1.to_str().unwrap(),
            "proc/sys/net/ipv4/ip_forward"
        );
        let bad: HashMap<String, String> = [("kernel/../x".to_owned(), "1".to_owned())].into();
        assert!(plan(Some(&bad)).is_err());
    }
}
