//! What makes a model call reproducible: a seed derived from the run and the step, temperature
//! 0 unless the caller asks otherwise, and a hash of the prompt that identifies its version.

use sha2::{Digest, Sha256};

use super::{ModelRequest, Sampling};
use crate::domain::RunId;

/// The seed of a step: the first 8 bytes of sha256(run id, step key), kept within the
/// non-negative `i64` range that every seeded API accepts.
pub fn seed_for(run: RunId, step: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(run.to_string().as_bytes());
    hash.update([0]);
    hash.update(step.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes) >> 1
}

/// Sampling with the determinism defaults filled in: temperature 0, and the step's seed when
/// the call comes from a run's step. What the caller set explicitly is kept.
pub fn deterministic(request: &ModelRequest) -> Sampling {
    let mut sampling = request.sampling;
    sampling.temperature = sampling.temperature.or(Some(0.0));
    if sampling.seed.is_none()
        && let (Some(run), Some(step)) = (request.origin.run_id, request.origin.step.as_deref())
    {
        sampling.seed = Some(seed_for(run, step));
    }
    sampling
}

/// The prompt's hash (sha256, hex) over the system prompt and every message: the same prompt
/// text gives the same hash, so a changed prompt template shows in the journal.
pub fn prompt_hash(request: &ModelRequest) -> String {
    let mut hash = Sha256::new();
    hash.update(b"system\0");
    hash.update(request.system.as_deref().unwrap_or_default().as_bytes());
    for message in &request.messages {
        hash.update([0]);
        hash.update(message.role.as_str().as_bytes());
        hash.update([0]);
        hash.update(message.content.as_bytes());
    }
    hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_run_and_step_only() {
        let run = RunId::new();
        assert_eq!(seed_for(run, "review-1"), seed_for(run, "review-1"));
        assert_ne!(seed_for(run, "review-1"), seed_for(run, "review-2"));
        assert_ne!(seed_for(run, "review-1"), seed_for(RunId::new(), "review-1"));
        assert!(i64::try_from(seed_for(run, "x")).is_ok());
    }

    #[test]
    fn defaults_fill_only_what_is_unset() {
        let mut request = ModelRequest::prompt("hi");
        assert_eq!(deterministic(&request).temperature, Some(0.0));
        assert_eq!(deterministic(&request).seed, None, "no run, no seed");
        request.origin.run_id = Some(RunId::new());
        request.origin.step = Some("s".to_owned());
        request.sampling.temperature = Some(0.7);
        let sampling = deterministic(&request);
        assert_eq!(sampling.temperature, Some(0.7));
        assert!(sampling.seed.is_some());
    }

    #[test]
    fn the_prompt_hash_changes_with_the_prompt() {
        let a = ModelRequest::prompt("hello");
        let mut b = a.clone();
        assert_eq!(prompt_hash(&a), prompt_hash(&b));
        b.system = Some("be brief".to_owned());
        assert_ne!(prompt_hash(&a), prompt_hash(&b));
    }
}
