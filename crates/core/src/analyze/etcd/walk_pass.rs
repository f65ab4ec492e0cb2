//! The `key` bucket pass inside the page map's walk: `analyze` reads each page once for
//! the bbolt figures, the page map and the etcd pass, on two cores (the split walk's two
//! parts are the pass's two parts, [`PassCtx::finish`] joins them). A file the walk finds
//! any problem in, or whose `key` bucket holds anything but revisions and `KeyValue`s,
//! gets no pass here: the cursors' pass then says what is wrong.

use crate::format::element::LeafElement;
use crate::reader::{BucketInfo, Db, Node, Problem, Visitor};

use super::pass::{Part, PartPass, PassCtx};
use super::*;
use crate::etcd::is_key_bucket;

/// Watches one thread's part of the walk for the `key` bucket's entries.
pub(crate) struct KeyWatch<'a, 'c> {
    /// The `key` bucket's index, once announced (the helper's placeholder index when its
    /// part is in the `key` bucket).
    key_bucket: Option<usize>,
    part: PartPass<'a, 'c>,
    entries: u64,
    failed: bool,
}

impl<'a, 'c> KeyWatch<'a, 'c> {
    /// `helper`: watches the helper's part (merged after the main thread's).
    pub(super) fn new(db: &'a Db, ctx: &'c PassCtx<'c>, helper: bool) -> Self {
        KeyWatch {
            key_bucket: None,
            part: PartPass::new(db, ctx, helper),
            entries: 0,
            failed: false,
        }
    }

    /// The part's pass; `None` when it failed (or the walk met a problem).
    fn finish(self) -> Option<(Part<'a>, u64)> {
        (!self.failed).then(|| (self.part.finish(), self.entries))
    }
}

impl<'a> Visitor<'a> for KeyWatch<'a, '_> {
    fn bucket(&mut self, b: &BucketInfo<'a>) {
        if is_key_bucket(b) {
            self.key_bucket = Some(b.index);
        }
    }

    #[inline]
    fn entry(&mut self, bucket: usize, _node: &Node<'a>, e: &LeafElement<'a>) {
        if self.key_bucket != Some(bucket) || self.failed {
            return;
        }
        self.entries += 1;
        if self.part.push(e.key, e.value, e.is_bucket()).is_err() {
            self.failed = true;
        }
    }

    fn problem(&mut self, _p: Problem) {
        self.failed = true;
    }

    fn reads_values(&self) -> bool {
        true
    }
}

/// The pass from the two parts the walk's threads watched; `None` when either failed.
pub(crate) fn walked_pass(
    ctx: &PassCtx<'_>,
    main: KeyWatch<'_, '_>,
    helper: KeyWatch<'_, '_>,
) -> Option<Pass> {
    let (earlier, _) = main.finish()?;
    let (later, n) = helper.finish()?;
    Some(ctx.finish(earlier, (n > 0).then_some(later)))
}
