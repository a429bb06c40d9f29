//! Where built documents go: Redis for the edge (see `onsale_contract::snapshot` for the
//! layout) and, optionally, a directory any static server or CDN origin can serve.

use crate::documents::Encoded;
use onsale_contract::redis::Connection;
use onsale_contract::snapshot::{self, field, Announcement, Kind};
use std::path::Path;

/// When a document was built and when the next build is due.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub built_at_ms: i64,
    pub next_build_at_ms: i64,
    pub layout_version: i32,
}

pub struct RedisTarget {
    pub conn: Connection,
    pub prefix: String,
    pub ttl_ms: u64,
}

impl RedisTarget {
    /// The ETag currently published for (show, kind), if any.
    pub async fn published_etag(
        &mut self,
        show_id: &str,
        kind: Kind,
    ) -> redis::RedisResult<Option<String>> {
        redis::cmd("HGET")
            .arg(snapshot::key(&self.prefix, show_id, kind))
            .arg(field::ETAG)
            .query_async(&mut self.conn)
            .await
    }

    /// The bytes published for (show, kind), if they carry `etag`.
    pub async fn published(
        &mut self,
        show_id: &str,
        kind: Kind,
        etag: &str,
    ) -> redis::RedisResult<Option<Encoded>> {
        type Fields = (
            Option<String>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
        );
        let (published_etag, identity, gzip, brotli): Fields = redis::cmd("HMGET")
            .arg(snapshot::key(&self.prefix, show_id, kind))
            .arg(&[field::ETAG, field::IDENTITY, field::GZIP, field::BROTLI])
            .query_async(&mut self.conn)
            .await?;
        Ok(match (published_etag, identity, gzip, brotli) {
            (Some(published), Some(identity), Some(gzip), Some(brotli)) if published == etag => {
                Some(Encoded {
                    etag: published,
                    identity,
                    gzip,
                    brotli,
                })
            }
            _ => None,
        })
    }

    /// Replaces the whole snapshot in one `HSET` inside `MULTI`, then announces it. The
    /// announcement is a command of its own: on a cluster the channel is not the show's
    /// slot (a `PUBLISH` reaches every node), and one lost is caught by the edges' poll.
    pub async fn publish(
        &mut self,
        show_id: &str,
        kind: Kind,
        doc: &Encoded,
        stamp: Stamp,
    ) -> redis::RedisResult<()> {
        let key = snapshot::key(&self.prefix, show_id, kind);
        let announcement = serde_json::to_string(&Announcement {
            show_id: show_id.to_owned(),
            kind,
            etag: doc.etag.clone(),
        })
        .expect("announcement serializes");
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    (field::ETAG, doc.etag.as_bytes()),
                    (field::BUILT_AT_MS, stamp.built_at_ms.to_string().as_bytes()),
                    (
                        field::CHECKED_AT_MS,
                        stamp.built_at_ms.to_string().as_bytes(),
                    ),
                    (
                        field::NEXT_BUILD_AT_MS,
                        stamp.next_build_at_ms.to_string().as_bytes(),
                    ),
                    (
                        field::LAYOUT_VERSION,
                        stamp.layout_version.to_string().as_bytes(),
                    ),
                    (field::IDENTITY, doc.identity.as_slice()),
                    (field::GZIP, doc.gzip.as_slice()),
                    (field::BROTLI, doc.brotli.as_slice()),
                ],
            )
            .ignore()
            .pexpire(&key, self.ttl_ms as i64)
            .ignore()
            .query_async::<()>(&mut self.conn)
            .await?;
        redis::cmd("PUBLISH")
            .arg(snapshot::channel(&self.prefix))
            .arg(announcement)
            .query_async(&mut self.conn)
            .await
    }

    /// An unchanged build: the bytes and ETag stay, only the build times move on.
    pub async fn touch(
        &mut self,
        show_id: &str,
        kind: Kind,
        checked_at_ms: i64,
        next_build_at_ms: i64,
    ) -> redis::RedisResult<()> {
        let key = snapshot::key(&self.prefix, show_id, kind);
        redis::pipe()
            .atomic()
            .hset(&key, field::CHECKED_AT_MS, checked_at_ms)
            .ignore()
            .hset(&key, field::NEXT_BUILD_AT_MS, next_build_at_ms)
            .ignore()
            .pexpire(&key, self.ttl_ms as i64)
            .ignore()
            .query_async(&mut self.conn)
            .await
    }
}

/// Writes `{dir}/{show}/{kind}.json`, `.json.gz` and `.json.br`, each through a temporary file
/// and a rename, so a static server never serves half a file.
pub fn write_dir(dir: &Path, show_id: &str, kind: Kind, doc: &Encoded) -> std::io::Result<()> {
    let show_dir = dir.join(show_id);
    std::fs::create_dir_all(&show_dir)?;
    for (encoding, bytes) in [
        (None, &doc.identity),
        (Some("gz"), &doc.gzip),
        (Some("br"), &doc.brotli),
    ] {
        let name = snapshot::file_name(kind, encoding);
        let tmp = show_dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, show_dir.join(&name))?;
    }
    Ok(())
}
