// Command boltpeer is a test peer for boltpack built against the real Go
// bbolt 1.3.6 (go.etcd.io/bbolt as packaged by Debian,
// golang-github-coreos-bbolt-dev 1.3.6). It prints the logical content,
// statistics and the active meta of a bbolt file in fixed JSON formats, runs
// bbolt's own consistency check, compacts files with bbolt's Compact, and
// generates deterministic fixture files with real bbolt API calls.
//
// Build (GOPATH mode, no module proxy needed):
//
//	GO111MODULE=off GOPATH=$(mktemp -d):/usr/share/gocode \
//	    go build -o boltpeer ./tests/peer/boltpeer
//
// Usage:
//
//	boltpeer dump DB                      logical content, JSON lines
//	boltpeer stats DB                     freelist + per-bucket stats, one JSON object
//	boltpeer check DB                     tx.Check(); "ok" + exit 0, or errors + exit 1
//	boltpeer meta DB                      active meta page, one JSON object
//	boltpeer compact SRC DST [TXMAXSIZE]  bolt.Compact(dst, src, txMaxSize) (default 65536)
//	boltpeer gen SHAPE OUT                write fixture SHAPE to OUT (OUT is replaced)
//	boltpeer compact-nosync SRC DST [TXMAXSIZE]  the same Compact, DST opened with NoSync
//	boltpeer gen-etcd SIZE_MIB OUT [small] large etcd-3.4-schema db (genetcd.go)
//	boltpeer hashkv DB [REV]              etcd 3.4.23's HashKV at REV (default: current), hashkv.go
//
// Everything is printed to stdout. Errors go to stderr with exit status 2.
// bbolt itself may panic (also exit status 2) or loop on corrupt files, so
// callers should run this under `timeout` and `ulimit -v`.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand"
	"os"
	"sort"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "boltpeer: "+format+"\n", args...)
	os.Exit(2)
}

func must(err error) {
	if err != nil {
		die("%v", err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  boltpeer dump DB
  boltpeer stats DB
  boltpeer check DB
  boltpeer meta DB
  boltpeer compact SRC DST [TXMAXSIZE]
  boltpeer gen SHAPE OUT        (shapes: `+shapeList()+`)
  boltpeer compact-nosync SRC DST [TXMAXSIZE]
  boltpeer gen-etcd SIZE_MIB OUT [small]
  boltpeer put DB BUCKET KEY VALUE  (one key in a top-level bucket, in one read-write tx)
  boltpeer hashkv DB [REV]          (etcd 3.4.23's HashKV, as etcd computes it: hashkv.go)`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "dump":
		if len(args) != 1 {
			usage()
		}
		cmdDump(args[0])
	case "stats":
		if len(args) != 1 {
			usage()
		}
		cmdStats(args[0])
	case "check":
		if len(args) != 1 {
			usage()
		}
		os.Exit(cmdCheck(args[0]))
	case "meta":
		if len(args) != 1 {
			usage()
		}
		cmdMeta(args[0])
	case "compact", "compact-nosync":
		if len(args) != 2 && len(args) != 3 {
			usage()
		}
		txMax := int64(65536) // same default as `bbolt compact -tx-max-size`
		if len(args) == 3 {
			v, err := strconv.ParseInt(args[2], 10, 64)
			if err != nil {
				die("bad TXMAXSIZE %q: %v", args[2], err)
			}
			txMax = v
		}
		var dstOpts *bolt.Options
		if os.Args[1] == "compact-nosync" {
			dstOpts = &bolt.Options{NoSync: true}
		}
		cmdCompact(args[0], args[1], txMax, dstOpts)
	case "gen-etcd":
		if len(args) != 2 && !(len(args) == 3 && args[2] == "small") {
			usage()
		}
		cmdGenEtcd(args[0], args[1], len(args) == 3)
	case "gen":
		if len(args) != 2 {
			usage()
		}
		cmdGen(args[0], args[1])
	case "hashkv":
		if len(args) != 1 && len(args) != 2 {
			usage()
		}
		rev := int64(0)
		if len(args) == 2 {
			rev = parseRev(args[1])
		}
		cmdHashKV(args[0], rev)
	case "put":
		if len(args) != 4 {
			usage()
		}
		cmdPut(args[0], args[1], args[2], args[3])
	default:
		usage()
	}
}

func openRO(path string) *bolt.DB {
	// Refuse to let bolt.Open create a missing file.
	if _, err := os.Stat(path); err != nil {
		die("%v", err)
	}
	db, err := bolt.Open(path, 0400, &bolt.Options{ReadOnly: true})
	if err != nil {
		die("open %s: %v", path, err)
	}
	return db
}

// cmdPut sets one key of a top-level bucket (created if missing) in an existing file.
func cmdPut(path, bucket, key, value string) {
	if _, err := os.Stat(path); err != nil {
		die("%v", err)
	}
	db, err := bolt.Open(path, 0600, nil)
	if err != nil {
		die("open %s: %v", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	})
	if err != nil {
		die("put: %v", err)
	}
	if err := db.Close(); err != nil {
		die("close: %v", err)
	}
}

func hexPath(path [][]byte) []string {
	out := make([]string, len(path))
	for i, p := range path {
		out[i] = hex.EncodeToString(p)
	}
	return out
}

func clonePath(path [][]byte, k []byte) [][]byte {
	out := make([][]byte, 0, len(path)+1)
	out = append(out, path...)
	return append(out, append([]byte(nil), k...))
}

// visitor receives buckets and key/value pairs depth-first in key order.
type visitor struct {
	bucket func(path [][]byte, b *bolt.Bucket)
	kv     func(parent [][]byte, k, v []byte)
}

// walkDB visits every top-level bucket (tx.ForEach) and recursively its
// content. A sub-bucket is an entry whose cursor value is nil.
func walkDB(tx *bolt.Tx, vis visitor) error {
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if b == nil {
			// A non-bucket key in the root bucket: invalid for bbolt, but
			// report it rather than crash.
			if vis.kv != nil {
				vis.kv(nil, name, tx.Cursor().Bucket().Get(name))
			}
			return nil
		}
		walkBucket(clonePath(nil, name), b, vis)
		return nil
	})
}

