//! Seed `004`'s execution system on Conclave's engine: a workspace's catalog of skills
//! (`skill` reads them from disk, `registry` from a remote registry, `catalog` keeps them),
//! its recipe per stage (`recipe`, with `template` rendering a step's prompt), the `recipe`
//! run kind that carries a recipe out for a card (`run`, with the `jury` skill), and the cards
//! that move through the stages (`cards`). Gates are the shared engine in `workflows::gates`.

pub mod cards;
pub mod catalog;
pub mod jury;
pub mod recipe;
pub mod registry;
pub mod run;
pub mod skill;
pub mod template;

pub use cards::{Cards, CreateCardRequest, RECIPE_KIND};
pub use catalog::{RegistrySettings, Skills, SyncReport, Synced};
pub use recipe::Recipes;
pub use registry::RegistryListing;
pub use run::RecipeRun;
pub use skill::SkillFileError;
