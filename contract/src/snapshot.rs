//! Seat-map snapshots as the builder publishes them and the edge reads them.
//!
//! Each (show, kind) is one Redis hash under the show's hash tag, replaced as a whole by a
//! single `HSET`, so a reader never sees the bytes of one build with the metadata of another:
//!
//! | field | value |
//! |---|---|
//! | `etag` | content hash (hex); the HTTP ETag is derived from it per encoding |
//! | `built_at_ms` | when the build that produced this content ran |
//! | `checked_at_ms` | the latest build, which may have found the content unchanged |
//! | `next_build_at_ms` | when the next build is due: the end of `Cache-Control: max-age` |
//! | `layout_version` | the venue layout version the document belongs to |
//! | `identity`, `gzip`, `br` | the document's bytes in each encoding |
//!
//! After a change the builder publishes an [`Announcement`] on [`channel`]. The same bytes can
//! also be written to a directory as `{show_id}/{kind}.json`, `.json.gz`, `.json.br`.

use serde::{Deserialize, Serialize};

/// Which of a show's two snapshot documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The venue's seat layout, which changes only with a new layout version.
    Layout,
    /// Which seats can still be bought, rebuilt as sales and holds change.
    Availability,
}

impl Kind {
    /// The kind's name in Redis keys and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Layout => "layout",
            Kind::Availability => "availability",
        }
    }
}

/// Field names of a snapshot's Redis hash (see the table above).
pub mod field {
    /// Content hash (hex) of the document.
    pub const ETAG: &str = "etag";
    /// When the build that produced this content ran, in Unix milliseconds.
    pub const BUILT_AT_MS: &str = "built_at_ms";
    /// When the latest build ran, even if it found the content unchanged, in Unix milliseconds.
    pub const CHECKED_AT_MS: &str = "checked_at_ms";
    /// When the next build is due, in Unix milliseconds: the end of `Cache-Control: max-age`.
    pub const NEXT_BUILD_AT_MS: &str = "next_build_at_ms";
    /// The venue layout version the document belongs to.
    pub const LAYOUT_VERSION: &str = "layout_version";
    /// The document's uncompressed bytes.
    pub const IDENTITY: &str = "identity";
    /// The document's gzip-compressed bytes.
    pub const GZIP: &str = "gzip";
    /// The document's Brotli-compressed bytes.
    pub const BROTLI: &str = "br";
}

/// `{prefix}snapshot:{<show>}:<kind>`: the braces make the show id the Redis Cluster hash
/// tag, so all of one show's keys share a slot.
pub fn key(prefix: &str, show_id: &str, kind: Kind) -> String {
    format!("{prefix}snapshot:{{{show_id}}}:{}", kind.name())
}

/// The pub/sub channel announcing new snapshots.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}snapshots")
}

/// The JSON message published on [`channel`] after a snapshot's content changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The show whose snapshot changed.
    pub show_id: String,
    /// Which of its documents changed.
    pub kind: Kind,
    /// The new content's [`field::ETAG`].
    pub etag: String,
}

/// File name of a kind in an encoding, relative to the show's directory.
pub fn file_name(kind: Kind, encoding: Option<&str>) -> String {
    match encoding {
        None => format!("{}.json", kind.name()),
        Some(ext) => format!("{}.json.{ext}", kind.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_show_hash_tag() {
        let a = key("onsale:", "s1", Kind::Layout);
        let b = key("onsale:", "s1", Kind::Availability);
        assert_eq!(a, "onsale:snapshot:{s1}:layout");
        assert_eq!(b, "onsale:snapshot:{s1}:availability");
        assert_eq!(
            file_name(Kind::Availability, Some("br")),
            "availability.json.br"
        );
    }
}
