//! A branch or leaf node in the file, or an inline bucket's page image, with errors that
//! carry the file offset.

use crate::error::{Error, Result};
use crate::format::element::{BranchElement, LeafElement, NodeView};
use crate::format::{FormatError, PageId};

use super::db::Db;

#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The page holding this node (for an inline bucket: the page holding the value).
    pub page: PageId,
    /// File offset of the node's first byte.
    pub base: u64,
    pub inline: bool,
    pub view: NodeView<'a>,
}

impl<'a> Node<'a> {
    /// `data` must be borrowed from `db`.
    pub fn new(db: &Db, data: &'a [u8], inline: bool) -> Result<Node<'a>> {
        let base = db.offset_of(data);
        let page = db.page_at(base);
        let view = NodeView::new(data).map_err(|e| located(page, base, inline, e))?;
        Ok(Node {
            page,
            base,
            inline,
            view,
        })
    }

    pub fn is_leaf(&self) -> bool {
        self.view.is_leaf()
    }

    pub fn count(&self) -> usize {
        self.view.count()
    }

    pub fn err(&self, e: FormatError) -> Error {
        located(self.page, self.base, self.inline, e)
    }

    pub fn leaf(&self, i: usize) -> Result<LeafElement<'a>> {
        self.view.leaf(i).map_err(|e| self.err(e))
    }

    pub fn branch(&self, i: usize) -> Result<BranchElement<'a>> {
        self.view.branch(i).map_err(|e| self.err(e))
    }

    /// File offset of element `i`.
    pub fn element_offset(&self, i: usize) -> u64 {
        self.base + NodeView::element_offset(i) as u64
    }
}

fn located(page: PageId, base: u64, inline: bool, e: FormatError) -> Error {
    let what = if inline {
        format!("inline bucket: {}", e.what)
    } else {
        e.what.into_owned()
    };
    Error::corrupt(e.kind, page, base + e.offset as u64, what)
}

impl Db {
    /// Page `id` as a branch or leaf node. (Here, not in `db.rs`: a node is read from a
    /// db, and the db knows nothing of nodes.)
    pub fn node(&self, id: PageId) -> Result<Node<'_>> {
        let page = self.page(id)?;
        Node::new(self, page.data, false)
    }
}
