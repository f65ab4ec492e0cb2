//! The bounds every traversal of a (possibly hostile) file keeps: tree depth, bucket
//! nesting, and a budget of work. They live apart so that the cursor and the walk both
//! depend on them rather than on each other.

use super::db::Db;

/// A B+tree deeper than this is corrupt: at two keys a page it would hold 2^64 keys.
pub const MAX_TREE_DEPTH: usize = 64;
/// Deeper bucket nesting than this is reported, not followed (keeps recursion bounded).
pub const MAX_BUCKET_DEPTH: usize = 128;
/// Bound on tree levels across all nested buckets together (recursion depth of the walk).
pub const MAX_WALK_LEVELS: usize = 512;

/// A bound on the work of one traversal: bytes of elements (16 each), keys and values met.
///
/// In a file bbolt wrote, every element, key and value has bytes of its own, except that an
/// inline bucket's page image is also the value that holds it (and bbolt never nests inline
/// buckets): a traversal meets at most twice the file's bytes. More means that pages or
/// values are shared — a DAG of branch pages, a cycle through nested buckets, elements
/// overlapping one value — which would otherwise let a small file take exponential time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    left: u64,
}

impl Budget {
    pub fn for_db(db: &Db) -> Budget {
        Budget {
            left: db.file_size().saturating_mul(2).saturating_add(4096),
        }
    }

    /// Spend the cost of an element with `key_and_value` bytes; false once it is used up.
    pub fn spend(&mut self, key_and_value: usize) -> bool {
        let cost = (key_and_value as u64).saturating_add(16);
        match self.left.checked_sub(cost) {
            Some(left) => {
                self.left = left;
                true
            }
            None => {
                self.left = 0;
                false
            }
        }
    }

    /// What is left to spend.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// The message for a traversal that ran out of budget.
    pub fn exhausted() -> &'static str {
        "more elements, keys and values than twice the file holds: pages or values are \
         shared (a DAG of branch pages, a cycle through nested buckets, or overlapping \
         elements)"
    }
}
