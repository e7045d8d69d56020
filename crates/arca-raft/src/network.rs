//! The Raft network client: openraft's RPCs carried over tonic to each peer's `NodeService`.
//!
//! Every RPC has a deadline (openraft's soft TTL, or a fixed bound for snapshots); a peer that cannot
//! be reached is reported as `Unreachable` so openraft backs off instead of hammering it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_proto::cluster::v1::node_service_client::NodeServiceClient;
use arca_proto::cluster::v1::{RaftPayload, SnapshotChunk};
use arca_storage::snapshot::SnapshotFile;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{AnyError, OptionalSend};
use tonic::transport::Channel;

use crate::codec::encode;
use crate::wire;
use crate::{ArcaNode, TypeConfig};

type Vote = openraft::alias::VoteOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;

/// Snapshot data is sent in chunks of this many bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Deadline for sending a whole snapshot.
pub const SNAPSHOT_SEND_TIMEOUT_MS: u64 = 60_000;

/// Connect timeout of node-to-node channels, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Interval of HTTP/2 keepalive pings on node-to-node channels, in milliseconds: a connection that a
/// partition silently cut is noticed and replaced instead of stalling requests until their deadline.
pub const KEEPALIVE_INTERVAL_MS: u64 = 5_000;
/// How long a keepalive ping may go unanswered before the connection is dropped, in milliseconds.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 3_000;

/// The settings every node-to-node channel uses, whatever carries it.
pub fn peer_endpoint(endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
    endpoint
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .http2_keep_alive_interval(Duration::from_millis(KEEPALIVE_INTERVAL_MS))
        .keep_alive_timeout(Duration::from_millis(KEEPALIVE_TIMEOUT_MS))
        .keep_alive_while_idle(true)
}

/// Makes a channel to a peer's cluster address. Production uses mutual TLS over TCP and checks that
/// the peer's certificate names `node_id` (when the caller knows which node it dials); the simulation
/// supplies its own network.
pub trait ChannelFactory: Send + Sync + 'static {
    fn channel(&self, cluster_addr: &str, node_id: Option<u64>) -> Result<Channel, String>;
}

/// Largest message a node-to-node client accepts, in bytes (a snapshot response or forwarded answer).
pub const PEER_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A peer as a channel is opened to it: its cluster address and, when known, its node id.
type PeerKey = (String, Option<u64>);

/// Caches one channel per peer (address and expected node) on top of a [`ChannelFactory`].
#[derive(Clone)]
pub struct Channels {
    factory: Arc<dyn ChannelFactory>,
    cache: Arc<Mutex<HashMap<PeerKey, Channel>>>,
}

impl Channels {
    pub fn new(factory: Arc<dyn ChannelFactory>) -> Self {
        Self { factory, cache: Arc::default() }
    }

    /// A client for node `node_id` (its certificate must name it) at `cluster_addr`; `None` when the
    /// caller does not know which node answers there (a node asking to join).
    pub fn client(&self, cluster_addr: &str, node_id: Option<u64>) -> Result<NodeServiceClient<Channel>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let key = (cluster_addr.to_owned(), node_id);
        let channel = match cache.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = self.factory.channel(cluster_addr, node_id)?;
                cache.insert(key, c.clone());
                c
            }
        };
        Ok(NodeServiceClient::new(channel).max_decoding_message_size(PEER_MESSAGE_BYTES_MAX))
    }

    /// Forgets every cached channel: later calls connect anew (after this node's certificate changed,
    /// so no connection keeps presenting the old one).
    pub fn clear(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// openraft's network factory.
#[derive(Clone)]
pub struct Network {
    channels: Channels,
}

impl Network {
    pub fn new(channels: Channels) -> Self {
        Self { channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &ArcaNode) -> Self::Network {
        Connection { target, addr: node.cluster_addr.clone(), channels: self.channels.clone() }
    }
}

/// A connection to one peer.
pub struct Connection {
    target: u64,
    addr: String,
    channels: Channels,
}

fn unreachable(what: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::new(&AnyError::error(what.to_string()))
}

fn network(what: impl std::fmt::Display) -> NetworkError<TypeConfig> {
    NetworkError::new(&AnyError::error(what.to_string()))
}

/// Maps a failed tonic call: a dead or partitioned peer is unreachable, anything else a network error.
fn rpc_error(status: tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(unreachable(status.message()))
        }
        _ => RPCError::Network(network(status.message())),
    }
}

