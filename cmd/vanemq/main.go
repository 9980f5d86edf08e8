// Command vanemq runs the vanemq MQTT broker; see package vanemqcmd for its
// usage. A custom binary with hooks of its own looks the same, plus a blank
// import of each package that registers a hook:
//
//	import _ "example.com/yourhooks"
//	func main() { os.Exit(vanemqcmd.Main()) }
package main

import (
	"os"

	"github.com/vanemq/vanemq/cmd/vanemq/vanemqcmd"
)

func main() {
	os.Exit(vanemqcmd.Main())
}
