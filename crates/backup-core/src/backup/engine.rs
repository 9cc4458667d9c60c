//! The fetch loop: several Fetches in flight per broker (one per connection, each for its share
//! of the partitions the broker leads), the next one sent before the previous answer is
//! processed, partition errors handled where they occur (leader moves, retention gaps, deleted
//! topics), segments cut by size, age and memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use backup_format::manifest::Gap;
use futures::stream::{FuturesUnordered, StreamExt};
use kafka_client::batch::split_batches;
use kafka_client::error::needs_metadata_refresh;
use kafka_client::{
    FetchOptions, FetchPartition, FetchResult, IsolationLevel, KafkaClient, OffsetSpec,
    TopicPartition,
};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use super::BackupError;
use super::partition::{PartitionState, RunIdentity, Status};
use super::progress::Progress;
use super::sink::SegmentSink;
use crate::config::BackupSettings;

/// Memory the run may hold in segments (open and uploading). Past it, the largest open
/// segments are closed early and fetching waits for uploads.
pub(crate) const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;
/// A partition error is retried this many times (with backoff) before the partition fails.
const MAX_PARTITION_ATTEMPTS: u32 = 12;
/// How long the broker may hold a fetch while waiting for data.
const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// Fetches in a row that return nothing before a snapshot partition is declared ended short.
const MAX_EMPTY_FETCHES: u32 = 20;

type FetchFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (Lane, Vec<TopicPartition>, kafka_client::Result<FetchResult>),
            > + Send,
    >,
>;

/// A broker and one of its fetch connections.
type Lane = (i32, usize);

/// Batches of one partition taken from an answer, waiting to be written.
pub(crate) struct Work {
    tp: TopicPartition,
    batches: Vec<bytes::Bytes>,
    aborted: Vec<(i64, i64)>,
}

/// Why the fetch loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoopExit {
    /// Every partition is done (snapshot), and every segment is stored.
    Finished,
    /// A stop was requested; every segment read so far is stored.
    Interrupted,
    /// Continuous mode: time for a manifest part and topic discovery; segments stay open.
    Checkpoint,
}

/// The connections with a Fetch in flight, and the partitions it asked for.
#[derive(Default)]
struct Busy {
    lanes: HashSet<Lane>,
    partitions: HashSet<TopicPartition>,
}

impl Busy {
    fn take(&mut self, lane: Lane, asked: &[TopicPartition]) {
        self.lanes.insert(lane);
        self.partitions.extend(asked.iter().cloned());
    }

    fn release(&mut self, lane: Lane, asked: &[TopicPartition]) {
        self.lanes.remove(&lane);
        for tp in asked {
            self.partitions.remove(tp);
        }
    }
}

/// Runs the fetch loop until every partition is done (snapshot), `shutdown` fires, or a
/// continuous run reaches its next checkpoint.
pub(crate) struct Engine<'a> {
    pub client: &'a KafkaClient,
    pub settings: &'a BackupSettings,
    pub run: RunIdentity,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    pub sink: SegmentSink,
    pub progress: Progress,
    pub warnings: Vec<String>,
}

