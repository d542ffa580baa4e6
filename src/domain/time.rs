//! Wall-clock timestamps with microsecond precision, stored as integers in both backends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// How long after `earlier` this time is; zero if it is not after.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_micros(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// RFC 3339 in UTC, to the second: `2026-11-21T16:50:00Z` (times before 1970 read as 1970).
    pub fn to_rfc3339(self) -> String {
        let since_epoch = Duration::from_secs(u64::try_from(self.0 / 1_000_000).unwrap_or(0));
        humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string()
    }

    /// The same, without separators, for names: `20261121T165000Z`.
    pub fn to_compact(self) -> String {
        self.to_rfc3339().chars().filter(|c| *c != '-' && *c != ':').collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_and_compact() {
        let time = Timestamp::from_micros(1_795_279_800_123_456);
        assert_eq!(time.to_rfc3339(), "2026-11-21T16:50:00Z");
        assert_eq!(time.to_compact(), "20261121T165000Z");
    }
}
