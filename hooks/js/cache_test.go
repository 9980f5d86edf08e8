package js

import (
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/vanemq/vanemq/core"
)

// A cached decision keeps a copy of its topic: the topic the broker passes
// points into the PUBLISH that carried it, whose payload would otherwise
// stay alive as long as the connection's cache entry.
func TestCacheKeepsTopicCopy(t *testing.T) {
	var clock atomic.Int64
	c := newDecisionCache(60e9, 100, &clock)
	body := []byte("a/topic" + strings.Repeat("p", 1<<20)) // topic, then a 1 MiB payload
	topic := unsafe.String(&body[0], len("a/topic"))
	cl := &core.ClientInfo{ID: "c"}
	if !c.put(cl, cacheKey{action: actionPublish, topic: topic}, core.Allow, 0) {
		t.Fatal("cache full")
	}
	v, _ := c.conns.Load(cl)
	for k := range v.(*connCache).m {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k.topic))); p >= uintptr(unsafe.Pointer(&body[0])) && p < uintptr(unsafe.Pointer(&body[0]))+uintptr(len(body)) {
			t.Fatal("the cached key points into the packet's body")
		}
		if k.topic != "a/topic" {
			t.Fatalf("cached topic %q", k.topic)
		}
	}
	if vd, _, ok := c.get(cl, cacheKey{action: actionPublish, topic: "a/topic"}); !ok || vd != core.Allow {
		t.Fatalf("get: %+v %v", vd, ok)
	}
}
