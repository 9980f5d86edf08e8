// Package bridge is the bridge example: a vanemq edge broker bridged to a
// central Mosquitto (vanemq.yaml, central.conf). Its test runs both.
// See README.md and docs/bridging.md.
package bridge