func walkBucket(path [][]byte, b *bolt.Bucket, vis visitor) {
	if vis.bucket != nil {
		vis.bucket(path, b)
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				walkBucket(clonePath(path, k), sub, vis)
				continue
			}
		}
		if vis.kv != nil {
			vis.kv(path, k, v)
		}
	}
}

// ---------------------------------------------------------------- dump

type dumpBucketLine struct {
	Bucket []string `json:"bucket"`
	Seq    uint64   `json:"seq"`
}

type dumpKeyLine struct {
	Bucket []string `json:"bucket"`
	Key    string   `json:"key"`
	Len    int      `json:"len"`
	Sha256 string   `json:"sha256"`
}

func cmdDump(path string) {
	db := openRO(path)
	defer db.Close()
	enc := json.NewEncoder(os.Stdout) // Encode appends "\n"
	err := db.View(func(tx *bolt.Tx) error {
		return walkDB(tx, visitor{
			bucket: func(p [][]byte, b *bolt.Bucket) {
				must(enc.Encode(dumpBucketLine{Bucket: hexPath(p), Seq: b.Sequence()}))
			},
			kv: func(p [][]byte, k, v []byte) {
				sum := sha256.Sum256(v)
				must(enc.Encode(dumpKeyLine{
					Bucket: hexPath(p),
					Key:    hex.EncodeToString(k),
					Len:    len(v),
					Sha256: hex.EncodeToString(sum[:]),
				}))
			},
		})
	})
	must(err)
}

// ---------------------------------------------------------------- stats

type statsBucket struct {
	Bucket []string `json:"bucket"`
	// bolt.BucketStats has no json tags, so its 13 fields are emitted with
	// their Go names in declaration order: BranchPageN, BranchOverflowN,
	// LeafPageN, LeafOverflowN, KeyN, Depth, BranchAlloc, BranchInuse,
	// LeafAlloc, LeafInuse, BucketN, InlineBucketN, InlineBucketInuse.
	//
	// NOTE: Go's Bucket.Stats() aggregates all sub-buckets (recursively) into
	// the parent's figures: page counts, KeyN, alloc/inuse bytes and BucketN
	// include the sub-buckets, and Depth is the bucket's own depth plus the
	// maximum depth of its sub-buckets. KeyN counts leaf elements, so
	// sub-bucket entries are counted as keys too. An inline bucket has no
	// leaf/branch pages of its own; its bytes are in InlineBucketInuse.
	Stats bolt.BucketStats `json:"stats"`
}

