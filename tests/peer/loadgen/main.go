// loadgen: a Kubernetes-like write load against a real etcd, through etcd's gRPC
// gateway (HTTP/JSON, /v3/kv/txn), with the Go standard library only (no Go module
// proxy here, and Debian's etcd client package would pull in gRPC).
//
//	loadgen -endpoint http://127.0.0.1:PORT -db DATA_DIR/member/snap/db -mib 1024 [-workers 96]
//
// It writes until the db file reaches -mib MiB, then prints one JSON line of counts.
// The shape follows what kube-apiserver stores (/registry/<resource>/<ns>/<name>):
// node leases renewed all the time (hot keys with deep history), node status, pods
// created, updated a few times and deleted, events attached to leases that are revoked
// in bulk (many tombstones in one revision), endpoint slices, leader-election leases,
// master leases, configmaps and secrets; some multi-op txns; values 40 B - 2 KiB; two
// compactions (so there is a finished compaction and scattered free pages), the
// apiserver's compact_rev_key with each. Deterministic per worker (seeded), but the
// interleaving of the workers is not.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var (
	endpoint = flag.String("endpoint", "", "etcd client URL")
	dbPath   = flag.String("db", "", "the member's db file, watched for its size")
	mib      = flag.Int64("mib", 1024, "stop when the db file reaches this many MiB")
	workers  = flag.Int("workers", 96, "concurrent writers")
	nodes    = flag.Int("nodes", 300, "simulated nodes")
)

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

type op map[string]interface{}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func put(key, value string, lease int64) op {
	p := map[string]interface{}{"key": b64(key), "value": b64(value)}
	if lease != 0 {
		p["lease"] = strconv.FormatInt(lease, 10)
	}
	return op{"request_put": p}
}

func del(key string) op {
	return op{"request_delete_range": map[string]interface{}{"key": b64(key)}}
}

func call(path string, body interface{}) (map[string]interface{}, error) {
	buf, _ := json.Marshal(body)
	for attempt := 0; ; attempt++ {
		resp, err := client.Post(*endpoint+path, "application/json", bytes.NewReader(buf))
		if err == nil {
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				var m map[string]interface{}
				_ = json.Unmarshal(out, &m)
				return m, nil
			}
			err = fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, out)
		}
		if attempt == 20 {
			return nil, err
		}
		time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
	}
}

func txn(ops ...op) { must(call("/v3/kv/txn", map[string]interface{}{"success": ops})) }

func must(m map[string]interface{}, err error) map[string]interface{} {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	return m
}

// value: n bytes as kube-apiserver stores an object: `k8s\0`, then a runtime.Unknown
// whose field 1 is the TypeMeta {apiVersion, kind} and field 2 the object's bytes (text
// fields and random bytes, so it neither compresses to nothing nor is all noise).
func value(r *rand.Rand, kind, name string, n int) string {
	apiVersion := "v1"
	switch kind {
	case "Lease":
		apiVersion = "coordination.k8s.io/v1"
	case "Deployment", "ReplicaSet":
		apiVersion = "apps/v1"
	case "EndpointSlice":
		apiVersion = "discovery.k8s.io/v1"
	case "IPAMBlock":
		apiVersion = "crd.projectcalico.org/v1"
	}
	field := func(b *bytes.Buffer, num byte, s string) {
		b.WriteByte(num<<3 | 2)
		var l [10]byte
		b.Write(l[:binary.PutUvarint(l[:], uint64(len(s)))])
		b.WriteString(s)
	}
	var tm bytes.Buffer
	field(&tm, 1, apiVersion)
	field(&tm, 2, kind)
	var raw bytes.Buffer
	raw.WriteString(name)
	head := 4 + 2 + tm.Len() + 4
	for raw.Len() < n-head {
		if r.Intn(3) == 0 {
			raw.WriteString("kubernetes.io/")
		} else {
			raw.WriteByte(byte(r.Intn(256)))
		}
	}
	var b bytes.Buffer
	b.WriteString("k8s\x00")
	field(&b, 1, tm.String())
	field(&b, 2, raw.String())
	return b.String()
}

