package plugins

import (
	"testing"

	"github.com/vanemq/vanemq/core"
)

// Deliver's request names the subscriber twice: its client, and its ID
// alone, which a plugin built before the client was sent reads.
func TestDeliverRequest(t *testing.T) {
	req := deliverRequest(&core.ClientInfo{ID: "s1", Username: "alice", ProtocolVersion: 5}, &core.Message{Topic: "a/b"})
	if req.GetSubscriber() != "s1" || req.GetClient().GetId() != "s1" || req.GetClient().GetUsername() != "alice" ||
		req.GetClient().GetProtocolVersion() != 5 || req.GetMessage().GetTopic() != "a/b" {
		t.Errorf("%v", req)
	}
}