type statsOut struct {
	PageSize      int           `json:"page_size"`
	Txid          int           `json:"txid"`
	Hwm           int64         `json:"hwm"`
	FreePageN     int           `json:"free_page_n"`
	PendingPageN  int           `json:"pending_page_n"`
	FreeAlloc     int           `json:"free_alloc"`
	FreelistInuse int           `json:"freelist_inuse"`
	Buckets       []statsBucket `json:"buckets"`
}

func cmdStats(path string) {
	var out statsOut
	out.Buckets = []statsBucket{}

	// Part 1: txid, hwm and bucket stats from a read-only open of the file.
	db := openRO(path)
	out.PageSize = db.Info().PageSize
	err := db.View(func(tx *bolt.Tx) error {
		out.Txid = tx.ID()
		out.Hwm = tx.Size() / int64(out.PageSize)
		return walkDB(tx, visitor{
			bucket: func(p [][]byte, b *bolt.Bucket) {
				out.Buckets = append(out.Buckets, statsBucket{Bucket: hexPath(p), Stats: b.Stats()})
			},
		})
	})
	must(err)
	must(db.Close())

	// Part 2: freelist figures.
	//
	// In bbolt 1.3.6 db.Stats() freelist fields are filled like this:
	//   - FreePageN is set by loadFreelist(), which Open runs only for
	//     read-write opens (read-only opens load it lazily, e.g. in Check);
	//   - PendingPageN, FreeAlloc and FreelistInuse are only ever set when a
	//     *writable* transaction closes (Tx.close).
	// A read-only open therefore reports zeros (or only FreePageN after a
	// Check). So we copy the file to a temporary file, open the COPY
	// read-write with NoFreelistSync set to match the file (meta.freelist ==
	// 0xFFFFFFFFFFFFFFFF <=> NoFreelistSync) so that Open does not commit
	// the "flush freelist when transitioning from no sync to sync"
	// transaction, then Begin(true) + Rollback() a write transaction, which
	// reloads the freelist (from the freelist page, or by scanning reachable
	// pages for the sentinel) and fills all four Stats fields. Nothing is
	// committed, and the original file is never opened for writing.
	//
	// For a freshly reopened file, pending_page_n is always 0 (pending pages
	// only exist in memory; the on-disk freelist stores free ∪ pending), and
	// freelist_inuse is the byte size freelist.write would need
	// (16 + 8*n, +8 if n >= 0xFFFF) even when no freelist page is written.
	m, err := readMeta(path)
	must(err)
	tmp, err := os.CreateTemp("", "boltpeer-stats-*.db")
	must(err)
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath)
	src, err := os.Open(path)
	must(err)
	_, err = io.Copy(tmp, src)
	must(err)
	src.Close()
	must(tmp.Close())

	rw, err := bolt.Open(tmpPath, 0600, &bolt.Options{
		NoFreelistSync: m.Freelist == pgidNoFreelist,
		FreelistType:   bolt.FreelistArrayType,
		NoSync:         true,
	})
	if err != nil {
		os.Remove(tmpPath)
		die("open copy of %s read-write: %v", path, err)
	}
	tx, err := rw.Begin(true)
	must(err)
	must(tx.Rollback())
	st := rw.Stats()
	must(rw.Close())
	out.FreePageN = st.FreePageN
	out.PendingPageN = st.PendingPageN
	out.FreeAlloc = st.FreeAlloc
	out.FreelistInuse = st.FreelistInuse

	b, err := json.Marshal(out)
	must(err)
	os.Stdout.Write(append(b, '\n'))
}

// ---------------------------------------------------------------- check

