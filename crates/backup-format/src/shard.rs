//! Sharded backups: COUNT processes back up one backup at once, each the partitions its shard
//! owns, each run in a lane of its own.
//!
//! Which shard owns a partition: each topic's partitions are dealt round-robin over the
//! shards, starting at a shard chosen by a hash of the topic's name. Every process computes
//! it alone, from nothing but names and numbers, so shards need no coordination and always
//! agree. It is balanced (a topic's partitions differ by at most one between shards; the
//! hash spreads the remainders of different topics), and stable when partitions or topics are
//! added: a partition's owner depends on its topic, its number and the shard count only.
//! Rendezvous hashing, the other candidate, keeps more partitions in place when the count
//! changes, but that is cheap here anyway (a run resumes each partition from what storage
//! holds, whichever shard wrote it), and on small topics it is badly unbalanced: 8, 3 and 1
//! of twelve partitions over three shards in a test. The hash is SHA-256 and the scheme is
//! fixed by the format: versions sharing one backup must agree, so a test pins outputs.
//!
//! Partition sizes are deliberately not weights: live sizes differ between the moments the
//! shards look, and two shards that disagree about one partition would both copy it (or
//! neither would).
//!
//! A shard's runs are a lane: their ids end in `.shard-{index}-of-{count}`, and a signed
//! run chains to the newest run of its own lane, so concurrent shards do not fork one chain.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The largest shard count: far more pods than any cluster needs, small enough that a
/// mistyped count is caught.
pub const MAX_SHARDS: u32 = 1024;

/// One shard of a sharded backup: `index` of `count`, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// A shard that cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// The text is not `INDEX/COUNT`.
    #[error(
        "{text:?} is not a shard: write INDEX/COUNT, e.g. 0/3 for the first of three shards \
         (indexes count from 0)"
    )]
    Syntax {
        /// What was given.
        text: String,
    },
    /// The count is 0 or above [`MAX_SHARDS`].
    #[error("a backup can be split into 1 to {MAX_SHARDS} shards, not {count}")]
    Count {
        /// The count given.
        count: u32,
    },
    /// The index is not below the count.
    #[error(
        "shard index {index} is out of range for {count} shards: indexes run from 0 to {}",
        count.saturating_sub(1)
    )]
    Index {
        /// The index given.
        index: u32,
        /// The count given.
        count: u32,
    },
}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count { count });
        }
        if index >= count {
            return Err(ShardError::Index { index, count });
        }
        Ok(Self { index, count })
    }

    /// Its index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this shard backs up `partition` of `topic`.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        owner(topic, partition, self.count) == self.index
    }

    /// What run ids of this shard's lane end with.
    pub fn run_suffix(&self) -> String {
        format!("{RUN_MARK}{}-of-{}", self.index, self.count)
    }

    /// The shard whose lane a run id belongs to; `None` for the runs of an unsharded backup
    /// (and for a suffix that does not parse, which no run of ours has).
    pub fn of_run(run_id: &str) -> Option<Self> {
        let (_, lane) = run_id.split_once(RUN_MARK)?;
        let (index, count) = lane.split_once("-of-")?;
        let index = parse_number(index)?;
        let count = parse_number(count)?;
        Self::new(index, count).ok()
    }
}

const RUN_MARK: &str = ".shard-";

/// A run id's base: the id without its lane suffix.
pub(crate) fn run_base(run_id: &str) -> &str {
    run_id.split_once(RUN_MARK).map_or(run_id, |(base, _)| base)
}

fn parse_number(text: &str) -> Option<u32> {
    // No signs, spaces or leading zeros: one spelling per shard.
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax {
            text: text.to_owned(),
        };
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let index = index.trim().parse().map_err(|_| syntax())?;
        let count = count.trim().parse().map_err(|_| syntax())?;
        Self::new(index, count)
    }
}

/// The shard of `count` that owns `partition` of `topic`.
pub fn owner(topic: &str, partition: i32, count: u32) -> u32 {
    let count = u64::from(count.max(1));
    let start = topic_hash(topic) % count;
    let partition = u64::try_from(partition).unwrap_or(0);
    // Both terms are below 2^63, so the sum cannot overflow; the result is below `count`.
    ((start + partition % count) % count) as u32
}

