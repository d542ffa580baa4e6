//! What a run of each kind does, written as ordinary async code against a `RunContext`.
//! The built-in kinds live here, with the domain workflows (`debate`; later task, mission,
//! recipe) in the same registry.

mod basic;
pub mod debate;
mod generate;
mod input;
mod shell;

pub use basic::{Approval, Echo, Noop, Sleep, Steps};
pub use debate::Debate;
pub use generate::Generate;
pub use shell::{Shell, ShellConfig};

use crate::engine::Registry;

/// The registry of every built-in kind.
pub fn builtin_registry(shell: ShellConfig) -> Registry {
    let mut registry = Registry::new();
    registry
        .register("noop", Noop)
        .register("sleep", Sleep)
        .register("echo", Echo)
        .register("approval", Approval)
        .register("steps", Steps)
        .register("generate", Generate)
        .register("debate", Debate)
        .register("shell", Shell::new(shell));
    registry
}