func cmdCheck(path string) int {
	db := openRO(path)
	defer db.Close()
	n := 0
	err := db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			fmt.Println(e)
			n++
		}
		return nil
	})
	if err != nil {
		die("%v", err)
	}
	if n == 0 {
		fmt.Println("ok")
		return 0
	}
	return 1
}

// ---------------------------------------------------------------- meta

const (
	pgidNoFreelist = uint64(0xFFFFFFFFFFFFFFFF)
	metaMagic      = 0xED0CDAED
	metaVersion    = 2
)

type metaOut struct {
	PageSize uint32 `json:"page_size"`
	Txid     uint64 `json:"txid"`
	Root     uint64 `json:"root"`
	Freelist uint64 `json:"freelist"`
	Hwm      uint64 `json:"hwm"`
}

// parseMeta decodes the meta struct at page offset 16 (reference doc A5) and
// validates it like bb136 meta.validate (checksum 0 is accepted in 1.3.6).
func parseMeta(page []byte) (metaOut, error) {
	var m metaOut
	if len(page) < 80 {
		return m, errors.New("short meta page")
	}
	le := binary.LittleEndian
	magic := le.Uint32(page[16:])
	version := le.Uint32(page[20:])
	m.PageSize = le.Uint32(page[24:])
	m.Root = le.Uint64(page[32:])
	m.Freelist = le.Uint64(page[48:])
	m.Hwm = le.Uint64(page[56:])
	m.Txid = le.Uint64(page[64:])
	sum := le.Uint64(page[72:])
	if magic != metaMagic {
		return m, errors.New("invalid database")
	}
	if version != metaVersion {
		return m, errors.New("version mismatch")
	}
	h := fnv.New64a()
	h.Write(page[16:72])
	if sum != 0 && sum != h.Sum64() {
		return m, errors.New("checksum error")
	}
	return m, nil
}

// readMeta reads both meta pages from the file bytes and picks the active
// one as bbolt 1.3.6 does: page size from meta0 if it validates, otherwise
// the OS page size; the candidate is meta1 if its txid is strictly greater,
// else meta0; fall back to the other if the candidate fails validation.
func readMeta(path string) (metaOut, error) {
	f, err := os.Open(path)
	if err != nil {
		return metaOut{}, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if n, err := f.ReadAt(buf, 0); n != len(buf) {
		return metaOut{}, fmt.Errorf("invalid database (short read: %v)", err)
	}
	m0, err0 := parseMeta(buf)
	pageSize := os.Getpagesize()
	if err0 == nil {
		pageSize = int(m0.PageSize)
	}
	buf1 := make([]byte, 80)
	var m1 metaOut
	var err1 error
	if n, err := f.ReadAt(buf1, int64(pageSize)); n != len(buf1) {
		err1 = fmt.Errorf("cannot read meta1: %v", err)
	} else {
		m1, err1 = parseMeta(buf1)
	}
	a, ea, b, eb := m0, err0, m1, err1
	if m1.Txid > m0.Txid {
		a, ea, b, eb = m1, err1, m0, err0
	}
	if ea == nil {
		return a, nil
	}
	if eb == nil {
		return b, nil
	}
	return metaOut{}, fmt.Errorf("no valid meta page: meta0: %v; meta1: %v", err0, err1)
}

func cmdMeta(path string) {
	m, err := readMeta(path)
	must(err)
	b, err := json.Marshal(m)
	must(err)
	os.Stdout.Write(append(b, '\n'))
}

// ---------------------------------------------------------------- compact

// cmdCompact mirrors `bbolt compact` of bbolt 1.3.6 (cmd/bbolt/main.go):
// bbolt 1.3.6 exports bolt.Compact(dst, src, txMaxSize) (compact.go), which
// the CLI calls after opening src and opening dst with default options
// (nil). Compact itself sets FillPercent = 1.0 on every bucket it writes.
// `compact-nosync` passes &bolt.Options{NoSync: true}: the same Compact,
// without the fsync of each transaction.
func cmdCompact(srcPath, dstPath string, txMaxSize int64, dstOpts *bolt.Options) {
	if fi, err := os.Stat(dstPath); err == nil && fi.Size() != 0 {
		die("%s exists and is not empty", dstPath)
	}
	src := openRO(srcPath)
	defer src.Close()
	dst, err := bolt.Open(dstPath, 0600, dstOpts)
	must(err)
	if err := bolt.Compact(dst, src, txMaxSize); err != nil {
		dst.Close()
		die("compact: %v", err)
	}
	must(dst.Close())
	si, err := os.Stat(srcPath)
	must(err)
	di, err := os.Stat(dstPath)
	must(err)
	fmt.Printf("{\"src_size\":%d,\"dst_size\":%d}\n", si.Size(), di.Size())
}

// ---------------------------------------------------------------- gen

var shapes = map[string]func(out string){
	"empty":          genEmpty,
	"flat":           genFlat,
	"nested":         genNested,
	"bigvalues":      genBigValues,
	"deletes":        func(out string) { genDeletes(out, false) },
	"deletes-nosync": func(out string) { genDeletes(out, true) },
	"ps8192-hashmap": genPS8192,
	"ps16384":        genPS16384,
	"ps65536":        genPS65536,
	"many-free":      genManyFree,
}

func shapeList() string {
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	s := ""
	for i, n := range names {
		if i > 0 {
			s += " "
		}
		s += n
	}
	return s
}

func cmdGen(shape, out string) {
	fn, ok := shapes[shape]
	if !ok {
		die("unknown shape %q (known: %s)", shape, shapeList())
	}
	fn(out)
}

// create removes out and opens a fresh database with opts (nil = defaults).
func create(out string, opts *bolt.Options) *bolt.DB {
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		die("%v", err)
	}
	db, err := bolt.Open(out, 0644, opts)
	must(err)
	return db
}

