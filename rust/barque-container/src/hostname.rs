//! `hostname` and `domainname`, set inside the container's UTS namespace.

use std::ffi::CString;

use crate::failure::{Fail, FailAt, Step};
use crate::sys::Sys;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostnameError {
    #[error("{what} {value:?} is not a valid name (1-64 bytes, no NUL)")]
    Invalid { what: &'static str, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostnamePlan {
    hostname: Option<CString>,
    domainname: Option<CString>,
}

fn name(what: &'static str, value: Option<&str>) -> Result<Option<CString>, HostnameError> {
    let Some(v) = value else { return Ok(None) };
    let invalid = || HostnameError::Invalid {
        what,
        value: v.to_owned(),
    };
    if v.is_empty() || v.len() > 64 {
        return Err(invalid());
    }
    CString::new(v).map(Some).map_err(|_| invalid())
}

pub fn plan(
    hostname: Option<&str>,
    domainname: Option<&str>,
) -> Result<HostnamePlan, HostnameError> {
    Ok(HostnamePlan {
        hostname: name("hostname", hostname)?,
        domainname: name("domainname", domainname)?,
    })
}

impl HostnamePlan {
    pub fn apply<S: Sys>(&self, sys: &S) -> Result<(), Fail> {
        if let Some(h) = &self.hostname {
            sys.sethostname(h).on(Step::Hostname)?;
        }
        if let Some(d) = &self.domainname {
            sys.setdomainname(d).on(Step::Domainname)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(plan(Some("box"), None).is_ok());
        assert!(plan(Some(""), None).is_err());
        assert!(plan(Some(&"x".repeat(65)), None).is_err());
        assert!(plan(None, Some("a\0b")).is_err());
    }
}
