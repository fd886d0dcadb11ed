//! The purge bus: purges and RFC 9111 invalidations accepted by any node reach every node
//! through one Redis Stream ([`STREAM`]). A node appends what it applied itself
//! ([`Bus::publish`]) and follows the stream from the last entry it applied ([`BusService`]),
//! remembered in its disk tier (`cluster-purge-position`), so a node that was down or cut off
//! applies what it missed when it returns. Entries trimmed past that position, or a stream that
//! Redis lost, cannot be replayed: the node empties its cache instead. While Redis cannot be
//! reached, purges are kept in order (the outbox) and appended once it is back; the node that
//! accepted them has applied them already.
//!
//! Each node records its position in the hash [`POSITIONS`]; the publisher waits briefly for
//! the live peers to pass its entry, so the purge API can say how many nodes were reached.

use crate::cache::TieredStorage;
use crate::config::Config;
use crate::metrics;
use crate::purge::PurgeRequest;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, RedisResult, Value};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The stream every node appends to and follows.
pub const STREAM: &str = "imgate:purges";
/// Hash of node (cluster address) -> the last stream entry it applied.
pub const POSITIONS: &str = "imgate:purge-positions";
/// Entries the stream keeps (approximately): a node down for longer than it takes the cluster
/// to purge this many times empties its cache when it returns.
const STREAM_MAX_LEN: usize = 100_000;
/// One Redis command, connecting included, must answer within this.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the follower blocks on the stream per read.
const BLOCK: Duration = Duration::from_secs(1);
/// How long a publisher waits for the live peers to apply its entry.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Entries read at once.
const READ_COUNT: usize = 100;
/// Longest pause between attempts to reach Redis again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The position file, in the disk tier's directory.
pub const POSITION_FILE: &str = "cluster-purge-position";

/// One stream entry: a purge, and the node that applied it first.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    from: String,
    purge: PurgeRequest,
}

/// What became of a purge sent to the other nodes.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    /// On the stream; `peers` nodes besides this one applied it within the wait.
    Reached { peers: usize },
    /// Redis could not be reached: kept, appended when it is back.
    Queued(String),
}

/// A stream entry id (`<ms>-<seq>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EntryId(u64, u64);

impl EntryId {
    pub fn parse(text: &str) -> Option<EntryId> {
        let (ms, seq) = text.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }

    fn millis(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The bus of one node.
pub struct Bus {
    client: redis::Client,
    me: String,
    /// Where the last applied entry is remembered; `None` without a disk tier (a restart
    /// then starts with an empty cache, so there is nothing to catch up on).
    position_file: Option<PathBuf>,
    config: Arc<Config>,
    storage: &'static TieredStorage,
    publisher: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Messages (JSON) applied here but not yet on the stream, oldest first.
    outbox: Mutex<VecDeque<String>>,
    /// Set once the node has caught up with the stream after starting, or found Redis
    /// unreachable (then it cannot know, and serves): until then it reports not ready.
    settled: AtomicBool,
    /// The last stream entry this node applied.
    position: Mutex<EntryId>,
}

fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT + BLOCK))
}