func update(db *bolt.DB, fn func(tx *bolt.Tx) error) {
	must(db.Update(fn))
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// patterned returns n bytes that compress well in git but are not periodic
// in any power of two: byte(i%251), with the 4-byte big-endian offset
// stamped every 1000 bytes.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	for i := 0; i+4 <= n; i += 1000 {
		binary.BigEndian.PutUint32(b[i:], uint32(i))
	}
	return b
}

func mustBucket(b *bolt.Bucket, err error) *bolt.Bucket {
	must(err)
	return b
}

func nextSeq(b *bolt.Bucket, n int) {
	for i := 0; i < n; i++ {
		_, err := b.NextSequence()
		must(err)
	}
}

// empty: a freshly created database (db.init: metas 0/1, freelist page 2,
// empty root leaf page 3), no transaction committed.
func genEmpty(out string) {
	db := create(out, nil)
	must(db.Close())
}

// flat: one bucket with 2000 small keys inserted in shuffled order over 4
// transactions, giving several leaf pages under one branch page.
func genFlat(out string) {
	r := rand.New(rand.NewSource(1))
	db := create(out, nil)
	defer func() { must(db.Close()) }()
	update(db, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("flat"))
		return err
	})
	perm := r.Perm(2000)
	for t := 0; t < 4; t++ {
		update(db, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("flat"))
			for _, i := range perm[t*500 : (t+1)*500] {
				k := []byte(fmt.Sprintf("flat-key-%05d", i))
				if err := b.Put(k, randBytes(r, 1+r.Intn(24))); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

func putN(r *rand.Rand, b *bolt.Bucket, prefix string, n, minV, maxV int) {
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprintf("%s%05d", prefix, i))
		must(b.Put(k, randBytes(r, minV+r.Intn(maxV-minV+1))))
	}
}

