//! What a run of each kind does, written as ordinary async code against a `RunContext`.
//! The built-in kinds live here, with the domain workflows (`debate`, `mission`, `task`,
//! `recipe`) in the same registry.

mod basic;
pub mod debate;
pub mod gates;
pub mod mission;
mod generate;
mod input;
pub mod resource;
mod shell;
pub mod stage;
pub mod structured;
pub mod task;

pub use basic::{Approval, Echo, Noop, Sleep, Steps};
pub use debate::Debate;
pub use mission::Mission;
pub use task::{Task, TaskLoop};

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
        .register("mission", Mission)
        .register("task", Task)
        .register("task_loop", TaskLoop)
        .register(stage::RECIPE_KIND, stage::RecipeRun)
        .register("shell", Shell::new(shell));
    registry
}
