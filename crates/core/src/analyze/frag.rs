//! File-level figures: how the file's pages are used, where the free space is, how full the
//! tree pages are, and an estimate of a defragmented copy's size.

use serde::Serialize;

use crate::reader::Db;
use crate::reader::PageMap;
use crate::writer::CompactSummary;

use super::stats::{Stats, pct};

/// Pages and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Amount {
    pub pages: u64,
    pub bytes: u64,
}

impl Amount {
    fn of(pages: u64, page_size: u64) -> Amount {
        Amount {
            pages,
            bytes: pages * page_size,
        }
    }
}

/// Free runs whose length `len` satisfies `min_len <= len <= max_len` (a power-of-two bin:
/// 1, 2–3, 4–7, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunBin {
    #[serde(rename = "min_len_pages")]
    pub min_len: u64,
    #[serde(rename = "max_len_pages")]
    pub max_len: u64,
    /// Runs in this bin.
    pub runs: u64,
    /// Pages in those runs.
    pub pages: u64,
}

/// Runs of consecutive free pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreeRuns {
    pub count: u64,
    /// Length in pages of the longest run (0 when nothing is free).
    #[serde(rename = "largest_pages")]
    pub largest: u64,
    /// First page of the longest run (the first one, on a tie).
    pub largest_at: Option<u64>,
    /// Every bin from length 1 up to the longest run's bin, empty bins included.
    pub histogram: Vec<RunBin>,
}

/// Run lengths (in pages) binned by powers of two.
pub fn free_runs(runs: &[(u64, u64)]) -> FreeRuns {
    let mut largest = 0;
    let mut largest_at = None;
    let mut histogram: Vec<RunBin> = Vec::new();
    for &(start, len) in runs {
        if len == 0 {
            continue;
        }
        if len > largest {
            largest = len;
            largest_at = Some(start);
        }
        let bin = len.ilog2() as usize;
        while histogram.len() <= bin {
            let k = histogram.len() as u32;
            histogram.push(RunBin {
                min_len: 1 << k,
                // 2^(k+1) - 1 without overflowing at k = 63.
                max_len: ((1u64 << k) - 1) + (1u64 << k),
                runs: 0,
                pages: 0,
            });
        }
        histogram[bin].runs += 1;
        histogram[bin].pages += len;
    }
    FreeRuns {
        count: histogram.iter().map(|b| b.runs).sum(),
        largest,
        largest_at,
        histogram,
    }
}

/// One tenth of the file's whole pages: `[first_page, end_page)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tenth {
    pub first_page: u64,
    pub end_page: u64,
    /// Free pages in this tenth (free pages exist only below the high-water mark).
    pub free: Amount,
    /// Pages at or past the high-water mark: preallocated, not yet used by bbolt.
    pub past_hwm: Amount,
}

/// Tenths of `[0, file_pages)`: tenth `i` is `[i*n/10, (i+1)*n/10)`, so with fewer than 10
/// pages some are empty. `free[p]` covers pages below the high-water mark.
pub fn tenths(file_pages: u64, hwm: u64, free: &[bool], page_size: u64) -> Vec<Tenth> {
    (0..10u64)
        .map(|i| {
            let first = (u128::from(file_pages) * u128::from(i) / 10) as u64;
            let end = (u128::from(file_pages) * u128::from(i + 1) / 10) as u64;
            let below = end.min(hwm).min(free.len() as u64);
            let n_free = if first < below {
                free[first as usize..below as usize]
                    .iter()
                    .filter(|&&f| f)
                    .count() as u64
            } else {
                0
            };
            Tenth {
                first_page: first,
                end_page: end,
                free: Amount::of(n_free, page_size),
                past_hwm: Amount::of(end.saturating_sub(first.max(hwm)), page_size),
            }
        })
        .collect()
}