// nested: buckets nested 5 levels deep (a/c/d/e/f), inline and non-inline
// sub-buckets, empty buckets, a binary bucket name, and sequences set with
// SetSequence and NextSequence (incl. 1<<40 and MaxUint64). Later
// transactions grow one inline bucket into a paged one and shrink a paged
// bucket so that bbolt turns it back into an inline bucket.
func genNested(out string) {
	r := rand.New(rand.NewSource(2))
	db := create(out, nil)
	defer func() { must(db.Close()) }()
	update(db, func(tx *bolt.Tx) error {
		a := mustBucket(tx.CreateBucket([]byte("a")))
		must(a.SetSequence(1 << 40))
		putN(r, a, "a-", 300, 10, 60)

		b := mustBucket(a.CreateBucket([]byte("b"))) // inline
		putN(r, b, "b-", 3, 1, 20)
		nextSeq(b, 3)

		c := mustBucket(a.CreateBucket([]byte("c"))) // paged
		putN(r, c, "c-", 500, 5, 50)
		must(c.SetSequence(42))

		d := mustBucket(c.CreateBucket([]byte("d"))) // paged
		putN(r, d, "d-", 200, 5, 80)
		nextSeq(d, 1)

		// e holds a sub-bucket, so it can never be inline although tiny.
		e := mustBucket(d.CreateBucket([]byte("e")))
		putN(r, e, "e-", 2, 1, 10)
		must(e.SetSequence(7))

		f := mustBucket(e.CreateBucket([]byte("f"))) // level 5, inline
		putN(r, f, "f-", 2, 1, 10)
		must(f.SetSequence(math.MaxUint64))

		mustBucket(d.CreateBucket([]byte("empty-d")))
		mustBucket(c.CreateBucket([]byte("empty-c")))
		mustBucket(tx.CreateBucket([]byte("empty-top")))

		bin := mustBucket(tx.CreateBucket([]byte{0x00, 0xff, 0x10, 0x80}))
		must(bin.Put([]byte{0xff}, []byte{}))
		must(bin.Put([]byte{0x00, 0x00}, []byte{0x01}))
		must(bin.SetSequence(0xdeadbeef))

		z := mustBucket(tx.CreateBucket([]byte("z")))
		putN(r, z, "z-key-", 100, 1, 30)
		for i := 0; i < 30; i++ {
			s := mustBucket(z.CreateBucket([]byte(fmt.Sprintf("z-sub-%02d", i))))
			putN(r, s, "k", i%6, 0, 40)
			if i%4 == 1 {
				nextSeq(s, i)
			}
		}

		shrink := mustBucket(tx.CreateBucket([]byte("shrink")))
		putN(r, shrink, "s-", 200, 20, 60)
		return nil
	})
	update(db, func(tx *bolt.Tx) error {
		// Grow an inline bucket into a paged one.
		s := tx.Bucket([]byte("z")).Bucket([]byte("z-sub-00"))
		putN(r, s, "grown-", 100, 20, 60)
		must(s.SetSequence(1000))
		// Touch the inline bucket a/b.
		b := tx.Bucket([]byte("a")).Bucket([]byte("b"))
		must(b.Put([]byte("b-extra"), []byte("x")))
		nextSeq(b, 2)
		return nil
	})
	update(db, func(tx *bolt.Tx) error {
		// Shrink a paged bucket to 2 keys: bbolt re-inlines it on spill.
		s := tx.Bucket([]byte("shrink"))
		for i := 2; i < 200; i++ {
			must(s.Delete([]byte(fmt.Sprintf("s-%05d", i))))
		}
		return nil
	})
}

// bigvalues: values of 0 and 1 bytes, around one page, 3 pages and 3 MiB
// (overflow pages), keys of 1 byte up to MaxKeySize (32768), and a bucket
// of 5000-byte keys whose branch page overflows.
func genBigValues(out string) {
	r := rand.New(rand.NewSource(3))
	db := create(out, nil)
	defer func() { must(db.Close()) }()
	update(db, func(tx *bolt.Tx) error {
		v := mustBucket(tx.CreateBucket([]byte("values")))
		must(v.Put([]byte("v0-empty"), []byte{}))
		must(v.Put([]byte("v1-one"), []byte{0x5a}))
		must(v.Put([]byte("v2-page-4000"), randBytes(r, 4000)))
		must(v.Put([]byte("v2-page-4064"), randBytes(r, 4064)))
		must(v.Put([]byte("v2-page-4096"), randBytes(r, 4096)))
		must(v.Put([]byte("v2-page-4097"), randBytes(r, 4097)))
		must(v.Put([]byte("v3-3pages-12288"), randBytes(r, 3*4096)))
		must(v.Put([]byte("v4-3mib"), patterned(3<<20)))
		putN(r, v, "small-", 20, 0, 30)
		return nil
	})
	update(db, func(tx *bolt.Tx) error {
		k := mustBucket(tx.CreateBucket([]byte("keys")))
		for _, n := range []int{1, 2, 255, 256, 1000, 4096, 10000, bolt.MaxKeySize} {
			key := randBytes(r, n)
			must(k.Put(key, []byte(fmt.Sprintf("keylen=%d", n))))
		}
		// MaxKeySize key with an empty value, distinct first byte.
		key := bytes.Repeat([]byte{0xfe}, bolt.MaxKeySize)
		must(k.Put(key, nil))
		// One byte too long is rejected by bbolt.
		if err := k.Put(make([]byte, bolt.MaxKeySize+1), nil); err != bolt.ErrKeyTooLarge {
			die("expected ErrKeyTooLarge, got %v", err)
		}
		bk := mustBucket(tx.CreateBucket([]byte("bigkeys")))
		for i := 0; i < 8; i++ {
			key := append([]byte{byte('A' + i)}, patterned(5000)...)
			must(bk.Put(key, randBytes(r, 10+r.Intn(100))))
		}
		return nil
	})
}