var (
	puts, dels, txns int64
	eventLeases      = struct {
		sync.Mutex
		ids []int64
	}{}
)

func grant(ttl int) int64 {
	m := must(call("/v3/lease/grant", map[string]interface{}{"TTL": strconv.Itoa(ttl)}))
	id, _ := strconv.ParseInt(fmt.Sprint(m["ID"]), 10, 64)
	return id
}

var namespaces = []string{"default", "kube-system", "monitoring", "ingress", "payments",
	"search", "checkout", "batch", "logging", "ml-training", "web", "api"}

func worker(w int, stop *int32, wg *sync.WaitGroup) {
	defer wg.Done()
	r := rand.New(rand.NewSource(int64(w) + 1))
	pods := map[string]bool{}
	seq := 0
	for atomic.LoadInt32(stop) == 0 {
		ns := namespaces[r.Intn(len(namespaces))]
		node := fmt.Sprintf("node-%04d", r.Intn(*nodes))
		switch x := r.Intn(100); {
		case x < 30: // node lease renewal: the hottest keys
			txn(put("/registry/leases/kube-node-lease/"+node, value(r, "Lease", node, 280+r.Intn(60)), 0))
		case x < 36: // node status
			txn(put("/registry/minions/"+node, value(r, "Node", node, 1500+r.Intn(548)), 0))
		case x < 52: // pod lifecycle: create, updates, delete
			name := fmt.Sprintf("%s/app-w%d-%d", ns, w, seq)
			if len(pods) < 40 || r.Intn(4) == 0 {
				seq++
				pods[name] = true
				txn(put("/registry/pods/"+name, value(r, "Pod", name, 900+r.Intn(1100)), 0))
			} else {
				for p := range pods {
					if r.Intn(5) == 0 {
						delete(pods, p)
						txn(del("/registry/pods/" + p))
						atomic.AddInt64(&dels, 1)
					} else {
						txn(put("/registry/pods/"+p, value(r, "Pod", p, 900+r.Intn(1100)), 0))
					}
					break
				}
			}
		case x < 72: // events, attached to a lease revoked later in bulk
			eventLeases.Lock()
			lease := eventLeases.ids[len(eventLeases.ids)-1]
			eventLeases.Unlock()
			name := fmt.Sprintf("%s/app-w%d-%d.%x", ns, w, seq, r.Int63())
			txn(put("/registry/events/"+name, value(r, "Event", name, 350+r.Intn(400)), lease))
		case x < 82: // endpoints and their slice, one txn
			svc := fmt.Sprintf("%s/svc-%d", ns, r.Intn(20))
			txn(put("/registry/services/endpoints/"+svc, value(r, "Endpoints", svc, 300+r.Intn(900)), 0),
				put("/registry/endpointslices/"+svc+"-abcde", value(r, "EndpointSlice", svc, 400+r.Intn(1200)), 0))
			atomic.AddInt64(&puts, 1)
		case x < 90: // leader election
			c := []string{"kube-controller-manager", "kube-scheduler", "cloud-controller"}[r.Intn(3)]
			txn(put("/registry/leases/kube-system/"+c, value(r, "Lease", c, 40+r.Intn(300)), 0))
		case x < 93:
			ip := fmt.Sprintf("10.0.0.%d", 1+r.Intn(3))
			txn(put("/registry/masterleases/"+ip, value(r, "Endpoints", ip, 60+r.Intn(40)), 0))
		case x < 97: // configmaps and secrets, some in a multi-op txn
			cm := fmt.Sprintf("%s/cfg-%d", ns, r.Intn(60))
			ops := []op{put("/registry/configmaps/"+cm, value(r, "ConfigMap", cm, 200+r.Intn(1800)), 0)}
			if r.Intn(2) == 0 {
				ops = append(ops, put("/registry/secrets/"+cm, value(r, "Secret", cm, 100+r.Intn(1500)), 0))
				atomic.AddInt64(&puts, 1)
			}
			txn(ops...)
		default: // deployments and replica sets, and a CRD
			d := fmt.Sprintf("%s/deploy-%d", ns, r.Intn(30))
			txn(put("/registry/deployments/"+d, value(r, "Deployment", d, 800+r.Intn(1200)), 0),
				put("/registry/replicasets/"+d+"-5d8f7", value(r, "ReplicaSet", d, 600+r.Intn(1000)), 0),
				put("/registry/crd.projectcalico.org/ipamblocks/"+d, value(r, "IPAMBlock", d, 300+r.Intn(500)), 0))
			atomic.AddInt64(&puts, 2)
		}
		atomic.AddInt64(&puts, 1)
		atomic.AddInt64(&txns, 1)
	}
}

