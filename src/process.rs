//! Child processes that cannot outlive their caller. A program started here leads a process
//! group of its own, and the whole group is killed when the handle is dropped (the command
//! finished, timed out, or the future running it was cancelled), so no grandchild it started
//! lingers holding its output open. Used by the `shell` workflow and the `cli` model provider.

use std::{
    io,
    ops::{Deref, DerefMut},
};

use tokio::process::{Child, Command};

/// A running child that leads its own process group; dropping it kills the whole group.
///
/// It dereferences to the [`Child`], to take its pipes and wait for it.
#[derive(Debug)]
pub struct GroupChild {
    /// Declared before `child` so it drops first: the group is killed while the leader, unless
    /// already waited for, still holds the group's id.
    group: ProcessGroup,
    child: Child,
}

impl GroupChild {
    /// Spawns `command` as the leader of a new process group (its pgid is its pid), also
    /// killed on drop as a plain child.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        let child = command.kill_on_drop(true).process_group(0).spawn()?;
        Ok(Self { group: ProcessGroup(child.id()), child })
    }

    /// Kills every process of the group now, the leader too if it still runs: once the leader
    /// has exited, this ends whatever it left behind, closing the pipes those still held.
    pub fn kill_group(&self) {
        self.group.kill();
    }
}

impl Deref for GroupChild {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for GroupChild {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// The process group a child leads (its id is the child's pid); killed when dropped.
#[derive(Debug)]
struct ProcessGroup(Option<u32>);

impl ProcessGroup {
    fn kill(&self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals the process group the child leads (it
            // was spawned with process_group(0)); it touches no memory of ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