/// The size of a defragmented copy.
#[derive(Debug, Clone, Serialize)]
pub struct DefragEstimate {
    /// How the figure was obtained; always read it with the figure.
    pub method: &'static str,
    /// True when it comes from the writer's planner (exactly what `compact --dry-run`
    /// prints); false for the lower-bound fallback on a file the writer cannot copy.
    pub exact: bool,
    pub pages: u64,
    pub bytes: u64,
    /// `file_size - bytes` (0 when the copy would not be smaller).
    pub saving_bytes: u64,
}

/// The fallback when the writer cannot plan a copy (a damaged file): a lower bound from the
/// bytes in use, not a plan.
pub const DEFRAG_ESTIMATE_METHOD: &str = "estimate (lower bound, not a plan; the file could \
     not be copied): 2 meta pages, the freelist page if the file has one, and each paged \
     bucket's leaf and branch bytes in use repacked at fill 1.0, rounded up to whole pages";

/// How the exact figure is obtained.
pub const DEFRAG_PLANNER_METHOD: &str = "exact: the writer's own planner at fill 1.0, the \
     source's page size and freelist mode (what `boltpack compact --dry-run` prints)";

/// The size of a defragmented copy of `db`: the writer's planner run into a sink, or the
/// lower-bound estimate when the file cannot be copied.
pub fn defrag_estimate(db: &Db, stats: &Stats<'_>) -> DefragEstimate {
    use crate::writer::{CompactOptions, Transform, plan_copy};
    let t = Transform::default();
    if let Ok(summary) = plan_copy(db, &CompactOptions::default(), &t) {
        return exact_defrag(db, &summary);
    }
    let ps = u64::from(db.page_size());
    let freelist = u64::from(db.meta().has_freelist_page());
    let data: u64 = stats
        .buckets
        .iter()
        .filter(|b| !b.is_inline())
        .map(|b| b.own.leaf_inuse.div_ceil(ps) + b.own.branch_inuse.div_ceil(ps))
        .sum();
    let pages = 2 + freelist + data;
    let bytes = pages * ps;
    DefragEstimate {
        method: DEFRAG_ESTIMATE_METHOD,
        exact: false,
        pages,
        bytes,
        saving_bytes: db.file_size().saturating_sub(bytes),
    }
}

/// The estimate from a plan of the defragmented copy (`compact --dry-run`'s summary).
pub fn exact_defrag(db: &Db, plan: &CompactSummary) -> DefragEstimate {
    DefragEstimate {
        method: DEFRAG_PLANNER_METHOD,
        exact: true,
        pages: plan.dst_pages,
        bytes: plan.dst_size,
        saving_bytes: db.file_size().saturating_sub(plan.dst_size),
    }
}

/// File-level figures (see [`crate::analyze::Analysis`] for the JSON contract).
#[derive(Debug, Clone, Serialize)]
pub struct FileFigures {
    #[serde(rename = "file_size_bytes")]
    pub file_size: u64,
    #[serde(rename = "page_size_bytes")]
    pub page_size: u32,
    /// Pages `[0, hwm)` are bbolt's; the rest of the file is preallocation or a trailer.
    #[serde(rename = "hwm_pages")]
    pub hwm: u64,
    /// `hwm * page_size`.
    #[serde(rename = "used_size_bytes")]
    pub used_size: u64,
    /// Bytes past `used_size` (0 for a file truncated below its hwm).
    pub past_hwm_bytes: u64,
    /// Pages reached from a meta: metas, freelist, branch, leaf and overflow pages.
    pub live: Amount,
    /// Free pages (listed by the freelist page, or unreached under NoFreelistSync).
    pub free: Amount,
    /// Neither reached nor listed free: leaked.
    pub unreachable: Amount,
    pub free_runs: FreeRuns,
    /// Where free space sits, by tenths of the file's whole pages.
    pub free_by_tenth: Vec<Tenth>,
    /// Leaf bytes in use over leaf bytes allocated, over all paged buckets (root included),
    /// in percent; `None` without leaf pages.
    pub leaf_fill_pct: Option<f64>,
    /// Same for branch pages.
    pub branch_fill_pct: Option<f64>,
    pub defrag_estimate: DefragEstimate,
}

