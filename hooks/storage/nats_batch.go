package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// The KV headers a batch's messages carry (as nats.go's kv.go writes
// them) and those of JetStream's atomic batches (nats-server's stream.go).
const (
	natsKVOperation = "KV-Operation"
	natsKVDelete    = "DEL"
	natsTTL         = "Nats-TTL"
	natsBatchID     = "Nats-Batch-Id"
	natsBatchSeq    = "Nats-Batch-Sequence"
	natsBatchCommit = "Nats-Batch-Commit"
)

// natsBatch gathers a batch's writes, in order. A key written twice in a
// batch is sent once, with its last write: the bucket takes the batch
// whole, so what it held between the two is never seen.
type natsBatch struct {
	e    *natsEngine
	n    int // set, del and purge calls
	msgs []natsMsg
	// last is the index in msgs of each key's last write.
	last map[string]int
	buf  []byte
	// vals holds the values of msgs, end to end.
	vals []byte
}

// natsMsg is one write: a key's value, or its deletion (del); a purge
// (purge set) stands for the deletion of every record of the client.
type natsMsg struct {
	key string
	// val is the value, set by resolve; off and end are where it is in
	// the batch's vals until then.
	val      []byte
	off, end int
	del      bool
	purge    string
	dead     bool // superseded by a later write of the same key
}

func (b *natsBatch) add(m natsMsg) {
	if b.last == nil {
		b.last = make(map[string]int)
	}
	if i, ok := b.last[m.key]; ok {
		b.msgs[i].dead = true
	}
	b.last[m.key] = len(b.msgs)
	b.msgs = append(b.msgs, m)
}

func (b *natsBatch) set(sp space, client string, key, val []byte) {
	b.n++
	k, hashed := natsKeyHashed(b.buf[:0], sp, client, key)
	b.buf = k
	off := len(b.vals)
	if hashed {
		b.vals = natsEnvelope(b.vals, client, key, val)
	} else {
		b.vals = append(b.vals, val...)
	}
	b.add(natsMsg{key: string(k), off: off, end: len(b.vals)})
}

func (b *natsBatch) del(sp space, client string, key []byte) {
	b.n++
	b.buf = natsKey(b.buf[:0], sp, client, key)
	b.add(natsMsg{key: string(b.buf), del: true})
}

// purge deletes the client's records written earlier in the batch, and
// marks where commit deletes those already in the bucket.
func (b *natsBatch) purge(client string) {
	b.n++
	prefix := strings.TrimSuffix(natsClientFilter(client), ">")
	for i := range b.msgs {
		if m := &b.msgs[i]; !m.dead && m.purge == "" && strings.HasPrefix(m.key, prefix) {
			m.dead = true
			delete(b.last, m.key)
		}
	}
	b.msgs = append(b.msgs, natsMsg{purge: client})
}

func (b *natsBatch) count() int { return b.n }

// commit sends the batch as atomic batches of at most natsAtomicMax
// messages, in order on one connection, and waits for the commit's
// acknowledgement. A purge first lists the client's records in the
// bucket (one request), and deletes them at its place in the batch. sync
// adds nothing: the acknowledgement means the batch is stored on a
// majority of the stream's replicas (how soon nats-server syncs its
// files to disk is its sync_interval setting).
func (b *natsBatch) commit(ctx context.Context, _ bool) error {
	ctx, cancel := context.WithTimeout(ctx, b.e.timeout)
	defer cancel()
	out, err := b.resolve(ctx)
	if err != nil {
		return err
	}
	for len(out) > 0 {
		chunk := out[:min(len(out), natsAtomicMax)]
		out = out[len(chunk):]
		if err := b.e.publishAtomic(ctx, chunk); err != nil {
			return err
		}
	}
	return nil
}

// resolve returns the batch's messages, purges expanded into deletions.
func (b *natsBatch) resolve(ctx context.Context) ([]*natsMsg, error) {
	out := make([]*natsMsg, 0, len(b.msgs))
	for i := 0; i < len(b.msgs); i++ {
		m := &b.msgs[i]
		if m.dead {
			continue
		}
		if m.purge == "" {
			if !m.del {
				m.val = b.vals[m.off:m.end]
			}
			out = append(out, m)
			continue
		}
		keys, err := b.e.clientKeys(ctx, m.purge)
		if err != nil {
			return nil, fmt.Errorf("listing the records of client %q to delete them: %w", m.purge, err)
		}
		for _, k := range keys {
			// A later write of the key in this batch wins; the deletion
			// goes before it.
			out = append(out, &natsMsg{key: k, del: true})
		}
	}
	// A key deleted by a purge and written again later in the batch is
	// sent twice: once deleted, then written. That repeats a subject in
	// the batch, which an atomic batch allows for plain writes.
	return out, nil
}

// publishAtomic sends msgs as one atomic batch (a single message needs
// none) and waits for its acknowledgement.
func (e *natsEngine) publishAtomic(ctx context.Context, msgs []*natsMsg) error {
	id := ""
	if len(msgs) > 1 {
		id = e.batchPrefix + strconv.FormatUint(e.batches.Add(1), 36)
	}
	// One message and header, reused: nats.go encodes them before
	// PublishMsg returns.
	msg := &nats.Msg{Header: nats.Header{}}
	for i, m := range msgs {
		msg.Subject, msg.Data = e.subject+m.key, m.val
		clear(msg.Header)
		if m.del {
			msg.Header[natsKVOperation] = natsDelHeader
			msg.Header[natsTTL] = natsTTLHeader
		}
		if id != "" {
			msg.Header[natsBatchID] = []string{id}
			msg.Header[natsBatchSeq] = []string{strconv.Itoa(i + 1)}
		}
		if i < len(msgs)-1 {
			if err := e.nc.PublishMsg(msg); err != nil {
				return fmt.Errorf("sending %d records: %w", len(msgs), err)
			}
			continue
		}
		if id != "" {
			msg.Header[natsBatchCommit] = natsCommitHeader
		}
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("writing %d records: %w", len(msgs), err)
		}
	}
	return nil
}

// The header values every deletion and commit carries; nats.go only
// reads them.
var (
	natsDelHeader    = []string{natsKVDelete}
	natsTTLHeader    = []string{natsDeleteTTL}
	natsCommitHeader = []string{"1"}
)

// release drops the writes and keeps the batch for reuse, unless it grew
// large.
func (b *natsBatch) release() {
	if cap(b.msgs) > 4096 || cap(b.vals) > 1<<20 {
		return
	}
	clear(b.msgs)
	b.msgs, b.vals, b.n = b.msgs[:0], b.vals[:0], 0
	clear(b.last)
	b.e.pool.Put(b)
}
