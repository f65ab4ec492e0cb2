package main

// boltpeer hashkv DB [REV]: etcd 3.4.23's HashKV computed offline the way etcd does it,
// with the real bbolt: restore the key index from the `key` bucket (restoreIntoIndex,
// mvcc/kvstore.go), take kvindex.Keep(rev) (keyIndex.keep / doCompact, mvcc/key_index.go)
// and hash the bucket (store.HashByRev). It is the benchmark's Go peer for
// `boltpack hashkv`, so it is written to be at least as fast as etcd: a Go map instead of
// etcd's btree, and only field 1 (the key) of each mvccpb.KeyValue decoded, where etcd
// unmarshals the whole message. Prints {"hash":H,"compact_revision":C,"revision":R}.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

type revision struct{ main, sub int64 }

type generation struct{ revs []revision }

type keyIndex struct{ generations []generation }

func (ki *keyIndex) put(r revision) {
	if len(ki.generations) == 0 {
		ki.generations = append(ki.generations, generation{})
	}
	g := &ki.generations[len(ki.generations)-1]
	g.revs = append(g.revs, r)
}

// tombstone: ErrRevisionNotFound (ignored by restore) on an empty generation.
func (ki *keyIndex) tombstone(r revision) {
	if len(ki.generations[len(ki.generations)-1].revs) == 0 {
		return
	}
	ki.put(r)
	ki.generations = append(ki.generations, generation{})
}

func (ki *keyIndex) isEmpty() bool {
	return len(ki.generations) == 1 && len(ki.generations[0].revs) == 0
}

// keep: keyIndex.keep with doCompact inlined (etcd 3.4.23).
func (ki *keyIndex) keep(atRev int64, available map[revision]struct{}) {
	if ki.isEmpty() {
		return
	}
	genIdx, g := 0, &ki.generations[0]
	for genIdx < len(ki.generations)-1 {
		if tomb := g.revs[len(g.revs)-1].main; tomb > atRev {
			break
		}
		genIdx++
		g = &ki.generations[genIdx]
	}
	revIndex := -1
	for i := len(g.revs) - 1; i >= 0; i-- {
		if g.revs[i].main <= atRev {
			available[g.revs[i]] = struct{}{}
			revIndex = i
			break
		}
	}
	if len(g.revs) != 0 && revIndex == len(g.revs)-1 && genIdx != len(ki.generations)-1 {
		delete(available, g.revs[revIndex])
	}
}

func bytesToRev(k []byte) revision {
	return revision{int64(binary.BigEndian.Uint64(k[0:8])), int64(binary.BigEndian.Uint64(k[9:17]))}
}

// kvKey: field 1 of a marshaled mvccpb.KeyValue (gogoproto writes it first).
func kvKey(v []byte) []byte {
	if len(v) < 2 || v[0] != 0x0a {
		die("hashkv: a KeyValue that does not start with its key")
	}
	n, w := binary.Uvarint(v[1:])
	return v[1+w : 1+w+int(n)]
}

func cmdHashKV(path string, rev int64) {
	db, err := bolt.Open(path, 0400, &bolt.Options{ReadOnly: true})
	must(err)
	defer db.Close()
	must(db.View(func(tx *bolt.Tx) error {
		compact := int64(-1)
		if v := tx.Bucket([]byte("meta")).Get([]byte("finishedCompactRev")); len(v) >= 17 {
			compact = bytesToRev(v).main
		}
		index := map[string]*keyIndex{}
		current := int64(0)
		b := tx.Bucket([]byte("key"))
		must(b.ForEach(func(k, v []byte) error {
			r := bytesToRev(k)
			current = r.main
			tomb := len(k) == 18 && k[17] == 't'
			key := kvKey(v)
			ki, ok := index[string(key)]
			if ok {
				if tomb {
					ki.tombstone(r)
				} else {
					ki.put(r)
				}
			} else if !tomb {
				ki = &keyIndex{}
				ki.put(r)
				index[string(key)] = ki
			}
			return nil
		}))
		if current < compact {
			current = compact
		}
		if rev == 0 {
			rev = current
		}
		if rev <= compact || rev > current {
			die("hashkv: revision %d is compacted (%d) or in the future (%d)", rev, compact, current)
		}
		keep := map[revision]struct{}{}
		for _, ki := range index {
			ki.keep(rev, keep)
		}
		upper := revision{main: rev + 1}
		lower := revision{main: compact + 1}
		greater := func(a, b revision) bool { return a.main > b.main || (a.main == b.main && a.sub > b.sub) }
		h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		h.Write([]byte("key"))
		must(b.ForEach(func(k, v []byte) error {
			kr := bytesToRev(k)
			if !greater(upper, kr) {
				return nil
			}
			if greater(lower, kr) && len(keep) > 0 {
				if _, ok := keep[kr]; !ok {
					return nil
				}
			}
			h.Write(k)
			h.Write(v)
			return nil
		}))
		fmt.Printf("{\"hash\":%d,\"compact_revision\":%d,\"revision\":%d}\n", h.Sum32(), compact, current)
		return nil
	}))
}

func parseRev(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		die("bad REV %q: %v", s, err)
	}
	return v
}