impl Bus {
    pub fn new(
        url: &str,
        me: String,
        config: Arc<Config>,
        storage: &'static TieredStorage,
    ) -> Result<Bus, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
        let position_file = config.cache.dir.as_ref().map(|d| d.join(POSITION_FILE));
        Ok(Bus {
            client,
            me,
            position_file,
            config,
            storage,
            publisher: tokio::sync::Mutex::new(None),
            outbox: Mutex::new(VecDeque::new()),
            settled: AtomicBool::new(false),
            position: Mutex::new(EntryId::default()),
        })
    }

    /// Send a purge this node has applied to the others, and wait (up to [`ACK_WAIT`]) for
    /// `live_peers` of them to apply it.
    pub async fn publish(&self, purge: &PurgeRequest, live_peers: usize) -> Published {
        let message = match serde_json::to_string(&Message {
            from: self.me.clone(),
            purge: purge.clone(),
        }) {
            Ok(m) => m,
            Err(e) => return Published::Queued(format!("purge not encodable: {e}")),
        };
        self.outbox_lock().push_back(message);
        metrics::CLUSTER_PURGE_OUTBOX.set(self.outbox_lock().len() as i64);
        match self.flush().await {
            Ok(Some(id)) => {
                metrics::CLUSTER_PURGES_PUBLISHED
                    .with_label_values(&["sent"])
                    .inc();
                Published::Reached {
                    peers: self.wait_for_peers(id, live_peers).await,
                }
            }
            Ok(None) => Published::Reached { peers: 0 },
            Err(e) => {
                metrics::CLUSTER_PURGES_PUBLISHED
                    .with_label_values(&["queued"])
                    .inc();
                log::warn!("purge bus: Redis unreachable ({e}); the purge is queued");
                Published::Queued(e.to_string())
            }
        }
    }

    /// Whether the start-up catch-up is over (see `settled`).
    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// The last stream entry this node applied: a peer that has applied less must not answer
    /// this node from its cache (it may hold what this node has purged).
    pub fn position(&self) -> EntryId {
        *self.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Purges applied here that the others have not seen yet (Redis unreachable): until they
    /// are sent, this node takes no copies from its peers.
    pub fn holds_unsent(&self) -> bool {
        !self.outbox_lock().is_empty()
    }

    /// [`Bus::publish`] without waiting, for the edge's invalidations.
    pub fn publish_soon(self: &Arc<Self>, purge: PurgeRequest) {
        let bus = self.clone();
        tokio::spawn(async move {
            bus.publish(&purge, 0).await;
        });
    }

    fn outbox_lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The publishing connection, made again after a failure.
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        let mut slot = self.publisher.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Append the outbox to the stream in order; the id of the last entry appended.
    async fn flush(&self) -> RedisResult<Option<EntryId>> {
        let mut conn = match self.connection().await {
            Ok(c) => c,
            Err(e) => return Err(e),
        };
        let mut last = None;
        loop {
            let Some(message) = self.outbox_lock().front().cloned() else {
                break;
            };
            let added: RedisResult<String> = redis::cmd("XADD")
                .arg(STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX_LEN)
                .arg("*")
                .arg("m")
                .arg(&message)
                .query_async(&mut conn)
                .await;
            match added {
                Ok(id) => {
                    self.outbox_lock().pop_front();
                    last = EntryId::parse(&id);
                }
                Err(e) => {
                    *self.publisher.lock().await = None;
                    return Err(e);
                }
            }
        }
        metrics::CLUSTER_PURGE_OUTBOX.set(self.outbox_lock().len() as i64);
        Ok(last)
    }

    /// How many other nodes applied `id` within [`ACK_WAIT`] (stops early once `live_peers`
    /// have).
    async fn wait_for_peers(&self, id: EntryId, live_peers: usize) -> usize {
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        let mut reached = 0;
        while let Ok(mut conn) = self.connection().await {
            let positions: RedisResult<HashMap<String, String>> = redis::cmd("HGETALL")
                .arg(POSITIONS)
                .query_async(&mut conn)
                .await;
            let Ok(positions) = positions else { break };
            reached = positions
                .iter()
                .filter(|(node, pos)| {
                    **node != self.me && EntryId::parse(pos).is_some_and(|p| p >= id)
                })
                .count();
            if reached >= live_peers || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reached
    }

    async fn saved_position(&self) -> Option<EntryId> {
        let path = self.position_file.as_ref()?;
        let text = tokio::fs::read_to_string(path).await.ok()?;
        EntryId::parse(text.trim())
    }

    async fn save_position(&self, id: EntryId) {
        *self.position.lock().unwrap_or_else(|p| p.into_inner()) = id;
        let Some(path) = &self.position_file else {
            return;
        };
        let tmp = path.with_extension("new");
        let written = async {
            tokio::fs::write(&tmp, id.to_string()).await?;
            tokio::fs::rename(&tmp, path).await
        };
        if let Err(e) = written.await {
            log::warn!(
                "purge bus: cannot remember position in {}: {e}",
                path.display()
            );
        }
    }

    /// Where to follow the stream from when (re)connected, emptying the cache first when what
    /// was missed cannot be replayed.
    async fn start_position(&self, conn: &mut MultiplexedConnection) -> RedisResult<EntryId> {
        let info: RedisResult<HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(STREAM)
            .query_async(conn)
            .await;
        let stream = match info {
            Ok(info) => Some(StreamState::read(&info)),
            Err(e) if e.to_string().contains("no such key") => None,
            Err(e) => return Err(e),
        };
        let saved = self.saved_position().await;
        let start = match (saved, stream) {
            // Never followed (or no disk tier): the cache holds nothing older to purge.
            (None, Some(s)) => s.last,
            (None, None) => EntryId::default(),
            (Some(at), None) if at == EntryId::default() => at,
            (Some(_), None) => {
                self.empty_cache("Redis has lost the purge stream").await;
                EntryId::default()
            }
            (Some(at), Some(s)) if s.last < at => {
                self.empty_cache("the purge stream is older than this node's position")
                    .await;
                EntryId::default()
            }
            (Some(at), Some(s)) => {
                // Trimming removes the oldest entries: if this node's own entry is still
                // there (or nothing was ever removed, or nothing came after it), every entry
                // after it is too.
                let nothing_removed = s.added == s.length;
                if nothing_removed || s.last == at || self.has_entry(conn, at).await? {
                    at
                } else {
                    self.empty_cache(&format!(
                        "the purge stream was trimmed past this node's position {at}"
                    ))
                    .await;
                    s.last
                }
            }
        };
        self.save_position(start).await;
        Ok(start)
    }

    /// Whether the stream still holds entry `id`.
    async fn has_entry(&self, conn: &mut MultiplexedConnection, id: EntryId) -> RedisResult<bool> {
        let found: Vec<Value> = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg(id.to_string())
            .arg(id.to_string())
            .query_async(conn)
            .await?;
        Ok(!found.is_empty())
    }

    async fn empty_cache(&self, why: &str) {
        log::warn!("purge bus: {why}; emptying this node's cache rather than serve purged entries");
        let everything = PurgeRequest {
            everything: true,
            ..Default::default()
        };
        if let Err(e) = everything.run(&self.config, self.storage).await {
            log::error!("purge bus: emptying the cache failed: {e}");
        }
    }

    /// Apply one stream entry (a purge sent by another node).
    async fn apply(&self, fields: &HashMap<String, Value>) {
        let Some(Value::BulkString(raw)) = fields.get("m") else {
            log::warn!("purge bus: an entry without a message; skipped");
            return;
        };
        let message: Message = match serde_json::from_slice(raw) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("purge bus: an unreadable entry ({e}); skipped");
                return;
            }
        };
        if message.from == self.me {
            return;
        }
        match message.purge.run(&self.config, self.storage).await {
            Ok(_) => metrics::CLUSTER_PURGES_APPLIED.inc(),
            Err(e) => log::warn!("purge bus: a purge from {} refused: {e}", message.from),
        }
    }

    /// Tell the publishers how far this node has applied the stream.
    async fn announce(&self, conn: &mut MultiplexedConnection, at: EntryId) -> RedisResult<()> {
        redis::cmd("HSET")
            .arg(POSITIONS)
            .arg(&self.me)
            .arg(at.to_string())
            .query_async(conn)
            .await
    }

    /// Follow the stream until shutdown or a Redis error.
    async fn follow(&self, shutdown: &mut ShutdownWatch) -> RedisResult<()> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await?;
        let mut at = self.start_position(&mut conn).await?;
        metrics::CLUSTER_PURGE_BUS_UP.set(1);
        log::info!("purge bus: following {STREAM} from {at}");
        self.announce(&mut conn, at).await?;
        loop {
            if !self.outbox_lock().is_empty() {
                self.flush().await?;
            }
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("STREAMS")
                .arg(STREAM)
                .arg(at.to_string());
            let read = cmd.query_async::<Option<StreamReadReply>>(&mut conn);
            let reply = tokio::select! {
                r = read => r?,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(reply) = reply else {
                self.settled.store(true, Ordering::Release);
                continue;
            };
            let before = at;
            for entry in reply.keys.iter().flat_map(|k| k.ids.iter()) {
                let Some(id) = EntryId::parse(&entry.id) else {
                    continue;
                };
                self.apply(&entry.map).await;
                at = id;
            }
            if at != before {
                self.save_position(at).await;
                self.announce(&mut conn, at).await?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                metrics::CLUSTER_PURGE_LAG.set(now.saturating_sub(at.millis()) as f64 / 1000.0);
            }
            let read: usize = reply.keys.iter().map(|k| k.ids.len()).sum();
            if read < READ_COUNT {
                self.settled.store(true, Ordering::Release);
            }
        }
    }
}