// deletes / deletes-nosync: 5 buckets filled in 16 transactions (so their
// pages interleave), plus a sub-bucket, then heavy deletes: every other key
// of three buckets, a whole bucket dropped, the first half of another;
// then a refill and random deletes so that free pages are scattered.
// With nosync the file is written with Options.NoFreelistSync (meta freelist
// = 0xFFFFFFFFFFFFFFFF, no freelist page), as etcd does on Linux.
func genDeletes(out string, nosync bool) {
	r := rand.New(rand.NewSource(4))
	db := create(out, &bolt.Options{NoFreelistSync: nosync, FreelistType: bolt.FreelistArrayType})
	defer func() { must(db.Close()) }()
	names := []string{"b0", "b1", "b2", "b3", "b4"}
	update(db, func(tx *bolt.Tx) error {
		for _, n := range names {
			mustBucket(tx.CreateBucket([]byte(n)))
		}
		mustBucket(tx.Bucket([]byte("b1")).CreateBucket([]byte("sub")))
		return nil
	})
	for t := 0; t < 16; t++ {
		update(db, func(tx *bolt.Tx) error {
			for _, n := range names {
				b := tx.Bucket([]byte(n))
				for i := 0; i < 20; i++ {
					k := []byte(fmt.Sprintf("k%08x", r.Uint32()))
					must(b.Put(k, randBytes(r, 20+r.Intn(101))))
				}
			}
			sub := tx.Bucket([]byte("b1")).Bucket([]byte("sub"))
			for i := 0; i < 10; i++ {
				must(sub.Put([]byte(fmt.Sprintf("s%04d-%02d", t, i)), randBytes(r, 30)))
			}
			return nil
		})
	}
	// Delete every other key in b0, b1, b3.
	for _, n := range []string{"b0", "b1", "b3"} {
		update(db, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(n))
			var keys [][]byte
			i := 0
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v != nil && i%2 == 1 {
					keys = append(keys, append([]byte(nil), k...))
				}
				i++
			}
			for _, k := range keys {
				must(b.Delete(k))
			}
			return nil
		})
	}
	// Drop a whole bucket.
	update(db, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("b2")) })
	// Delete the first half of b4.
	update(db, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b4"))
		st := b.Stats()
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < st.KeyN/2; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			must(b.Delete(k))
		}
		return nil
	})
	// Refill most of the freed space, then delete random keys across all
	// live buckets in a few transactions: the old copies of the touched
	// leaves (all over the file) become free, so free pages end up scattered.
	for t := 0; t < 5; t++ {
		update(db, func(tx *bolt.Tx) error {
			for _, n := range []string{"b3", "b4"} {
				b := tx.Bucket([]byte(n))
				for i := 0; i < 30; i++ {
					must(b.Put([]byte(fmt.Sprintf("r%d-%08x", t, r.Uint32())), randBytes(r, 20+r.Intn(101))))
				}
			}
			return nil
		})
	}
	for t := 0; t < 3; t++ {
		update(db, func(tx *bolt.Tx) error {
			for _, n := range []string{"b0", "b1", "b3", "b4"} {
				b := tx.Bucket([]byte(n))
				var keys [][]byte
				c := b.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if v != nil {
						keys = append(keys, append([]byte(nil), k...))
					}
				}
				for i := 0; i < 4; i++ {
					must(b.Delete(keys[r.Intn(len(keys))]))
				}
			}
			return nil
		})
	}
}

