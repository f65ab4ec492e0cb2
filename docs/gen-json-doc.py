# docs/gen-json-doc.py (run from the repository, after `cargo build --release`)
# Generates docs/json.md: every field path each command's `-w json` emits on the fixtures,
# with the doc comment of the Rust field of that name (crates/ and src/).
import json, subprocess, re, glob, sys
B = "./target/release/boltpack"
docs = {}
for f in glob.glob("crates/**/*.rs", recursive=True) + glob.glob("src/**/*.rs", recursive=True):
    lines = open(f).read().split("\n")
    buf = []
    for l in lines:
        t = l.strip()
        if t.startswith("///"):
            buf.append(t[3:].strip()); continue
        if t.startswith("#["):
            m = re.search(r'rename = "([^"]+)"', t)
            if m: buf.append("\0" + m.group(1))
            continue
        m = re.match(r'(?:pub(?:\([a-z]+\))? )?([a-z_][a-z0-9_]*): ', t)
        if m and buf:
            names = [b[1:] for b in buf if b.startswith("\0")] or [m.group(1)]
            text = " ".join(b for b in buf if not b.startswith("\0"))
            for n in names:
                if text and n not in docs: docs[n] = text
        buf = []
# Descriptions for fields whose doc comment is missing or is another field's of the same name.
extra = {
    'BranchPageN': 'Go `Bucket.Stats()`: branch pages.',
    'BranchOverflowN': 'Go `Bucket.Stats()`: overflow pages of branch pages.',
    'LeafPageN': 'Go `Bucket.Stats()`: leaf pages.',
    'LeafOverflowN': 'Go `Bucket.Stats()`: overflow pages of leaf pages.',
    'KeyN': 'Go `Bucket.Stats()`: keys (entries).',
    'Depth': 'Go `Bucket.Stats()`: levels of the tree.',
    'BranchAlloc': 'Go `Bucket.Stats()`: bytes allocated to branch pages.',
    'BranchInuse': 'Go `Bucket.Stats()`: bytes used in branch pages.',
    'LeafAlloc': 'Go `Bucket.Stats()`: bytes allocated to leaf pages.',
    'LeafInuse': 'Go `Bucket.Stats()`: bytes used in leaf pages.',
    'BucketN': 'Go `Bucket.Stats()`: buckets, this one included.',
    'InlineBucketN': 'Go `Bucket.Stats()`: inline buckets.',
    'InlineBucketInuse': 'Go `Bucket.Stats()`: bytes used by inline buckets.',
    'branch': 'Pages of this type.',
    'leaf': 'Pages of this type.',
    'meta': 'Pages of this type.',
    'capacity': 'Capacity planning: what compaction at each candidate revision leaves.',
    'checksum': "The meta's stored FNV-1a checksum.",
    'checksum_valid': "Whether the checksum matches the meta's bytes.",
    'create_revision': "The key's create revision (mvccpb.KeyValue).",
    'mod_revision': 'The revision of this value (mvccpb.KeyValue).',
    'defrag_estimate': 'The size of a defragmented copy.',
    'distinct_keys_at_or_below': 'User keys with a revision at or below the compaction revision.',
    'dst_pages': 'Pages of the copy.',
    'elapsed_seconds': 'Wall time of the command.',
    'src_pages': 'Pages in use in the source (high-water mark).',
    'src_file_size_bytes': "The source file's size.",
    'end_page': 'First page after the range.',
    'first_page': 'First page of the range.',
    'entry_bytes': 'Bytes of all key-bucket entries (keys and values).',
    'file': 'The bbolt file figures.',
    'file_size_bytes': 'Size of the file.',
    'first': 'First main revision of the band.',
    'last': 'Last main revision of the band.',
    'free_runs': 'Runs of consecutive free pages.',
    'header': "etcdctl's response header: the current revision (the db holds no cluster id, member id or raft term).",
    'inline': "The bucket is stored inline in its parent's leaf.",
    'items': 'Elements on the page.',
    'keys': 'Distinct user keys.',
    'kvs': 'The key-values, in key order (base64 keys and values, as etcdctl).',
    'value': 'The value, base64.',
    'last_key_revision': 'Main revision of the last key-bucket entry.',
    'leases': 'Entries in the lease bucket.',
    'live_keys_new': 'Live keys in NEW.',
    'live_keys_old': 'Live keys in OLD.',
    'value_bytes_new': "Sum of NEW's live values' lengths.",
    'max': 'Largest.',
    'mean': 'Mean.',
    'p50': 'Median (nearest rank).',
    'p90': '90th percentile (nearest rank).',
    'p99': '99th percentile (nearest rank).',
    'max_len_pages': 'Longest run in the bin, pages.',
    'min_len_pages': 'Shortest run in the bin, pages.',
    'members_removed': 'Entries in members_removed.',
    'metas': 'Both meta pages (0 and 1).',
    'mvcc': 'The MVCC compaction applied (etcd files).',
    'new_path': 'NEW as given.',
    'old_path': 'OLD as given.',
    'note': 'Why, in words.',
    'prefixes': 'Keys grouped by key prefix (Kubernetes-aware).',
    'previously_compacted': 'The compacted revision before this copy.',
    'quota_reached_after_compaction_at_revision': 'The same after compacting at the current revision and defragmenting.',
    'remaining_bytes': 'Entry bytes left after compaction at this revision.',
    'remaining_entries': 'Entries left after compaction at this revision.',
    'removed_bytes': 'Entry bytes a compaction at this revision removes.',
    'removed_entries': 'Entries a compaction at this revision removes.',
    'revision_histogram': 'Entries by main revision band.',
    'revisions_per_key': 'Distribution of revisions per key.',
    'schema_version': 'Bumped when a field is removed or changes meaning (not when one is added).',
    'summary': 'The answer first (see the text summary).',
    'state': '`absent`, `valid` or `invalid`.',
    'top_growth': 'The keys whose live value grew most.',
    'top_keys_by_bytes': 'The keys holding the most bytes (all revisions).',
    'top_keys_by_revisions': 'The keys with the most revisions.',
    'totalKey': "etcdctl's totalKey (every k/v of every bucket in 3.4/3.5).",
    'totalSize': "etcdctl's totalSize: high-water mark x page size.",
    'txid': "The meta's transaction id.",
    'valid': 'Whether the meta page validates.',
    'verified': 'The copy was re-read, checked and its digest matched.',
    'damaged': 'The parts of the tree that could not be read.',
    'more': 'More keys than --limit: `count` has them all.',
    'page_size_bytes': 'Page size in bytes (of the source, or of the copy in a compact summary).',
    'page': 'A page id.',
    'path': "The file as the user named it.",
    'to': "Where the range ends: a key (exclusive) or a main revision (inclusive); absent: the bucket's end.",
}
docs.update(extra)
# Where one name means different things in different documents.
by_path = {
    ("pages", "pages"): "Every page below the high-water mark, in id order.",
    ("check", "problems"): "Every problem found, in walk order (empty when `ok`).",
    ("info", "pages"): "Page counts by what the page is.",
    ("salvage (root bucket page lost)", "rebuilt_root.offset"): "Byte offset of that page.",
    ("salvage (root bucket page lost)", "rebuilt_root.page"): "The page used as the root bucket's: an earlier copy, so later transactions' changes may be missing.",
}
def paths(v, pre, out):
    if isinstance(v, dict):
        for k, x in v.items():
            p = f"{pre}.{k}" if pre else k
            out.setdefault(p, x); paths(x, p, out)
    elif isinstance(v, list):
        for x in v: paths(x, pre + "[]", out)