/// What `XINFO STREAM` says of the stream.
struct StreamState {
    last: EntryId,
    /// Entries it holds, and entries ever added: equal when none was ever trimmed.
    length: i64,
    added: i64,
}

impl StreamState {
    fn read(info: &HashMap<String, Value>) -> StreamState {
        let id = |key: &str| match info.get(key) {
            Some(Value::BulkString(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(EntryId::parse)
                .unwrap_or_default(),
            Some(Value::SimpleString(s)) => EntryId::parse(s).unwrap_or_default(),
            _ => EntryId::default(),
        };
        let int = |key: &str| match info.get(key) {
            Some(Value::Int(n)) => *n,
            _ => -1,
        };
        StreamState {
            last: id("last-generated-id"),
            length: int("length"),
            added: int("entries-added"),
        }
    }
}

/// The background service following the stream, reconnecting with backoff.
pub struct BusService(pub Arc<Bus>);

#[async_trait]
impl BackgroundService for BusService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.0.follow(&mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    self.0.settled.store(true, Ordering::Release);
                    if metrics::CLUSTER_PURGE_BUS_UP.get() == 1 {
                        log::warn!("purge bus: Redis unreachable ({e}); retrying");
                    }
                    metrics::CLUSTER_PURGE_BUS_UP.set(0);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if metrics::CLUSTER_PURGE_BUS_UP.get() == 1 {
                backoff = Duration::from_millis(100);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EntryId;

    #[test]
    fn entry_ids_order_as_redis_orders_them() {
        let a = EntryId::parse("1700000000000-0").unwrap();
        let b = EntryId::parse("1700000000000-1").unwrap();
        let c = EntryId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert!(EntryId::parse("9-10").unwrap() > EntryId::parse("9-9").unwrap());
        assert_eq!(c.to_string(), "1700000000001-0");
        assert_eq!(EntryId::default().to_string(), "0-0");
        for bad in ["", "12", "a-1", "1-", "-1"] {
            assert_eq!(EntryId::parse(bad), None, "{bad}");
        }
    }
}