impl Connection {
    fn client(&self) -> Result<NodeServiceClient<Channel>, RPCError<TypeConfig>> {
        self.channels.client(&self.addr, Some(self.target)).map_err(|e| RPCError::Unreachable(unreachable(e)))
    }

    async fn call<F, Fut, T>(
        &self,
        option: &RPCOption,
        what: &str,
        answer: fn(&[u8]) -> wire::Answer<T>,
        f: F,
    ) -> Result<T, RPCError<TypeConfig>>
    where
        F: FnOnce(NodeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let client = self.client()?;
        let response = tokio::time::timeout(option.soft_ttl(), f(client))
            .await
            .map_err(|_| RPCError::Unreachable(unreachable(format!("{what} to node {} timed out", self.target))))?
            .map_err(rpc_error)?;
        let result = answer(&response.into_inner().data).map_err(|e| RPCError::Network(network(e)))?;
        // The peer's Raft refused to handle the RPC (it is shutting down): back off from it.
        result.map_err(|e| RPCError::Unreachable(unreachable(e)))
    }
}

/// The file's bytes in chunks of [`SNAPSHOT_CHUNK_BYTES`], each read as the stream asks for it. A
/// read error ends the stream early; the receiver then refuses the snapshot as truncated.
fn chunks(file: SnapshotFile) -> impl Iterator<Item = SnapshotChunk> {
    use std::io::Read;
    let mut reader = file.reader();
    std::iter::from_fn(move || {
        let mut data = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES);
        match (&mut reader).take(SNAPSHOT_CHUNK_BYTES as u64).read_to_end(&mut data) {
            Ok(0) => None,
            Ok(_) => Some(SnapshotChunk { header: Vec::new(), data }),
            Err(e) => {
                tracing::warn!(error = %e, "failed to read a snapshot file while sending it");
                None
            }
        }
    })
}

/// A lineage's terms: the lineage founded for epoch `n` starts at term `n × LINEAGE_TERM_STRIDE`, so
/// the high bits of a term name the lineage (epoch 1's lineage, the first, runs from term 1).
pub const LINEAGE_TERM_STRIDE: u64 = 1 << 32;

/// Refuses an answer that carries a vote of a later lineage than the request's: handed to openraft,
/// it would make this node take up that lineage's term and, leading a lineage of its own, lead the
/// answering node back into it under a term the new lineage also uses.
fn same_lineage(target: u64, asked: &Vote, answered: &Vote) -> Result<(), RPCError<TypeConfig>> {
    let (asked, answered) = (asked.leader_id().term, answered.leader_id().term);
    if answered / LINEAGE_TERM_STRIDE > asked / LINEAGE_TERM_STRIDE {
        return Err(RPCError::Unreachable(unreachable(format!(
            "node {target} runs a later lineage (term {answered}, this node's {asked}): this node does not follow it"
        ))));
    }
    Ok(())
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = RaftPayload { data: encode(&rpc) };
        let answer = self
            .call(&option, "append entries", wire::append_entries_response, |mut c| async move {
                c.append_entries(payload).await
            })
            .await?;
        if let AppendEntriesResponse::HigherVote(vote) = &answer {
            same_lineage(self.target, &rpc.vote, vote)?;
        }
        Ok(answer)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = RaftPayload { data: encode(&rpc) };
        let answer =
            self.call(&option, "vote", wire::vote_response, |mut c| async move { c.vote(payload).await }).await?;
        same_lineage(self.target, &rpc.vote, &answer.vote)?;
        Ok(answer)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.channels.client(&self.addr, Some(self.target)).map_err(unreachable)?;
        let header = SnapshotChunk { header: encode(&(vote, snapshot.meta)), data: Vec::new() };
        let send =
            client.install_snapshot(tokio_stream::iter(std::iter::once(header).chain(chunks(snapshot.snapshot))));
        let response = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = tokio::time::timeout(Duration::from_millis(SNAPSHOT_SEND_TIMEOUT_MS), send) => r,
        };
        let response = response
            .map_err(|_| unreachable(format!("snapshot to node {} timed out", self.target)))?
            .map_err(|s| unreachable(s.message()))?;
        let result = wire::snapshot_response(&response.into_inner().data).map_err(network)?;
        result.map_err(|e| StreamingError::Unreachable(unreachable(e)))
    }
}