impl Engine<'_> {
    pub(crate) async fn run(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        checkpoint_at: Option<Instant>,
    ) -> Result<LoopExit, BackupError> {
        let mut inflight: FuturesUnordered<FetchFuture> = FuturesUnordered::new();
        let mut busy = Busy::default();
        let mut broker_retry_at: HashMap<i32, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut interrupted = *shutdown.borrow();
        let continuous = self.settings.continuous;
        let mut checkpoint = false;
        loop {
            if checkpoint_at.is_some_and(|t| Instant::now() >= t) && !interrupted {
                checkpoint = true;
            }
            self.sink.reap_ready().await?;
            self.relieve_memory().await?;
            if !interrupted && !checkpoint {
                self.schedule(&mut inflight, &mut busy, &broker_retry_at);
            }
            if inflight.is_empty() {
                let active = self.partitions.values().any(|p| p.status == Status::Active);
                if (!active && !continuous) || interrupted {
                    break;
                }
                if checkpoint {
                    self.sink.reap_ready().await?;
                    return Ok(LoopExit::Checkpoint);
                }
            }
            tokio::select! {
                Some(((broker, lane), asked, result)) = inflight.next(), if !inflight.is_empty() => {
                    busy.release((broker, lane), &asked);
                    match result {
                        Ok(answer) => {
                            broker_retry_at.remove(&broker);
                            if !answer.throttle.is_zero() {
                                broker_retry_at.insert(broker, Instant::now() + answer.throttle);
                            }
                            // Positions move first, so the next fetch is on its way while this
                            // answer is written.
                            let work = self.handle_answer(answer).await?;
                            if !interrupted && !checkpoint {
                                self.schedule(&mut inflight, &mut busy, &broker_retry_at);
                            }
                            self.write(work).await?;
                        }
                        Err(e) => self.handle_broker_error(broker, &asked, e, &mut broker_retry_at).await?,
                    }
                }
                _ = shutdown.changed(), if !interrupted => {
                    tracing::info!("stop requested: finishing the fetches in flight, then closing segments");
                    interrupted = true;
                }
                _ = tick.tick() => {
                    self.close_aged().await?;
                    self.progress.update(&self.partitions, self.sink.segments_written);
                    self.publish_metrics();
                }
            }
        }
        // Everything read is written, whatever ended the loop.
        let keys: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in keys {
            if let Some(p) = self.partitions.get_mut(&tp) {
                self.sink.close(p).await?;
            }
        }
        self.sink.drain().await?;
        self.progress
            .finish(&self.partitions, self.sink.segments_written);
        self.publish_metrics();
        Ok(if interrupted {
            LoopExit::Interrupted
        } else {
            LoopExit::Finished
        })
    }

    /// Sends a Fetch on each idle connection of each broker that leads active partitions not
    /// already asked for: the partitions a broker leads are shared among its idle connections.
    fn schedule(
        &mut self,
        inflight: &mut FuturesUnordered<FetchFuture>,
        busy: &mut Busy,
        broker_retry_at: &HashMap<i32, Instant>,
    ) {
        if self.sink.pending_bytes > MEMORY_BUDGET / 2 {
            // Storage is behind: let uploads catch up before reading more.
            return;
        }
        let now = Instant::now();
        let mut by_broker: BTreeMap<i32, Vec<FetchPartition>> = BTreeMap::new();
        // Active partitions per leader, in a Fetch or not.
        let mut leads: HashMap<i32, usize> = HashMap::new();
        let mut open = 0usize;
        for p in self.partitions.values() {
            if p.status != Status::Active || p.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            open += 1;
            if open > self.settings.max_concurrent_partitions {
                break;
            }
            let Ok(leader) = self.client.leader_for(p.tp()) else {
                continue;
            };
            *leads.entry(leader).or_default() += 1;
            // A partition is in one Fetch at a time: two answers for one position would
            // both be written.
            if busy.partitions.contains(p.tp()) {
                continue;
            }
            by_broker.entry(leader).or_default().push(FetchPartition {
                tp: p.tp().clone(),
                offset: p.position,
                max_bytes: p.max_bytes,
            });
        }
        let lanes = self.settings.connections_per_broker.max(1);
        for (broker, parts) in by_broker {
            // fetch_max_bytes bounds what a broker's answers in flight hold together: shared
            // among the connections that can be busy at once (a partition is in one Fetch at
            // a time, so never more than the broker's partitions).
            let leads = leads.get(&broker).copied().unwrap_or(1);
            let request_max = (self.settings.fetch_max_bytes as usize / lanes.min(leads).max(1))
                .max(1024 * 1024) as i32;
            if broker_retry_at.get(&broker).is_some_and(|t| *t > now) {
                continue;
            }
            let idle: Vec<usize> = (0..lanes)
                .filter(|lane| !busy.lanes.contains(&(broker, *lane)))
                .collect();
            if idle.is_empty() {
                continue;
            }
            // Dealt round-robin, so each idle connection gets an even share.
            let mut shares: Vec<Vec<FetchPartition>> = vec![Vec::new(); idle.len()];
            for (i, part) in parts.into_iter().enumerate() {
                shares[i % idle.len()].push(part);
            }
            for (lane, share) in idle.into_iter().zip(shares) {
                if share.is_empty() {
                    continue;
                }
                self.send_fetch(inflight, busy, (broker, lane), share, request_max);
            }
        }
    }

    fn send_fetch(
        &self,
        inflight: &mut FuturesUnordered<FetchFuture>,
        busy: &mut Busy,
        (broker, lane): Lane,
        parts: Vec<FetchPartition>,
        max_bytes: i32,
    ) {
        let asked: Vec<TopicPartition> = parts.iter().map(|p| p.tp.clone()).collect();
        busy.take((broker, lane), &asked);
        let client = self.client.clone();
        let options = FetchOptions {
            max_wait: FETCH_MAX_WAIT,
            min_bytes: 1,
            max_bytes,
            isolation: IsolationLevel::ReadCommitted,
            lane,
        };
        // A task of its own, so the request goes out and the answer comes in while this
        // loop writes the previous answer.
        let fetch = tokio::spawn(async move { client.fetch(broker, &parts, &options).await });
        inflight.push(Box::pin(async move {
            let result = fetch.await.unwrap_or_else(|e| {
                Err(kafka_client::Error::Disconnected {
                    broker: format!("broker {broker}"),
                    context: format!("because the fetch task ended: {e}"),
                })
            });
            ((broker, lane), asked, result)
        }));
    }

    /// Hands the run's figures to the process's metrics.
    fn publish_metrics(&self) {
        let records = self.partitions.values().map(|p| p.records).sum();
        let bytes_read = self.partitions.values().map(|p| p.raw_bytes).sum();
        crate::metrics::metrics().backup_progress(
            records,
            bytes_read,
            self.sink.written_bytes,
            self.sink.segments_written as u64,
            self.partitions.iter().map(|(tp, p)| {
                let state = match p.status {
                    Status::Active => "active",
                    Status::Done => "done",
                    Status::Failed(_) => "failed",
                };
                (tp, p.high_watermark, p.position, state)
            }),
        );
        crate::metrics::metrics().run_duration(self.progress.elapsed().as_secs_f64());
    }

    /// Phase one of an answer: advances positions and handles partition errors. Returns the
    /// batches to write.
    async fn handle_answer(&mut self, answer: FetchResult) -> Result<Vec<Work>, BackupError> {
        let mut refresh = false;
        let mut work = Vec::new();
        for part in answer.partitions {
            let tp = part.tp.clone();
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if state.status != Status::Active {
                continue;
            }
            match part.error {
                None => {
                    state.attempts = 0;
                    state.retry_at = None;
                    state.high_watermark = Some(part.high_watermark);
                    let (batches, complete_len) = split_batches(&part.records).map_err(|e| {
                        BackupError::Kafka(kafka_client::Error::Protocol {
                            broker: format!("the leader of {tp}"),
                            detail: format!("malformed record data for {tp}: {e}"),
                        })
                    })?;
                    let aborted: Vec<(i64, i64)> = part
                        .aborted_transactions
                        .iter()
                        .map(|a| (a.first_offset, a.producer_id))
                        .collect();
                    let taken = state.advance(batches)?;
                    if taken.is_empty() && complete_len == 0 && !part.records.is_empty() {
                        // The next batch is bigger than we asked for: ask for more next time.
                        state.max_bytes = state
                            .max_bytes
                            .saturating_mul(2)
                            .min(self.settings.fetch_max_bytes as i32);
                    }
                    if taken.is_empty()
                        && state.plan.target_end.is_some()
                        && !state.reached_target()
                    {
                        state.empty_fetches += 1;
                        if state.empty_fetches >= MAX_EMPTY_FETCHES
                            && state.position >= part.high_watermark
                        {
                            let end = state.plan.target_end.unwrap_or(state.position);
                            let msg = format!(
                                "partition {tp} ends at offset {} although offset {end} was planned: the log \
                                 was truncated while the backup ran (an unclean leader election?)",
                                state.position
                            );
                            tracing::warn!("{msg}");
                            self.warnings.push(msg);
                            state.status = Status::Done;
                        }
                    } else {
                        state.empty_fetches = 0;
                    }
                    if state.reached_target() {
                        state.status = Status::Done;
                    }
                    work.push(Work {
                        tp,
                        batches: taken,
                        aborted,
                    });
                }
                Some(ResponseError::OffsetOutOfRange) => self.out_of_range(&tp).await?,
                Some(ResponseError::TopicAuthorizationFailed) => {
                    state.status = Status::Failed(format!(
                        "the principal may not read topic {}: grant it Read and Describe on the topic \
                         (kafka-acls --add --allow-principal User:<user> --operation Read --operation Describe --topic {})",
                        tp.topic, tp.topic
                    ));
                }
                Some(code)
                    if matches!(
                        code,
                        ResponseError::UnknownTopicId
                            | ResponseError::UnknownTopicOrPartition
                            | ResponseError::InconsistentTopicId
                    ) =>
                {
                    refresh = true;
                    self.retry_later(&tp, code);
                }
                Some(code) if needs_metadata_refresh(code) || code.is_retriable() => {
                    refresh = true;
                    self.retry_later(&tp, code);
                }
                Some(code) => {
                    state.status = Status::Failed(format!(
                        "the broker refused to serve it: {} ({})",
                        kafka_client::error::error_name(code),
                        code.code()
                    ));
                }
            }
        }
        if refresh {
            self.refresh_and_check_lineages().await?;
        }
        Ok(work)
    }

    /// Phase two of an answer: writes the batches into segments, closing those that are full
    /// or whose partition is done.
    async fn write(&mut self, work: Vec<Work>) -> Result<(), BackupError> {
        for Work {
            tp,
            batches,
            aborted,
        } in work
        {
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue;
            };
            // One batch at a time, so that a segment is cut where it reaches its size even
            // inside a large Fetch answer (brokers may answer with more than fetch_max_bytes).
            // The answer's aborted transactions go with every segment cut from it.
            let mut attach = true;
            for (i, batch) in batches.iter().enumerate() {
                let aborted: &[(i64, i64)] = if attach { &aborted } else { &[] };
                state.write(&self.run, std::slice::from_ref(batch), aborted)?;
                attach = false;
                if i + 1 < batches.len() && state.buffered() >= self.settings.segment_max_bytes {
                    self.sink.close(state).await?;
                    attach = true;
                }
            }
            if state.status == Status::Done || state.buffered() >= self.settings.segment_max_bytes {
                self.sink.close(state).await?;
            }
        }
        Ok(())
    }

    /// Puts a partition aside for a while after a retriable error; fails it after too many.
    fn retry_later(&mut self, tp: &TopicPartition, code: ResponseError) {
        let backoff = self
            .client
            .backoff(self.partitions.get(tp).map(|p| p.attempts).unwrap_or(0));
        if let Some(state) = self.partitions.get_mut(tp) {
            state.attempts += 1;
            if state.attempts > MAX_PARTITION_ATTEMPTS {
                state.status = Status::Failed(format!(
                    "it kept failing with {} after {MAX_PARTITION_ATTEMPTS} attempts",
                    kafka_client::error::error_name(code)
                ));
            } else {
                tracing::debug!(partition = %tp, error = %kafka_client::error::error_name(code), "will retry");
                state.retry_at = Some(Instant::now() + backoff);
            }
        }
    }

    async fn handle_broker_error(
        &mut self,
        broker: i32,
        asked: &[TopicPartition],
        error: kafka_client::Error,
        broker_retry_at: &mut HashMap<i32, Instant>,
    ) -> Result<(), BackupError> {
        if !error.is_retriable() {
            return Err(error.into());
        }
        let attempts = asked
            .iter()
            .filter_map(|tp| self.partitions.get(tp))
            .map(|p| p.attempts)
            .max()
            .unwrap_or(0);
        if attempts >= MAX_PARTITION_ATTEMPTS {
            return Err(error.into());
        }
        tracing::warn!(broker, error = %error, "fetch failed; retrying after a metadata refresh");
        for tp in asked {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.attempts += 1;
            }
        }
        broker_retry_at.insert(broker, Instant::now() + self.client.backoff(attempts));
        if let Err(e) = self.client.refresh_metadata().await {
            tracing::warn!(error = %e, "metadata refresh failed; will try again");
        }
        Ok(())
    }

    /// OFFSET_OUT_OF_RANGE: retention deleted what we were about to read (record a gap and
    /// move to the log start), or the log was truncated below what we already have.
    async fn out_of_range(&mut self, tp: &TopicPartition) -> Result<(), BackupError> {
        let tps = std::slice::from_ref(tp);
        let earliest = self
            .client
            .list_offsets(tps, OffsetSpec::Earliest, IsolationLevel::ReadCommitted)
            .await?;
        let latest = self
            .client
            .list_offsets(tps, OffsetSpec::Latest, IsolationLevel::ReadUncommitted)
            .await?;
        let log_start = earliest.get(tp).map(|o| o.offset).unwrap_or(0);
        let log_end = latest.get(tp).map(|o| o.offset).unwrap_or(0);
        let Some(state) = self.partitions.get_mut(tp) else {
            return Ok(());
        };
        let position = state.position;
        if position < log_start {
            // The segment being written ends where the gap begins.
            self.sink.close(state).await?;
            let gap = Gap {
                topic: tp.topic.clone(),
                topic_id: state.plan.topic_id.clone(),
                partition: tp.partition,
                from: position,
                to: log_start,
                reason: "retention deleted these offsets before they were backed up".to_owned(),
                detected_at: super::clock::now_rfc3339(),
            };
            let msg = format!(
                "partition {tp}: offsets {position} to {} were deleted by retention before they could \
                 be backed up; recorded as a gap, continuing from {log_start}",
                log_start - 1
            );
            tracing::warn!("{msg}");
            self.warnings.push(msg);
            self.sink.record_gap(gap).await?;
            state.jump_to(log_start);
            if state.reached_target() {
                state.status = Status::Done;
            }
        } else if position > log_end {
            state.status = Status::Failed(format!(
                "its log now ends at offset {log_end}, below offset {position} that was already backed \
                 up: the partition was truncated (an unclean leader election, or the topic was \
                 re-created on a broker without topic ids). Offsets from {log_end} on may now hold \
                 different records; back it up under a new backup_id"
            ));
        } else {
            // A leader change raced with the fetch; the next fetch will do.
            self.retry_later(tp, ResponseError::OffsetOutOfRange);
        }
        Ok(())
    }

    /// After routing errors: refresh metadata, and end the lineage of topics that were deleted
    /// or re-created (their topic id changed) while the backup ran.
    async fn refresh_and_check_lineages(&mut self) -> Result<(), BackupError> {
        if let Err(e) = self.client.refresh_metadata().await {
            tracing::warn!(error = %e, "metadata refresh failed; will try again");
            return Ok(());
        }
        let metadata = self.client.metadata();
        let tps: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for tp in tps {
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if state.status != Status::Active {
                continue;
            }
            let current = metadata
                .topics
                .get(&tp.topic)
                .map(|t| super::plan::lineage_of(&t.topic_id));
            match current {
                Some(id) if id == state.plan.topic_id => {}
                other => {
                    let what = match other {
                        None => "was deleted".to_owned(),
                        Some(id) => format!("was deleted and re-created (new topic id {id})"),
                    };
                    let msg = format!(
                        "topic {} {what} while the backup ran: its backup ends at offset {} and a \
                         re-created topic is never mixed into the same lineage",
                        tp.topic, state.position
                    );
                    tracing::warn!("{msg}");
                    self.warnings.push(msg);
                    self.sink.close(state).await?;
                    state.status = Status::Done;
                }
            }
        }
        Ok(())
    }

    /// Closes segments that have been open longer than `segment_max_interval`.
    async fn close_aged(&mut self) -> Result<(), BackupError> {
        let limit = self.settings.segment_max_interval;
        let now = Instant::now();
        for state in self.partitions.values_mut() {
            if state
                .segment
                .as_ref()
                .is_some_and(|s| now.duration_since(s.opened_at) >= limit)
            {
                self.sink.close(state).await?;
            }
        }
        Ok(())
    }

    /// Keeps buffered segment bytes within the budget by closing the largest open segments.
    async fn relieve_memory(&mut self) -> Result<(), BackupError> {
        loop {
            let open: u64 = self.partitions.values().map(|p| p.buffered()).sum();
            if open + self.sink.pending_bytes <= MEMORY_BUDGET {
                return Ok(());
            }
            if open > MEMORY_BUDGET / 2 {
                let largest = self
                    .partitions
                    .values_mut()
                    .max_by_key(|p| p.buffered())
                    .filter(|p| p.buffered() > 0);
                match largest {
                    Some(p) => self.sink.close(p).await?,
                    None => return Ok(()),
                }
            } else if self.sink.pending_bytes > 0 {
                self.sink.reap_one().await?;
            } else {
                return Ok(());
            }
        }
    }
}
