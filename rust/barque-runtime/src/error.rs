//! Every failure of a command, each carrying what failed (the module errors name their paths).

use std::path::PathBuf;

use barque_container::container::ContainerError;
use barque_container::exec::ExecError;

use crate::args::ArgsError;
use crate::cgroups::CgroupsError;
use crate::console::ConsoleError;
use crate::hooks::HookError;
use crate::signals::UnknownSignal;
use crate::state::{StateError, Status};
use crate::validate::Unsupported;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Args(#[from] ArgsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroups(#[from] CgroupsError),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error(transparent)]
    Signal(#[from] UnknownSignal),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("cannot load {}: {source}", path.display())]
    Spec {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("container {id} is {}: {wanted}", status.as_str())]
    WrongStatus {
        id: String,
        status: Status,
        wanted: &'static str,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.into();
    move |source| RuntimeError::Io { op, path, source }
}