fn topic_hash(topic: &str) -> u64 {
    let digest = Sha256::digest(topic.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_shards() {
        assert_eq!("0/3".parse::<Shard>().unwrap(), Shard::new(0, 3).unwrap());
        assert_eq!(" 2 / 3 ".parse::<Shard>().unwrap().to_string(), "2/3");
        for bad in ["3", "a/3", "1/", "-1/3", "1/3/4", ""] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(ShardError::Syntax { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            "3/3".parse::<Shard>(),
            Err(ShardError::Index { index: 3, count: 3 })
        );
        assert_eq!("0/0".parse::<Shard>(), Err(ShardError::Count { count: 0 }));
        assert_eq!(
            "0/1025".parse::<Shard>(),
            Err(ShardError::Count { count: 1025 })
        );
        let msg = "3/3".parse::<Shard>().unwrap_err().to_string();
        assert!(msg.contains("from 0 to 2"), "{msg}");
    }

    #[test]
    fn run_ids_carry_their_lane() {
        let s = Shard::new(1, 3).unwrap();
        let id = format!("20261204T233000Z-1a2b3c4d{}", s.run_suffix());
        assert_eq!(id, "20261204T233000Z-1a2b3c4d.shard-1-of-3");
        assert_eq!(Shard::of_run(&id), Some(s));
        assert_eq!(run_base(&id), "20261204T233000Z-1a2b3c4d");
        assert_eq!(Shard::of_run("20261204T233000Z-1a2b3c4d"), None);
        for odd in [
            "x.shard-3-of-3",
            "x.shard-01-of-3",
            "x.shard-1-of-",
            "x.shard-+1-of-3",
        ] {
            assert_eq!(Shard::of_run(odd), None, "{odd}");
        }
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_the_load_is_balanced() {
        let count = 3;
        let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
        let mut load = vec![0usize; count as usize];
        for t in 0..40 {
            let topic = format!("topic-{t}");
            let mut per_topic = vec![0usize; count as usize];
            for p in 0..(t % 13 + 1) {
                let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&topic, p)).collect();
                assert_eq!(owners.len(), 1, "{topic}-{p}");
                per_topic[owners[0].index() as usize] += 1;
            }
            let (lo, hi) = (per_topic.iter().min(), per_topic.iter().max());
            assert!(hi.unwrap() - lo.unwrap() <= 1, "{topic}: {per_topic:?}");
            for (l, n) in load.iter_mut().zip(per_topic) {
                *l += n;
            }
        }
        // 274 partitions in topics of 1 to 13: each shard within 10% of a third.
        let total: usize = load.iter().sum();
        assert_eq!(total, 274);
        for l in &load {
            assert!((82..=101).contains(l), "{load:?}");
        }
    }

    #[test]
    fn adding_partitions_or_topics_moves_nothing() {
        let before: Vec<u32> = (0..50).map(|p| owner("orders", p, 4)).collect();
        let after: Vec<u32> = (0..80).map(|p| owner("orders", p, 4)).collect();
        assert_eq!(before[..], after[..50]);
        // The owner depends on the topic's own name only, so other topics cannot move it.
        assert_eq!(owner("orders", 7, 4), owner("orders", 7, 4));
        // Twelve partitions over three shards: exactly four each.
        let mut load = [0; 3];
        for p in 0..12 {
            load[owner("orders", p, 3) as usize] += 1;
        }
        assert_eq!(load, [4, 4, 4]);
    }

    #[test]
    fn the_assignment_is_fixed_by_the_format() {
        // Shards of different versions share one backup: changing the hash would make two of
        // them copy the same partition. These values must never change.
        let got: Vec<u32> = (0..12).map(|p| owner("orders", p, 3)).collect();
        assert_eq!(got, PINNED_ORDERS_3);
        assert_eq!(owner("payments.eu", 7, 16), PINNED_PAYMENTS_7_16);
        assert_eq!(owner("x", 0, 1), 0);
    }

    const PINNED_ORDERS_3: [u32; 12] = [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1];
    const PINNED_PAYMENTS_7_16: u32 = 4;
}
