//! Log lines: each run has one ordered log, numbered from 1 without gaps.

use super::{RunId, Timestamp};

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard output, or the workflow's own messages.
    Stdout,
    /// Standard error.
    Stderr,
    /// Written by Conclave about the run.
    System,
}

impl LogStream {
    /// The stored code of the stream.
    pub const fn code(self) -> i16 {
        match self {
            Self::Stdout => 1,
            Self::Stderr => 2,
            Self::System => 3,
        }
    }

    /// The stream of a stored code; unknown codes read as `System`.
    pub const fn from_code(code: i16) -> Self {
        match code {
            1 => Self::Stdout,
            2 => Self::Stderr,
            _ => Self::System,
        }
    }
}

/// A line to append to a run's log; the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    /// When the line was written.
    pub time: Timestamp,
    /// Which output it came from.
    pub stream: LogStream,
    /// The text, without its terminator.
    pub text: String,
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The run it belongs to.
    pub run_id: RunId,
    /// Its position in the run's log.
    pub sequence: u64,
    /// When it was written.
    pub time: Timestamp,
    /// The attempt that wrote it.
    pub attempt: u32,
    /// Which output it came from.
    pub stream: LogStream,
    /// The text.
    pub text: String,
}