func revision() int64 {
	m := must(call("/v3/kv/range", map[string]interface{}{"key": b64("compact_rev_key")}))
	h := m["header"].(map[string]interface{})
	rev, _ := strconv.ParseInt(fmt.Sprint(h["revision"]), 10, 64)
	return rev
}

// compact as kube-apiserver does: write compact_rev_key, then compact at an older revision.
func compact(at int64) {
	txn(put("compact_rev_key", strconv.FormatInt(at, 10), 0))
	must(call("/v3/kv/compaction", map[string]interface{}{"revision": strconv.FormatInt(at, 10), "physical": true}))
}

func main() {
	flag.Parse()
	if *endpoint == "" || *dbPath == "" {
		fmt.Fprintln(os.Stderr, "usage: loadgen -endpoint URL -db FILE [-mib N] [-workers N]")
		os.Exit(2)
	}
	eventLeases.ids = []int64{grant(3600)}
	var stop int32
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go worker(w, &stop, &wg)
	}
	start := time.Now()
	target := *mib << 20
	compactions, revoked := 0, 0
	type sample struct{ size, rev int64 }
	var samples []sample
	var compacted int64
	for {
		time.Sleep(2 * time.Second)
		st, err := os.Stat(*dbPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		// a new event lease every 2 s; the oldest revoked when 30 exist (bulk deletes)
		id := grant(3600)
		eventLeases.Lock()
		eventLeases.ids = append(eventLeases.ids, id)
		var old int64
		if len(eventLeases.ids) > 30 {
			old, eventLeases.ids = eventLeases.ids[0], eventLeases.ids[1:]
		}
		eventLeases.Unlock()
		if old != 0 {
			must(call("/v3/lease/revoke", map[string]interface{}{"ID": strconv.FormatInt(old, 10)}))
			revoked++
		}
		rev := revision()
		samples = append(samples, sample{st.Size(), rev})
		// at 1/3 and 2/3 of the way, compact at the revision from when the file was half
		// its size now: most history stays (more than between two apiserver compactions)
		if compactions < 2 && st.Size() > target*int64(compactions+1)/3 {
			for _, s := range samples {
				if s.size >= st.Size()/2 && s.rev > compacted {
					compact(s.rev)
					compacted = s.rev
					compactions++
					break
				}
			}
		}
		fmt.Fprintf(os.Stderr, "loadgen: %4.0f s  db %5d MiB  rev %d  puts %d\n",
			time.Since(start).Seconds(), st.Size()>>20, rev, atomic.LoadInt64(&puts))
		if st.Size() >= target {
			break
		}
	}
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	fmt.Printf("{\"revision\":%d,\"txns\":%d,\"puts\":%d,\"deletes\":%d,\"leases_revoked\":%d,\"compactions\":%d,\"seconds\":%.0f}\n",
		revision(), txns, puts, dels, revoked, compactions, time.Since(start).Seconds())
}
