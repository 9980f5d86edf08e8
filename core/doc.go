// Package core is the MQTT broker: connections, sessions, routing, the
// hook pipeline and the store interface. Listeners (package listeners) hand
// it connections; topic matching is in core/topics, the wire format in
// core/packets. Lock order is in LOCKS.md.
//
// # Goroutines
//
// A connection has a reader goroutine for its whole life (client.run, which
// answers CONNECT, then client.serve, then client.finish) and at most one
// writer goroutine, only while it has something to write (writeLoop). The
// reader does all the work a packet causes, for the sender and for every
// subscriber: a PUBLISH is routed on its publisher's reader, down into the
// subscribers' sessions and outbound queues, and the subscribers' writers
// only encode and write. Besides, the server has a notifier goroutine
// (hook events raised under a lock, run later), timers (will delay,
// session expiry), the $SYS loop, and whatever goroutine a Store calls
// its done on.
//
// # A PUBLISH from socket to socket
//
// The steps of one QoS 0 PUBLISH to a connected subscriber, then what
// changes for the other cases. Each step names its goroutine, its file and
// function, and the locks it holds.
//
//  1. Publisher's reader, client.serve (client.go), no lock: waits for bytes
//     in connReader.wait (connreader.go), holding no buffer while idle, then
//     readArrived decodes the packets already read, at most 64, and hands
//     each to client.handle. These packets are one batch: what they cause
//     for others is gathered in the reader's readBatch (batch.go) and done
//     once at the end of the batch (step 8).
//  2. Publisher's reader, handlePublish (publish.go), no lock: checkPublish
//     resolves the topic alias (client.resolveAlias; aliasIn is the
//     reader's) and checks the topic's depth; the received counts go into
//     the batch.
//  3. Publisher's reader, authorizedMessage (publish.go), no lock: the
//     AuthorizePublish hooks, if any, see the reader's scratch Message
//     (client.hookMsg), and nothing is copied; newMessage (message.go)
//     then makes the message, sharing the decoded packet's body. With a
//     Publish hook, modifiedMessage runs AuthorizePublish and Publish on a
//     Message of its own and buildMessage copies the result. A Deny is
//     logged and answered (denyPublish): QoS 1 and 2 get its reason code
//     (v5), QoS 0 is dropped.
//  4. Publisher's reader, routePublish → Server.route (publish.go), then
//     Server.fanout (fanout.go): the subscription trie is matched without
//     a lock (core/topics) into a pooled fanoutScratch; the matches are
//     merged per client (highest QoS, every subscription identifier,
//     no-local) and each share group picks one member, preferring
//     connected ones.
//  5. Publisher's reader, Server.deliver (fanout.go), per subscriber: an
//     inline subscription (inline.go) calls its handler here; otherwise
//     the session is found in Server.live (lock-free; never Server.sessMu)
//     and the Deliver hooks run, before any lock. Then, under the
//     subscriber's session.mu: a message over the subscriber's Maximum
//     Packet Size is dropped, and session.offerLocked (session.go) takes
//     the delivery.
//  6. Publisher's reader, client.enqueuePublish and pushLocked (writer.go),
//     under the subscriber's session.mu and outMu: the delivery goes on the
//     subscriber's outbound queue (outQueue) and holds the message
//     (message.hold). A full queue drops it (QoS 0 only), a half-full one
//     is noted in the publisher's batch for pacing (readBatch.noteBacklog,
//     pacing.go), and an idle writer is scheduled: the subscriber goes in
//     the batch's writers. Both locks are released before the next
//     subscriber. A drop raises the Dropped hooks through the notifier,
//     never under the lock.
//  7. Publisher's reader, routePublish and published (publish.go), no
//     lock: the PUBACK or PUBREC goes on the publisher's own queue
//     (client.ack, store_client.go), then the Published hooks are told.
//  8. Publisher's reader, end of the batch (client.serve): countReceived
//     adds the batch's counts to the server's; client.flushStore
//     (store_client.go) hands the batch's store changes to the Store;
//     readBatch.startWriters (batch.go) starts each scheduled writer, under
//     its outMu; readBatch.pace (pacing.go) waits, at most maxPace, for
//     the subscribers noted in step 6 to drain below a quarter of their
//     queues: not reading meanwhile slows the publisher through TCP. Then
//     runtime.Gosched lets the writers run.
//  9. Subscriber's writer, writeLoop (writer.go): under outMu it takes the
//     whole queue and wakes pacing publishers (signalSpaceLocked); without
//     a lock, writer.writeAll encodes it into a 64 KiB buffer, copying the
//     encoded view subscribers share (message.views, under message.viewMu)
//     and encoding per subscriber what differs (subscription identifiers,
//     remaining expiry, topic alias: outAliases is the writer's), writes,
//     and releases each message (message.release). It exits when the queue
//     is empty.
//
// # QoS 1 and 2
//
// Inbound: a QoS 2 PUBLISH is recorded in the publisher's session
// (receiveQoS2, publish.go, under its session.mu) before step 3; a resend
// of one already delivered only gets its PUBREC again. The message is
// delivered on PUBLISH; PUBREL (client.handlePubrel, client.go) frees the
// identifier and is answered by PUBCOMP.
//
// Outbound: in step 6, session.offerLocked puts a QoS 1 or 2 delivery in
// the session's pending queue (bounded by max_queued_messages) and
// pumpLocked moves pending deliveries into flight (session.inflight, with
// a packet identifier) while the subscriber's window (sendMax: its
// Receive Maximum, at most max_inflight) has room. The subscriber's PUBACK or PUBCOMP, on the
// subscriber's reader (client.handleAck, client.go, under its session.mu),
// ends the flight (session.ackLocked), refills the window from pending
// through the subscriber's own batch, and wakes pacing publishers; the
// Acked hooks are told through the notifier. A PUBREC sets the flight's
// pubrec and is answered by PUBREL (client.handlePubrec).
//
// # Offline sessions
//
// A session whose client is away (session.conn nil, session expiry above
// 0) keeps QoS 1 and 2 deliveries in pending, and QoS 0 ones only with
// queue_qos0_messages; at the bound they are dropped and counted. When the
// client connects again, Server.attach (connect.go, on the new
// connection's reader, under sessMu and session.mu) queues the CONNACK
// first, then resends what was in flight (resendLocked: PUBLISH with DUP,
// or PUBREL) and pumps pending into flight through that reader's batch,
// which connectPhase (client.go) ends like any other.
//
// # Retained messages
//
// In step 4, a retained PUBLISH first goes through Server.retain
// (retain.go): the retained index (core/topics, its own writer lock) is
// set, or cleared by an empty payload; a message the index has no room
// for is refused whole (Quota exceeded) and not delivered either. The
// Retained hooks are told on the reader, holding no core lock. A new
// subscription gets the retained messages from handleSubscribe
// (subscribe.go), on the subscriber's reader under its session.mu, after
// its SUBACK (which a durable store may hold until after them), through
// offerLocked as in step 6.
//
// # The store
//
// With a Store, every session change made on a reader is a StoreOp in the
// reader's batch (Server.persist, persist.go), handed to Store.Apply in
// step 8. With a durable store the batch's acknowledgements wait in the
// batch (readBatch.heldAcks) and are queued from Apply's done, so nothing
// is acknowledged before it is on disk, and acknowledgements keep their
// order; a store failure closes the connection instead.
//
// # The broker's own publishes
//
// Wills (publishWill, will.go: the AuthorizePublish hooks for the will's
// client, then the Will hooks), $SYS topics (sys.go) and Server.Publish
// (inline.go) call Server.route with no client: there is no batch (a nil
// *readBatch), so a writer starts at once, a store change is applied at
// once, and nobody is paced.
package core
