//! The container init: everything between clone and exec, in order.
//!
//! Runs in the cloned child of a multi-threaded process, so it only calls [`Sys`] methods on
//! data the parent prepared: no allocation, no locks, no Python. Any failure is returned as a
//! [`Fail`] for the caller to write to the error pipe.

use std::convert::Infallible;

use crate::container::Plan;
use crate::failure::{Fail, FailAt, Step};
use crate::sys::Sys;

pub fn run<S: Sys>(sys: &S, plan: &Plan) -> Result<Infallible, Fail> {
    // Signals arrive blocked (the parent blocked them around clone): drop the parent's handlers
    // and ignores before anything else, so a SIG_IGN (Python ignores SIGPIPE) does not leak
    // into the container.
    sys.reset_signal_dispositions();
    // Only the parent may hold the write end of its cgroup word: end of file then means no
    // word will come.
    if plan.cgroup_word[1] >= 0 {
        sys.close(plan.cgroup_word[1]);
    }
    // Nobody may ptrace or read /proc/<pid>/mem of the init while barque code runs in it;
    // execve resets this.
    sys.prctl(libc::PR_SET_DUMPABLE, 0, 0).on(Step::Dumpable)?;
    sys.umask(0);
    let process = &plan.process;
    // With a terminal, the pty becomes 0, 1 and 2 once /dev/pts exists.
    if plan.terminal.is_none() {
        process.setup_stdio(sys)?;
    }

    plan.namespaces.join(sys)?;
    // A new network namespace starts with `lo` down (Docker brings it up); needs
    // CAP_NET_ADMIN, which the init holds until the capabilities are set.
    plan.namespaces.bring_up_loopback(sys)?;

    // Filesystem: rootfs, mounts, /dev, sysctls, masks, then pivot_root.
    let root = plan.rootfs.mount(sys)?;
    for (i, m) in plan.mounts.iter().enumerate() {
        m.apply(sys, root.raw(), i)?;
    }
    plan.devices.apply(sys, root.raw())?;
    // After /dev/pts, before pivot_root: binding /dev/console needs CAP_SYS_ADMIN.
    if let Some(t) = &plan.terminal {
        t.setup(sys, root.raw())?;
    }
    plan.hostname.apply(sys)?;
    // Before /proc/sys turns read-only (the writes go to this task's namespaces).
    plan.sysctl.apply(sys, root.raw())?;
    plan.masks.apply(sys, root.raw())?;
    plan.rootfs.pivot(sys, root.raw())?;
    plan.rootfs.finish(sys, root.raw())?;
    process.enter_cwd(sys, root.raw())?;
    drop(root);
    // In the container's cgroups (the parent moved this task meanwhile) before the
    // privileges are set and anything of the container runs; then a new cgroup namespace,
    // rooted where the task now is.
    plan.cgroups.await_join(sys, plan.cgroup_word[0])?;

    // Privileges: limits, bounding set, user, capabilities, no_new_privs, seccomp.
    process.set_rlimits(sys)?;
    crate::capabilities::drop_bounding(sys, &plan.caps, plan.last_cap)?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it
    // (the profile must then allow the few calls left before exec, as Docker's does).
    if !process.no_new_privileges {
        if let Some(s) = &plan.seccomp {
            s.load(sys)?;
        }
    }
    crate::capabilities::switch_user_and_set(
        sys,
        &plan.caps,
        process.uid,
        process.gid,
        &process.groups,
    )?;
    process.set_no_new_privileges(sys)?;
    sys.umask(process.umask);
    sys.cloexec_from(3).on(Step::CloseFds)?;
    // `create`: ready, and blocked until `start` (as runc, before the no_new_privs filter).
    if let Some(w) = &plan.start_wait {
        w.wait(sys)?;
    }
    if process.no_new_privileges {
        if let Some(s) = &plan.seccomp {
            s.load(sys)?;
        }
    }
    sys.set_signal_mask(&plan.empty_sigset).on(Step::Signals)?;
    Err(process.exec(sys))
}
