//! Captures the committed offsets of every consumer group on the backed-up topics, so that a
//! restore can move the groups to the same records in the target cluster.

use std::collections::BTreeSet;

use backup_format::manifest::{GroupOffset, GroupOffsets, GroupSnapshot};
use kafka_client::{ErrorKind, KafkaClient};

use super::clock::now_rfc3339;

/// Offsets of the groups that committed on any of `topics`. Groups whose offsets the
/// principal may not read are skipped with a warning; a failure to list groups at all is an
/// error for the caller to report.
pub(crate) async fn capture(
    client: &KafkaClient,
    topics: &BTreeSet<String>,
) -> kafka_client::Result<GroupSnapshot> {
    let captured_at = now_rfc3339();
    let listings = client.list_groups().await?;
    let topic_list: Vec<String> = topics.iter().cloned().collect();
    let mut groups = Vec::new();
    for listing in listings {
        // Connect and other protocols keep offsets elsewhere; an empty type is a group that
        // only commits offsets (e.g. a simple consumer), which matters as much as any.
        if !(listing.protocol_type.is_empty() || listing.protocol_type == "consumer") {
            continue;
        }
        let offsets = match client
            .fetch_committed_offsets(&listing.group_id, Some(&topic_list))
            .await
        {
            Ok(o) => o,
            Err(e) if e.kind() == ErrorKind::Authorization => {
                tracing::warn!(group = %listing.group_id, "skipping a group whose offsets this principal may not read: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        if offsets.is_empty() {
            continue;
        }
        groups.push(GroupOffsets {
            group_id: listing.group_id.clone(),
            state: listing.state.clone().unwrap_or_default(),
            offsets: offsets
                .into_iter()
                .map(|(tp, c)| GroupOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata,
                })
                .collect(),
        });
    }
    tracing::info!(groups = groups.len(), "consumer-group offsets captured");
    Ok(GroupSnapshot {
        captured_at,
        groups,
    })
}
