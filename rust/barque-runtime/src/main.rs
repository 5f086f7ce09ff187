//! barque-runtime: runc's command line over an OCI bundle, on barque-container's runtime.

mod args;
mod cgroups;
mod cli;
mod console;
mod defaults;
mod error;
mod exec_cmd;
mod hooks;
mod lifecycle;
mod list;
mod log;
mod signals;
mod state;
mod validate;

fn main() {
    std::process::exit(cli::main())
}
