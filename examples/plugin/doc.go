// Package pluginexample is the plugin example: two vanemq plugins, each a
// program of its own that the broker runs as a separate process and talks
// to over gRPC, written with plugins/sdk only: auth (users and bcrypt
// hashes from a file) and audit (every published message as a JSON line
// in a file), and a vanemq.yaml that uses both. This package holds no
// code but its tests, which build the plugins and run them in a broker in
// process and under the vanemq binary. See README.md.
package pluginexample
