//! Whether a partition's segments tile its offsets: each segment covers `[start, end)` and
//! the next one starts where it ended. A hole is acceptable only where gap records say the
//! offsets were lost before they could be copied (retention); overlaps never are.

use super::problem::{Problem, ProblemKind};

/// One segment's coverage, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span<'a> {
    pub start: i64,
    pub end: i64,
    pub key: &'a str,
}

/// Holes, overlaps and gap records that overlap data, in one partition of one lineage.
/// `spans` must be sorted by `(start, end)`; `gaps` are `[from, to)` in any order.
pub(crate) fn check(
    topic: &str,
    partition: i32,
    spans: &[Span<'_>],
    gaps: &[(i64, i64)],
) -> Vec<Problem> {
    let mut gaps = gaps.to_vec();
    gaps.sort_unstable();
    let mut problems = Vec::new();
    // The furthest end so far, and the segment that reached it.
    let mut covered: Option<(i64, &str)> = None;
    for span in spans {
        if let Some((end, previous)) = covered {
            if span.start > end {
                for (from, to) in uncovered(end, span.start, &gaps) {
                    problems.push(
                        Problem::new(
                            ProblemKind::Hole,
                            format!(
                                "offsets {from}..{} ({} offsets) are in no segment and no gap \
                                 record explains them; they lie between {previous} and this \
                                 segment",
                                to - 1,
                                to - from
                            ),
                        )
                        .at(topic, partition)
                        .offset(from)
                        .object(span.key),
                    );
                }
            } else if span.start < end {
                problems.push(
                    Problem::new(
                        ProblemKind::Overlap,
                        format!(
                            "this segment covers {}..{}, but {previous} already covers up to \
                             offset {}: the same offsets are stored twice",
                            span.start,
                            span.end - 1,
                            end - 1
                        ),
                    )
                    .at(topic, partition)
                    .offset(span.start)
                    .object(span.key),
                );
            }
        }
        if covered.is_none_or(|(end, _)| span.end > end) {
            covered = Some((span.end, span.key));
        }
    }
    for &(from, to) in &gaps {
        for span in spans.iter().filter(|s| s.start < to && from < s.end) {
            problems.push(
                Problem::new(
                    ProblemKind::GapOverlap,
                    format!(
                        "a gap record says offsets {from}..{} were lost, but this segment holds \
                         {}..{}; the segment's data is used",
                        to - 1,
                        span.start,
                        span.end - 1
                    ),
                )
                .at(topic, partition)
                .offset(from.max(span.start))
                .object(span.key),
            );
        }
    }
    problems
}

/// The parts of `[from, to)` that no gap covers (`gaps` sorted).
fn uncovered(from: i64, to: i64, gaps: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = from;
    for &(g_from, g_to) in gaps {
        if g_to <= at {
            continue;
        }
        if g_from >= to {
            break;
        }
        if g_from > at {
            out.push((at, g_from));
        }
        at = at.max(g_to);
        if at >= to {
            return out;
        }
    }
    if at < to {
        out.push((at, to));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(ranges: &[(i64, i64)]) -> Vec<Span<'static>> {
        let keys = ["s0", "s1", "s2", "s3", "s4", "s5"];
        ranges
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| Span {
                start,
                end,
                key: keys[i],
            })
            .collect()
    }

    fn kinds(p: &[Problem]) -> Vec<(ProblemKind, Option<i64>, Option<&str>)> {
        p.iter()
            .map(|p| (p.kind, p.offset, p.object.as_deref()))
            .collect()
    }

    #[test]
    fn tiling_segments_are_fine_wherever_the_first_starts() {
        assert!(check("t", 0, &spans(&[(0, 10), (10, 25), (25, 26)]), &[]).is_empty());
        assert!(check("t", 0, &spans(&[(500, 600)]), &[]).is_empty());
        assert!(check("t", 0, &[], &[(0, 5)]).is_empty());
    }

    #[test]
    fn a_hole_is_reported_unless_gap_records_explain_it() {
        let s = spans(&[(0, 10), (20, 30)]);
        let p = check("t", 2, &s, &[]);
        assert_eq!(kinds(&p), [(ProblemKind::Hole, Some(10), Some("s1"))]);
        assert_eq!(p[0].partition, Some(2));
        assert!(p[0].message.contains("10..19 (10 offsets)"), "{}", p[0]);
        assert!(p[0].message.contains("s0"));

        assert!(check("t", 2, &s, &[(10, 20)]).is_empty());
        // Two gap records tiling the hole explain it too; wider ones as well.
        assert!(check("t", 2, &s, &[(15, 20), (10, 15)]).is_empty());
        assert!(check("t", 2, &s, &[(10, 20), (30, 40)]).is_empty());
        // A partial explanation leaves the rest reported.
        let p = check("t", 2, &s, &[(12, 15)]);
        assert_eq!(
            kinds(&p),
            [
                (ProblemKind::Hole, Some(10), Some("s1")),
                (ProblemKind::Hole, Some(15), Some("s1"))
            ]
        );
        assert!(p[1].message.contains("15..19 (5 offsets)"), "{}", p[1]);
    }

    #[test]
    fn overlaps_are_reported_and_do_not_hide_later_holes() {
        let s = spans(&[(0, 10), (5, 12), (12, 20), (25, 30)]);
        let p = check("t", 0, &s, &[]);
        assert_eq!(
            kinds(&p),
            [
                (ProblemKind::Overlap, Some(5), Some("s1")),
                (ProblemKind::Hole, Some(20), Some("s3"))
            ]
        );
        // A segment inside another one: overlap, and coverage still ends at the outer end.
        let s = spans(&[(0, 100), (10, 20), (100, 110)]);
        assert_eq!(
            kinds(&check("t", 0, &s, &[])),
            [(ProblemKind::Overlap, Some(10), Some("s1"))]
        );
        // The same range twice (two runs writing at once).
        let s = spans(&[(0, 10), (0, 10)]);
        assert_eq!(
            kinds(&check("t", 0, &s, &[])),
            [(ProblemKind::Overlap, Some(0), Some("s1"))]
        );
    }

    #[test]
    fn gap_records_over_stored_data_are_warnings() {
        let s = spans(&[(0, 10), (10, 20)]);
        let p = check("t", 0, &s, &[(8, 12)]);
        assert_eq!(
            kinds(&p),
            [
                (ProblemKind::GapOverlap, Some(8), Some("s0")),
                (ProblemKind::GapOverlap, Some(10), Some("s1"))
            ]
        );
        assert!(p.iter().all(|p| !p.is_error()));
        // Touching is not overlapping.
        assert!(check("t", 0, &s, &[(20, 30)]).is_empty());
    }

    #[test]
    fn uncovered_ranges() {
        assert_eq!(uncovered(0, 10, &[]), [(0, 10)]);
        assert_eq!(uncovered(0, 10, &[(0, 10)]), []);
        assert_eq!(
            uncovered(0, 10, &[(2, 4), (6, 8)]),
            [(0, 2), (4, 6), (8, 10)]
        );
        assert_eq!(uncovered(5, 10, &[(0, 6), (9, 20)]), [(6, 9)]);
        assert_eq!(uncovered(5, 10, &[(0, 3), (12, 20)]), [(5, 10)]);
    }
}
