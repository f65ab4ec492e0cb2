package main

// gen-etcd: a large etcd-3.4-schema db written with the real Go bbolt, for
// benchmarks (benches/compare.sh) and the tests/large_peers.rs trial.
//
//	boltpeer gen-etcd SIZE_MIB OUT [small]
//
// The file is written the way etcd 3.4 writes it on Linux:
//   - Options.NoFreelistSync (meta freelist = 0xFFFF…FFFF), array freelist;
//   - the key bucket is written with FillPercent 0.9 (etcd's UnsafeSeqPut),
//     revision keys strictly increasing, in batched transactions of ~10000
//     puts (etcd's backend batch limit), each also rewriting
//     meta/consistent_index (8-byte BE) as etcd's saveIndex does;
//   - buckets alarm, auth (authEnabled, authRevision), authRoles, authUsers,
//     cluster (clusterVersion), key, lease (leasepb.Lease), members,
//     members_removed, meta.
//
// Content: Kubernetes-like keys /registry/<resource>/<namespace>/<name> over
// 16 resources; ~20 revisions per key on average, skewed (leases, events,
// pods churn much more); values 0.5–10 KiB (log-uniform) with ~1 MiB ones
// every 4000th put of configmaps/secrets; ~5% tombstones, after which a key
// is re-created as a new generation (version 1, create_revision = its own
// revision); ~8% of etcd txns carry 2–4 ops (sub-revisions 0..n-1).
// Values are hand-encoded mvccpb.KeyValue; some keys carry a lease.
// With `small`, every value is 40 B - 2 KiB (log-uniform) and none is big: the
// sizes of a busy Kubernetes cluster's revisions (issue 11's scale row).
//
// Four times, an online MVCC compaction is replayed as etcd 3.4.23 does it
// (meta/scheduledCompactRev, deletes of the revisions outside keep(R) in
// batches of 1000 per transaction, finishedCompactRev with the last batch):
// at R = 30% of the then current revision when the file reaches 1/4, 1/2
// and 3/4 of SIZE_MIB (later writes reuse the freed pages), and at the end,
// so free pages are scattered over the file. Writing stops once the high-water
// mark reaches SIZE_MIB.
//
// Deterministic: fixed seed, no map iteration here; the same SIZE_MIB gives
// the same logical content (byte-identical `dump`). The page layout can
// differ by a few pages between runs: in the deleting transactions bbolt
// 1.3.6 rebalances the underfilled nodes in Go map order (Bucket.rebalance
// ranges over b.nodes), so merges, and the pages freed, vary. boltpack's
// compact output depends only on the content, so it is identical.

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

type etcdResource struct {
	name       string
	namespaced bool
	popWeight  int // share of new keys
	churn      int // share of updates
	deletable  bool
	minV, maxV int // value size range (log-uniform)
	big        bool
	leased     bool
}

var etcdResources = []etcdResource{
	{"configmaps", true, 8, 2, true, 512, 10240, true, false},
	{"deployments", true, 5, 2, true, 1024, 8192, false, false},
	{"endpointslices", true, 5, 6, true, 512, 4096, false, false},
	{"events", true, 25, 12, true, 500, 1500, false, true},
	{"jobs", true, 3, 1, true, 1024, 6144, false, false},
	{"leases", true, 2, 30, false, 400, 600, false, false},
	{"minions", false, 2, 6, false, 4096, 10240, false, false},
	{"namespaces", false, 1, 1, false, 512, 1024, false, false},
	{"persistentvolumeclaims", true, 3, 1, true, 512, 2048, false, false},
	{"pods", true, 15, 10, true, 2048, 10240, false, false},
	{"replicasets", true, 8, 2, true, 1024, 8192, false, false},
	{"rolebindings", true, 3, 1, true, 512, 2048, false, false},
	{"roles", true, 3, 1, true, 512, 4096, false, false},
	{"secrets", true, 8, 2, true, 512, 10240, true, false},
	{"serviceaccounts", true, 5, 1, true, 512, 1024, false, false},
	{"services/specs", true, 5, 1, true, 512, 4096, false, false},
}

var etcdNamespaces = []string{"default", "kube-system", "kube-public", "monitoring",
	"ingress-nginx", "cert-manager", "team-a", "team-b", "team-c", "payments",
	"search", "batch", "ci", "logging", "staging", "prod"}

// etcdLeases are the leases of the lease bucket (IDs as etcd prints them).
var etcdLeases = []int64{0x694d7f2c3a1b0011, 0x694d7f2c3a1b0023, 0x694d7f2c3a1b0037, 0x694d7f2c3a1b0042}

