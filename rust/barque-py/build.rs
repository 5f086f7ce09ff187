//! Builds barque's executables next to the extension module, so that one maturin build (a
//! `pip install`, `pip wheel` or sdist build) gives the whole of barque: maturin packs only
//! the binding crate, and pyproject.toml's `include` takes these files from OUT_DIR into the
//! wheel (`barque/_bin/`, and the wheel's `.data/scripts/` for what goes on PATH).
//!
//! The sibling crates are built by a nested cargo in a target directory of their own: the
//! outer cargo holds the lock on its own one for as long as this script runs.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The crates whose executables ship in the wheel, and the crates they are made of: a change
/// in any of them must rebuild the executables, not reuse the old ones.
const SIBLING_CRATES: [&str; 6] = [
    "barque-layers",
    "barque-container",
    "barque-shim",
    "barque-runtime",
    "barque-cli",
    "barque-init",
];

/// Executables linked against glibc (libseccomp comes in statically: .cargo/config.toml).
const DYNAMIC: [(&str, &str); 3] = [
    ("barque-shim", "barque-shim"),
    ("barque-runtime", "barque-runtime"),
    ("barque-cli", "barque"),
];

/// Executables that run inside containers, whose images need not have a libc or a loader.
const STATIC: [(&str, &str); 2] = [
    ("barque-init", "barque-init"),
    ("barque-init", "barque-trampoline"),
];

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("missing build variable {0} (not run by cargo?)")]
    MissingVar(&'static str),
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nested cargo build of {packages} failed ({status}); its errors are above")]
    Failed {
        packages: String,
        status: std::process::ExitStatus,
    },
    #[error("cannot copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn var(name: &'static str) -> Result<OsString, BuildError> {
    env::var_os(name).ok_or(BuildError::MissingVar(name))
}

fn main() {
    if let Err(error) = build_helpers() {
        eprintln!("barque-py build script: {error}");
        std::process::exit(1);
    }
}

fn build_helpers() -> Result<(), BuildError> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir.join("../..");
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let target = var("TARGET")?;

    for name in SIBLING_CRATES {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join("rust").join(name).display()
        );
    }
    for file in ["Cargo.lock", "Cargo.toml", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }

    let bins_dir = helper_target_dir(&out_dir, &workspace);
    let cargo = PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));

    // One target dir per link mode: sharing one, the crt-static flags would make cargo rebuild
    // the common dependencies every time the other mode is built.
    let dynamic_dir = bins_dir.join("dynamic");
    nested_build(&cargo, &workspace, &dynamic_dir, &target, &DYNAMIC, None)?;
    let static_dir = bins_dir.join("static");
    let crt_static = Some("-Ctarget-feature=+crt-static");
    nested_build(
        &cargo,
        &workspace,
        &static_dir,
        &target,
        &STATIC,
        crt_static,
    )?;

    for (dir, bins) in [(&dynamic_dir, &DYNAMIC[..]), (&static_dir, &STATIC[..])] {
        let built = dir.join(&target).join("release");
        for (_, bin) in bins {
            // The top of OUT_DIR: maturin's include keeps a file's sub-path under its `to`.
            let (from, to) = (built.join(bin), out_dir.join(bin));
            std::fs::copy(&from, &to).map_err(|source| BuildError::Copy { from, to, source })?;
        }
    }
    Ok(())
}

/// `wheel-bins` in the outer build's target directory (OUT_DIR is
/// `<target-dir>/[<triple>/]<profile>/build/<crate>-<hash>/out`), so that a warm rebuild
/// reuses it and `cargo clean` removes it; the workspace's `target/` if that layout changed.
fn helper_target_dir(out_dir: &Path, workspace: &Path) -> PathBuf {
    let mut dirs = out_dir.ancestors();
    let build = dirs.nth(2);
    match (build.and_then(Path::file_name), dirs.nth(1)) {
        (Some(name), Some(target_dir)) if name == "build" => target_dir.join("wheel-bins"),
        _ => workspace.join("target").join("wheel-bins"),
    }
}

fn nested_build(
    cargo: &Path,
    workspace: &Path,
    target_dir: &Path,
    target: &OsString,
    bins: &[(&str, &str)],
    rustflags: Option<&str>,
) -> Result<(), BuildError> {
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target"])
        .arg(target)
        .arg("--target-dir")
        .arg(target_dir);
    let mut packages: Vec<&str> = bins.iter().map(|(package, _)| *package).collect();
    packages.dedup();
    for package in &packages {
        command.args(["-p", package]);
    }
    // What the outer build was given is for the extension module (maturin's flags, clippy's
    // wrapper), not for these executables; an explicit --target keeps crt-static off the
    // build scripts.
    for name in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(name);
    }
    if let Some(flags) = rustflags {
        command.env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    // Cargo reads cargo: directives from this script's stdout: the nested build's goes to
    // stderr, with the rest of its output.
    command.stdout(stderr_for_child());
    let status = command.status().map_err(|source| BuildError::Spawn {
        program: cargo.to_owned(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed {
            packages: packages.join(", "),
            status,
        })
    }
}

/// A child's stdout that writes to this process's stderr (none if it cannot be duplicated).
fn stderr_for_child() -> Stdio {
    use std::os::fd::AsFd;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    }
}
