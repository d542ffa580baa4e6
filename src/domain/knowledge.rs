//! What workflows learn across runs: how reliable each debate participant has been, and what
//! finished missions asked and found.

use super::{RunId, Timestamp, WorkspaceId};

/// A debate participant's record in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reliability {
    /// The participant's name.
    pub participant: String,
    /// Debates whose final vote it took part in.
    pub debates: u64,
    /// Of those, the debates whose outcome its vote matched.
    pub agreed: u64,
}

impl Reliability {
    /// The share of its votes that matched the outcome, with one agreement and one
    /// disagreement assumed beforehand, so a newcomer starts at ½ and one debate moves it
    /// little.
    pub fn score(&self) -> f64 {
        (self.agreed as f64 + 1.0) / (self.debates as f64 + 2.0)
    }
}

/// What one finished mission leaves for later ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// The mission's run.
    pub run_id: RunId,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// What was asked.
    pub request: String,
    /// What was found and done.
    pub summary: String,
    /// How it ended.
    pub outcome: String,
    /// When it was stored.
    pub created_at: Timestamp,
}

/// Common English words that say nothing about a subject (Postgres's `english` search drops
/// them too, so both stores match alike).
const STOP_WORDS: &[&str] = &[
    "about", "after", "all", "also", "and", "any", "are", "because", "been", "before", "but", "can", "could", "did", "does",
    "for", "from", "had", "has", "have", "how", "into", "its", "just", "more", "not", "now", "our", "out", "over", "should",
    "some", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "too", "under", "very",
    "was", "were", "what", "when", "where", "which", "while", "who", "why", "will", "with", "would", "you", "your",
];

/// The words of a text worth searching for: letters and digits, lowercased, at least three
/// long, not a common word, each once, at most `limit`.
pub fn search_words(text: &str, limit: usize) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).map(str::to_lowercase) {
        if word.chars().count() >= 3 && !STOP_WORDS.contains(&word.as_str()) && !words.contains(&word) && words.len() < limit {
            words.push(word);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_keep_what_matters_once() {
        assert_eq!(search_words("Move the QUEUE to Postgres; the queue!", 10), ["move", "queue", "postgres"]);
        assert!(search_words("a b c -- ' OR 1=1", 10).is_empty());
    }

    #[test]
    fn reliability_starts_at_a_half_and_follows_the_record() {
        let record = |debates, agreed| Reliability { participant: "p".into(), debates, agreed }.score();
        assert_eq!(record(0, 0), 0.5);
        assert!(record(10, 10) > 0.9 && record(10, 0) < 0.1);
    }
}