const etcdLeaseTTL = 1000000 // long enough that no lease expires during a test or a bench

type genRev struct {
	main int64
	sub  int64
	tomb bool
}

type genKey struct {
	name    []byte
	res     int
	live    bool
	create  int64
	version int64
	lease   int64
	revs    []genRev // revisions still in the key bucket, oldest first
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// encodeKV is gogo's KeyValue.Marshal: fields in number order, zero fields omitted.
func encodeKV(buf []byte, key []byte, create, mod, ver int64, val []byte, lease int64) []byte {
	b := buf[:0]
	b = append(b, 0x0a)
	b = appendVarint(b, uint64(len(key)))
	b = append(b, key...)
	if create != 0 {
		b = append(b, 0x10)
		b = appendVarint(b, uint64(create))
	}
	if mod != 0 {
		b = append(b, 0x18)
		b = appendVarint(b, uint64(mod))
	}
	if ver != 0 {
		b = append(b, 0x20)
		b = appendVarint(b, uint64(ver))
	}
	if len(val) > 0 {
		b = append(b, 0x2a)
		b = appendVarint(b, uint64(len(val)))
		b = append(b, val...)
	}
	if lease != 0 {
		b = append(b, 0x30)
		b = appendVarint(b, uint64(lease))
	}
	return b
}

func revKey(main, sub int64, tomb bool) []byte {
	n := 17
	if tomb {
		n = 18
	}
	k := make([]byte, n)
	binary.BigEndian.PutUint64(k, uint64(main))
	k[8] = '_'
	binary.BigEndian.PutUint64(k[9:], uint64(sub))
	if tomb {
		k[17] = 't'
	}
	return k
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

type etcdGen struct {
	r        *rand.Rand
	db       *bolt.DB
	keys     []*genKey
	byRes    [][]int // indexes into keys, per resource
	rev      int64   // current revision (last main written)
	cindex   uint64  // consistent_index
	puts     int     // puts so far (for the big-value cadence)
	small    bool    // values 40 B - 2 KiB only
	pool     []byte  // random bytes values are cut from
	popTotal int
}

// Value sizes of the `small` profile.
const smallMinV, smallMaxV = 40, 2048

func cmdGenEtcd(sizeArg, out string, small bool) {
	sizeMiB, err := strconv.ParseInt(sizeArg, 10, 64)
	if err != nil || sizeMiB < 1 {
		die("bad SIZE_MIB %q", sizeArg)
	}
	target := sizeMiB << 20
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		die("%v", err)
	}
	// NoSync only makes generation faster; it does not change the file's bytes.
	db, err := bolt.Open(out, 0600, &bolt.Options{
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistArrayType,
		NoSync:         true,
	})
	must(err)
	g := &etcdGen{r: rand.New(rand.NewSource(20240606)), db: db, rev: 1, byRes: make([][]int, len(etcdResources)), small: small}
	g.pool = make([]byte, 2<<20)
	g.r.Read(g.pool)
	for _, res := range etcdResources {
		g.popTotal += res.popWeight
	}
	g.initBuckets()

	done := int64(0) // online compactions so far, one per quarter of SIZE_MIB
	// ~3.5 KiB per put: batches of 10000 puts, or fewer for small files so
	// that the high-water mark stops near SIZE_MIB.
	perBatch := int(target / 3500 / 20)
	if perBatch > 10000 {
		perBatch = 10000
	}
	if perBatch < 50 {
		perBatch = 50
	}
	for {
		g.batch(perBatch)
		size := g.hwmBytes()
		if done < 3 && size >= target*(done+1)/4 {
			done++
			g.compact(g.rev * 3 / 10)
		}
		if size >= target {
			break
		}
	}
	g.compact(g.rev * 3 / 10)
	must(db.Close())
	nrevs := 0
	for _, k := range g.keys {
		nrevs += len(k.revs)
	}
	fi, err := os.Stat(out)
	must(err)
	fmt.Printf("{\"file_size\":%d,\"keys\":%d,\"revision\":%d,\"compact_revision\":%d,\"key_bucket_entries\":%d}\n",
		fi.Size(), len(g.keys), g.rev, g.rev*3/10, nrevs)
}

func (g *etcdGen) hwmBytes() int64 {
	var n int64
	must(g.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }))
	return n
}

