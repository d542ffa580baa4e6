//! Paging of listings: the page size rule and the opaque page token every listing shares.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use crate::error::{Error, Result};

/// The largest page a listing returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of a listing, with the token of the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The rows a listing returns for a requested `page_size`: `default` for 0, at most
/// [`MAX_PAGE_SIZE`], and a negative size refused.
pub fn page_limit(page_size: i32, default: u32) -> Result<u32> {
    match page_size {
        size if size < 0 => Err(Error::invalid("page_size", format!("must be between 0 and {MAX_PAGE_SIZE}, not {size}"))),
        0 => Ok(default),
        size => Ok(u32::try_from(size).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// The opaque page token: the key of the last item of the page, bound to the listing's filters
/// so that a token is only accepted by the query that produced it.
#[derive(Debug, Clone, Copy)]
pub struct PageToken {
    fingerprint: u64,
}

impl PageToken {
    /// The tokens of a listing with these filters (any stable text describing them).
    pub fn for_filters(filters: &str) -> Self {
        // FNV-1a: stable across builds and versions.
        let fingerprint = filters.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
        Self { fingerprint }
    }

    /// The token of the page after the item with key `last`.
    pub fn encode(&self, last: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{last}:{:016x}", self.fingerprint))
    }

    /// The key of the last item of the previous page, from its token.
    pub fn decode(&self, token: &str) -> Result<String> {
        let invalid = || Error::invalid("page_token", "is not a token this server issued; pass the next_page_token of the previous page unchanged");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let Some((key, hash)) = text.strip_prefix("v1:").and_then(|rest| rest.rsplit_once(':')) else {
            return Err(invalid());
        };
        if key.is_empty() {
            return Err(invalid());
        }
        if u64::from_str_radix(hash, 16).ok() != Some(self.fingerprint) {
            return Err(Error::invalid("page_token", "was issued for a listing with other filters; repeat the same filters or start without a token"));
        }
        Ok(key.to_owned())
    }

    /// Cuts `items` (fetched with one more than `limit`) to a page and its next token.
    pub fn page<T>(&self, mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
        let limit = limit as usize;
        let next_page_token = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|item| self.encode(&key(item)))
        } else {
            None
        };
        Page { items, next_page_token }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bind_to_their_filters() {
        let tokens = PageToken::for_filters("workspace=default");
        let token = tokens.encode("0193a1b2-0000-7000-8000-000000000000");
        assert_eq!(tokens.decode(&token).unwrap(), "0193a1b2-0000-7000-8000-000000000000");
        assert!(matches!(PageToken::for_filters("workspace=other").decode(&token), Err(Error::InvalidArgument(_))));
        assert!(matches!(tokens.decode("garbage!"), Err(Error::InvalidArgument(_))));
        assert!(matches!(tokens.decode(&URL_SAFE_NO_PAD.encode("v2:x:0")), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(page_limit(0, 50).unwrap(), 50);
        assert_eq!(page_limit(5000, 50).unwrap(), MAX_PAGE_SIZE);
        assert!(page_limit(-1, 50).is_err());
    }
}
