//! Newtype identifiers, so a run id can never be passed where a worker id is expected.

use std::{fmt, str::FromStr};

use uuid::Uuid;

use crate::error::Error;

/// The identifier of a run: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Uuid);

impl RunId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses an id given in a request; `field` names the request field for the error.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::invalid(field, "is required: give the id of a run"));
        }
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| Error::invalid(field, format!("`{text}` is not a run id (a UUID such as 0193a1b2-...)")))
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RunId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse("id", text)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id already known to be valid (read from the store or generated).
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The identifier of a workspace; every resource belongs to one.
    WorkspaceId
);
string_id!(
    /// The identifier of a worker (a built-in worker pool or an external worker).
    WorkerId
);