func (g *etcdGen) initBuckets() {
	update(g.db, func(tx *bolt.Tx) error {
		for _, n := range []string{"key", "meta", "lease", "alarm", "cluster", "members",
			"members_removed", "auth", "authUsers", "authRoles"} {
			mustBucket(tx.CreateBucketIfNotExists([]byte(n)))
		}
		must(tx.Bucket([]byte("cluster")).Put([]byte("clusterVersion"), []byte("3.4.0")))
		must(tx.Bucket([]byte("members")).Put([]byte("2203ecf9b6c06757"),
			[]byte(`{"id":2451063179476756311,"peerURLs":["http://127.0.0.1:2380"],"name":"boltpack","clientURLs":["http://127.0.0.1:2379"]}`)))
		must(tx.Bucket([]byte("auth")).Put([]byte("authEnabled"), []byte{0}))
		must(tx.Bucket([]byte("auth")).Put([]byte("authRevision"), be64(1)))
		lb := tx.Bucket([]byte("lease"))
		for _, id := range etcdLeases {
			v := []byte{0x08}
			v = appendVarint(v, uint64(id))
			v = append(v, 0x10)
			v = appendVarint(v, etcdLeaseTTL)
			must(lb.Put(be64(uint64(id)), v))
		}
		g.cindex = 4
		must(tx.Bucket([]byte("meta")).Put([]byte("consistent_index"), be64(g.cindex)))
		return nil
	})
}

func (g *etcdGen) pickWeighted(total int, weight func(i int) int) int {
	x := g.r.Intn(total)
	for i := range etcdResources {
		x -= weight(i)
		if x < 0 {
			return i
		}
	}
	return len(etcdResources) - 1
}

func (g *etcdGen) newKey() int {
	ri := g.pickWeighted(g.popTotal, func(i int) int { return etcdResources[i].popWeight })
	res := etcdResources[ri]
	n := len(g.byRes[ri])
	var name string
	ns := etcdNamespaces[g.r.Intn(len(etcdNamespaces))]
	switch res.name {
	case "events":
		name = fmt.Sprintf("app-%04d-%08x.%016x", n%997, g.r.Uint32(), g.r.Uint64())
	case "pods":
		name = fmt.Sprintf("app-%04d-%08x-%05x", n%997, g.r.Uint32(), g.r.Intn(1<<20))
	case "leases":
		ns = "kube-node-lease"
		name = fmt.Sprintf("node-%05d", n)
	case "minions":
		name = fmt.Sprintf("node-%05d", n)
	case "namespaces":
		name = fmt.Sprintf("ns-%05d", n)
	default:
		name = fmt.Sprintf("%s-%05d", res.name[:3], n)
	}
	var key string
	if res.namespaced {
		key = "/registry/" + res.name + "/" + ns + "/" + name
	} else {
		key = "/registry/" + res.name + "/" + name
	}
	k := &genKey{name: []byte(key), res: ri}
	if res.leased {
		k.lease = etcdLeases[g.r.Intn(len(etcdLeases))]
	}
	g.keys = append(g.keys, k)
	g.byRes[ri] = append(g.byRes[ri], len(g.keys)-1)
	return len(g.keys) - 1
}

// pickKey: a new key with probability 1/20, else an existing one, the
// resource chosen by churn weight (only resources that have keys).
func (g *etcdGen) pickKey() int {
	if len(g.keys) == 0 || g.r.Intn(20) == 0 {
		return g.newKey()
	}
	total := 0
	for i, res := range etcdResources {
		if len(g.byRes[i]) > 0 {
			total += res.churn
		}
	}
	ri := g.pickWeighted(total, func(i int) int {
		if len(g.byRes[i]) == 0 {
			return 0
		}
		return etcdResources[i].churn
	})
	ks := g.byRes[ri]
	return ks[g.r.Intn(len(ks))]
}

func (g *etcdGen) value(res etcdResource) []byte {
	g.puts++
	n := 0
	minV, maxV := res.minV, res.maxV
	if g.small {
		minV, maxV = smallMinV, smallMaxV
	}
	if res.big && !g.small && g.puts%4000 == 500 {
		n = 900<<10 + g.r.Intn(124<<10) // ~1 MiB, under etcd's 1.5 MiB request limit
	} else {
		lo, hi := math.Log(float64(minV)), math.Log(float64(maxV))
		n = int(math.Exp(lo + g.r.Float64()*(hi-lo)))
	}
	if n > len(g.pool) {
		n = len(g.pool)
	}
	off := g.r.Intn(len(g.pool) - n + 1)
	return g.pool[off : off+n]
}

