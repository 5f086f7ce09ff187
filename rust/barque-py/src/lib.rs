//! PyO3 bindings: the private module `barque._native` over barque-container.
//!
//! Errors cross into Python in exactly one place (`impl From<NativeError> for PyErr`), and
//! every call that does I/O or waits runs detached from the interpreter.

// Errors are values: a panic reachable from layer bytes would be a bug an attacker can trigger.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cgroups;
mod errors;
mod exec;
mod ingest;
mod layer_writer;
mod memory;
mod runtime;

/// Private native core of barque (Rust, via PyO3). Not a public API: use barque.Engine.
#[pyo3::pymodule]
#[pyo3(name = "_native")]
mod native {
    #[pymodule_export]
    use crate::cgroups::{cgroup_v2, PyCgroup};
    #[pymodule_export]
    use crate::errors::{ContainerError, DigestError, LayerError};
    #[pymodule_export]
    use crate::exec::{exec_process, exec_process_pty};
    #[pymodule_export]
    use crate::ingest::{sha256_file, syncfs, unpack_blob, PyBlobIngest};
    #[pymodule_export]
    use crate::layer_writer::PyZstdLayerWriter;
    #[pymodule_export]
    use crate::memory::populate_writable_memory;
    #[pymodule_export]
    use crate::runtime::{kill, prepare_exec_trampoline, spawn, spawn_terminal, wait};
}