impl FileFigures {
    pub fn gather(
        db: &Db,
        map: &PageMap,
        stats: &Stats<'_>,
        defrag_estimate: DefragEstimate,
    ) -> FileFigures {
        let ps = u64::from(db.page_size());
        let counts = map.counts();
        let hwm = db.hwm();
        let used_size = hwm.saturating_mul(ps);
        let (mut leaf_inuse, mut leaf_alloc, mut branch_inuse, mut branch_alloc) = (0, 0, 0, 0);
        for b in &stats.buckets {
            leaf_inuse += b.own.leaf_inuse;
            leaf_alloc += b.own.leaf_alloc;
            branch_inuse += b.own.branch_inuse;
            branch_alloc += b.own.branch_alloc;
        }
        FileFigures {
            file_size: db.file_size(),
            page_size: db.page_size(),
            hwm,
            used_size,
            past_hwm_bytes: db.file_size().saturating_sub(used_size),
            live: Amount::of(counts.reachable, ps),
            free: Amount::of(counts.free, ps),
            unreachable: Amount::of(counts.unreachable, ps),
            free_runs: free_runs(&map.free_runs()),
            free_by_tenth: tenths(db.file_pages(), hwm, &map.free, ps),
            leaf_fill_pct: pct(leaf_inuse, leaf_alloc),
            branch_fill_pct: pct(branch_inuse, branch_alloc),
            defrag_estimate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_binned_by_powers_of_two() {
        let r = free_runs(&[(10, 1), (20, 3), (30, 2), (40, 9), (60, 1)]);
        assert_eq!(r.count, 5);
        assert_eq!((r.largest, r.largest_at), (9, Some(40)));
        let bins: Vec<_> = r
            .histogram
            .iter()
            .map(|b| (b.min_len, b.max_len, b.runs, b.pages))
            .collect();
        assert_eq!(
            bins,
            [(1, 1, 2, 2), (2, 3, 2, 5), (4, 7, 0, 0), (8, 15, 1, 9)]
        );
    }

    #[test]
    fn no_runs() {
        let r = free_runs(&[]);
        assert_eq!((r.count, r.largest, r.largest_at), (0, 0, None));
        assert!(r.histogram.is_empty());
    }

    #[test]
    fn tie_keeps_the_first_longest_run() {
        let r = free_runs(&[(5, 4), (50, 4)]);
        assert_eq!(r.largest_at, Some(5));
    }

    #[test]
    fn huge_run_bins_do_not_overflow() {
        let r = free_runs(&[(2, u64::MAX)]);
        let last = r.histogram.last().unwrap();
        assert_eq!((last.min_len, last.max_len), (1 << 63, u64::MAX));
    }

    #[test]
    fn tenths_split_free_and_past_hwm_pages() {
        // 20 pages in the file, hwm 15; pages 2, 3 and 12 free.
        let mut free = vec![false; 15];
        for p in [2, 3, 12] {
            free[p] = true;
        }
        let t = tenths(20, 15, &free, 100);
        assert_eq!(t.len(), 10);
        assert_eq!((t[0].first_page, t[0].end_page), (0, 2));
        assert_eq!(
            t[1].free,
            Amount {
                pages: 2,
                bytes: 200
            }
        );
        assert_eq!(t[6].free.pages, 1);
        assert_eq!(t[7].past_hwm.pages, 1); // pages 14..16: only 15 is past the hwm
        assert_eq!(t[9].past_hwm.pages, 2);
        let total_free: u64 = t.iter().map(|t| t.free.pages).sum();
        let total_past: u64 = t.iter().map(|t| t.past_hwm.pages).sum();
        assert_eq!((total_free, total_past), (3, 5));
    }

    #[test]
    fn tenths_of_a_small_or_truncated_file() {
        let t = tenths(4, 6, &[false, false, true, true], 4096);
        assert_eq!(t.iter().map(|t| t.free.pages).sum::<u64>(), 2);
        assert_eq!(t.iter().filter(|t| t.first_page == t.end_page).count(), 6);
        assert!(t.iter().all(|t| t.past_hwm.pages == 0));
    }
}