// mixed content for the page-size fixtures.
func genMixed(out string, seed int64, opts *bolt.Options, nkeys, bigval int, deletes bool) {
	r := rand.New(rand.NewSource(seed))
	db := create(out, opts)
	defer func() { must(db.Close()) }()
	update(db, func(tx *bolt.Tx) error {
		m := mustBucket(tx.CreateBucket([]byte("main")))
		for i := 0; i < nkeys; i++ {
			k := []byte(fmt.Sprintf("main-%06d", r.Intn(10*nkeys)))
			must(m.Put(k, randBytes(r, 10+r.Intn(291))))
		}
		must(m.SetSequence(uint64(nkeys)))
		n := mustBucket(tx.CreateBucket([]byte("nest")))
		in := mustBucket(n.CreateBucket([]byte("inline")))
		putN(r, in, "i-", 3, 1, 16)
		nextSeq(in, 5)
		big := mustBucket(n.CreateBucket([]byte("paged")))
		putN(r, big, "p-", nkeys/3, 10, 120)
		mustBucket(n.CreateBucket([]byte("empty")))
		tmp := mustBucket(tx.CreateBucket([]byte("tmp")))
		putN(r, tmp, "t-", nkeys/4, 10, 200)
		return nil
	})
	update(db, func(tx *bolt.Tx) error {
		m := tx.Bucket([]byte("main"))
		must(m.Put([]byte("zz-big"), randBytes(r, bigval)))
		must(m.Put([]byte("zz-empty"), nil))
		return nil
	})
	if !deletes {
		return
	}
	update(db, func(tx *bolt.Tx) error {
		m := tx.Bucket([]byte("main"))
		var keys [][]byte
		i := 0
		c := m.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i%3 == 0 {
				keys = append(keys, append([]byte(nil), k...))
			}
			i++
		}
		for _, k := range keys {
			must(m.Delete(k))
		}
		p := tx.Bucket([]byte("nest")).Bucket([]byte("paged"))
		for i := 0; i < nkeys/6; i++ {
			must(p.Delete([]byte(fmt.Sprintf("p-%05d", i))))
		}
		return nil
	})
	update(db, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("tmp")) })
}

func genPS8192(out string) {
	genMixed(out, 5, &bolt.Options{PageSize: 8192, FreelistType: bolt.FreelistMapType}, 400, 20000, true)
}

func genPS16384(out string) {
	genMixed(out, 6, &bolt.Options{PageSize: 16384, FreelistType: bolt.FreelistArrayType}, 300, 40000, false)
}

func genPS65536(out string) {
	genMixed(out, 7, &bolt.Options{PageSize: 65536, FreelistType: bolt.FreelistArrayType}, 150, 70000, false)
}

// many-free (large, ~280 MiB, not committed): 260 values of 1 MiB (257
// pages each) written in 26 transactions, then the bucket holding them is
// dropped, so the freelist lists > 65535 page ids and its page header count
// uses the 0xFFFF escape (real count in the first u64).
func genManyFree(out string) {
	db := create(out, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistArrayType})
	defer func() { must(db.Close()) }()
	r := rand.New(rand.NewSource(8))
	update(db, func(tx *bolt.Tx) error {
		k := mustBucket(tx.CreateBucket([]byte("keep")))
		putN(r, k, "keep-", 100, 10, 100)
		mustBucket(tx.CreateBucket([]byte("fill")))
		return nil
	})
	val := patterned(1 << 20)
	for t := 0; t < 26; t++ {
		update(db, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("fill"))
			for i := 0; i < 10; i++ {
				must(b.Put([]byte(fmt.Sprintf("fill-%03d-%02d", t, i)), val))
			}
			return nil
		})
	}
	update(db, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("fill")) })
	update(db, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("keep")).Put([]byte("after"), []byte("drop"))
	})
}