// batch: one bbolt transaction of ~perBatch key-bucket puts, as etcd's batched
// backend commits them, ending with meta/consistent_index.
func (g *etcdGen) batch(perBatch int) {
	update(g.db, func(tx *bolt.Tx) error {
		kb := tx.Bucket([]byte("key"))
		kb.FillPercent = 0.9
		for n := 0; n < perBatch; {
			ops := 1
			if g.r.Intn(100) < 8 {
				ops = 2 + g.r.Intn(3)
			}
			g.rev++
			g.cindex++
			var used []int
		opLoop:
			for sub := 0; sub < ops; sub++ {
				ki := g.pickKey()
				for _, u := range used {
					if u == ki {
						continue opLoop // etcd rejects a txn that writes one key twice
					}
				}
				used = append(used, ki)
				k := g.keys[ki]
				res := etcdResources[k.res]
				rk := genRev{main: g.rev, sub: int64(len(used) - 1)}
				var v []byte
				if k.live && res.deletable && g.r.Intn(100) < 7 {
					rk.tomb = true
					v = encodeKV(nil, k.name, 0, 0, 0, nil, 0) // bbolt keeps the slice until commit
					k.live = false
				} else {
					if !k.live {
						k.live = true
						k.create = g.rev
						k.version = 0
					}
					k.version++
					v = encodeKV(nil, k.name, k.create, g.rev, k.version, g.value(res), k.lease)
				}
				k.revs = append(k.revs, rk)
				must(kb.Put(revKey(rk.main, rk.sub, rk.tomb), v))
				n++
			}
		}
		return tx.Bucket([]byte("meta")).Put([]byte("consistent_index"), be64(g.cindex))
	})
}

// compact replays etcd 3.4.23's online compaction at R: keep(R) per key (a
// generation whose tombstone is <= R goes entirely; in the generation live
// at R the newest revision <= R stays), deletes in transactions of 1000.
func (g *etcdGen) compact(R int64) {
	if R <= 1 {
		return
	}
	rk := make([]byte, 17)
	binary.BigEndian.PutUint64(rk, uint64(R))
	rk[8] = '_'
	update(g.db, func(tx *bolt.Tx) error {
		g.cindex++
		m := tx.Bucket([]byte("meta"))
		must(m.Put([]byte("scheduledCompactRev"), rk))
		return m.Put([]byte("consistent_index"), be64(g.cindex))
	})
	var del []genRev
	for _, k := range g.keys {
		// generations: split after each tombstone
		keepIdx := -1
		start := 0
		for i := 0; i <= len(k.revs); i++ {
			if i < len(k.revs) && !k.revs[i].tomb {
				continue
			}
			// generation k.revs[start:i+1] (tombstone at i), or the last one k.revs[start:]
			last := i == len(k.revs)
			if last || k.revs[i].main > R {
				end := i
				if last {
					end = len(k.revs) - 1
				}
				for j := end; j >= start; j-- {
					if k.revs[j].main <= R {
						keepIdx = j
						break
					}
				}
				break
			}
			start = i + 1
		}
		kept := k.revs[:0]
		for i, rv := range k.revs {
			if rv.main <= R && i != keepIdx {
				del = append(del, rv)
			} else {
				kept = append(kept, rv)
			}
		}
		k.revs = kept
	}
	// etcd deletes in key order
	sortRevs(del)
	for i := 0; i < len(del) || i == 0; i += 1000 {
		j := i + 1000
		if j > len(del) {
			j = len(del)
		}
		update(g.db, func(tx *bolt.Tx) error {
			kb := tx.Bucket([]byte("key"))
			for _, rv := range del[i:j] {
				must(kb.Delete(revKey(rv.main, rv.sub, rv.tomb)))
			}
			g.cindex++
			m := tx.Bucket([]byte("meta"))
			if j == len(del) {
				must(m.Put([]byte("finishedCompactRev"), rk))
			}
			return m.Put([]byte("consistent_index"), be64(g.cindex))
		})
		if j == len(del) {
			break
		}
	}
}

func sortRevs(rs []genRev) {
	less := func(a, b genRev) bool {
		if a.main != b.main {
			return a.main < b.main
		}
		return a.sub < b.sub
	}
	// simple merge sort (stable, deterministic)
	if len(rs) < 2 {
		return
	}
	tmp := make([]genRev, len(rs))
	for w := 1; w < len(rs); w *= 2 {
		for lo := 0; lo < len(rs); lo += 2 * w {
			mid, hi := lo+w, lo+2*w
			if mid > len(rs) {
				mid = len(rs)
			}
			if hi > len(rs) {
				hi = len(rs)
			}
			i, j, o := lo, mid, lo
			for i < mid && j < hi {
				if less(rs[j], rs[i]) {
					tmp[o] = rs[j]
					j++
				} else {
					tmp[o] = rs[i]
					i++
				}
				o++
			}
			for i < mid {
				tmp[o] = rs[i]
				i++
				o++
			}
			for j < hi {
				tmp[o] = rs[j]
				j++
				o++
			}
		}
		copy(rs, tmp)
	}
}
