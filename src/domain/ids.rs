//! Newtype identifiers, so a run id can never be passed where a worker id is expected.

use std::{fmt, str::FromStr};

use uuid::Uuid;

use crate::error::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $noun:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses an id given in a request; `field` names the request field for the error.
            pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
                if text.is_empty() {
                    return Err(Error::invalid(field, concat!("is required: give the id of ", $noun)));
                }
                Uuid::parse_str(text).map(Self).map_err(|_| {
                    Error::invalid(field, format!(concat!("`{}` is not the id of ", $noun, " (a UUID such as 0193a1b2-...)"), text))
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self, Error> {
                Self::parse("id", text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Uuid::parse_str(&text).map(Self).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// The identifier of a run: a UUIDv7, so ids sort by creation time.
    RunId,
    "a run"
);
uuid_id!(
    /// The identifier of one version of an artifact: a UUIDv7, so ids sort by creation time.
    ArtifactId,
    "an artifact"
);
uuid_id!(
    /// The identifier of a card on a workspace's board: a UUIDv7, so ids sort by creation time.
    CardId,
    "a card"
);

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
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
string_id!(
    /// The identifier of a skill in a workspace's catalog: its directory name (`analyze-transcript`).
    SkillId
);