# `check` of a copy of flat.db with one wrong page header id, so it has a problem to print.
_b = bytearray(open("testdata/bbolt/flat.db", "rb").read()); _b[59 * 4096] ^= 0x40
open("/tmp/boltpack-json-doc-damaged.db", "wb").write(_b)
# `salvage` of a copy of the etcd fixture with its root bucket page (14) zeroed, so the
# report has a `rebuilt_root`.
_e = bytearray(open("testdata/etcd/db", "rb").read()); _e[14 * 4096:15 * 4096] = bytes(4096)
open("/tmp/boltpack-json-doc-noroot.db", "wb").write(_e)
CMDS = [
    ("info", ["info", "testdata/etcd/db"]),
    ("check", ["check", "/tmp/boltpack-json-doc-damaged.db"]),
    ("pages", ["pages", "testdata/etcd/db"]),
    ("hashkv", ["hashkv", "testdata/etcd/db"]),
    ("snapshot status", ["snapshot", "status", "testdata/etcd/snapshot.db"]),
    ("analyze", ["analyze", "testdata/etcd/db"]),
    ("compact", ["compact", "testdata/etcd/db", "--dry-run", "--revision", "200"]),
    ("get", ["get", "testdata/etcd/db", "/registry/", "--prefix", "--limit", "2"]),
    ("diff", ["diff", "testdata/etcd/db", "testdata/etcd/snapshot.db"]),
    ("salvage", ["salvage", "testdata/etcd/db", "-o", "/tmp/boltpack-json-doc.db", "--force"]),
    ("salvage (root bucket page lost)", ["salvage", "/tmp/boltpack-json-doc-noroot.db", "-o", "/tmp/boltpack-json-doc.db", "--force"]),
]
out = ["# JSON output, field by field", "",
       "Every command that prints JSON takes `-w json` (or `--json`). Below, each field each",
       "document can hold, as a path (`a.b`, `[]` for each element of a list), with what it",
       "means. `tests/json_docs.rs` fails when a command emits a field this page does not",
       "list. Sizes are bytes; revisions are etcd main revisions.", "",
       "Every document that is an object starts with `schema_version` and the file's `path`",
       "(`diff`: `old_path` and `new_path`; `salvage`: `src` and `dst`); `check` and `pages`",
       "print a list.", "",
       "Names: snake_case (etcdctl's own `totalKey`/`totalSize` and Go's `Bucket.Stats()`",
       "names are kept where the document mirrors them); a quantity with a unit says it:",
       "`_bytes`, `_pages` (page counts), `_pct` (0-100), `_fraction` (0-1), `_seconds`.",
       "Counts (`keys`, `entries`, `revisions`) and revisions have no suffix. Hex is",
       "lowercase; a field that is always hex (checksums, `*_sha256`, `path_hex`) has no",
       "`0x`, one that holds text or bytes (keys, bucket names) marks bytes with `0x`.", ""]
for name, args in CMDS:
    o = subprocess.run([B] + args + ["-w", "json"], capture_output=True).stdout
    ps = {}
    paths(json.loads(o), "", ps)
    out.append(f"## `{name}`"); out.append("")
    out.append("| field | meaning |"); out.append("|---|---|")
    for p in sorted(ps):
        leaf = p.split(".")[-1].replace("[]", "")
        d = by_path.get((name, p)) or docs.get(leaf, "")
        out.append(f"| `{p}` | {d.replace('|', '/')} |")
    out.append("")
open("docs/json.md", "w").write("\n".join(out) + "\n")
missing = [l for l in out if l.endswith("|  |")]
print(len(out), "lines;", len(missing), "without a description")
for m in missing[:80]: print(m)
