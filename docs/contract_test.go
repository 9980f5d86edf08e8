// Package docs holds vanemq's user guides. Its test checks the guides'
// tables that describe code against the code.
package docs_test

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/js"
	"github.com/vanemq/vanemq/plugins"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
	"github.com/vanemq/vanemq/plugins/sdk"
)

// contractRow is one row of hooks.md's contract table.
type contractRow struct {
	line                                 int
	event, method, kind, proto, sdk, jsf string
}

// readContractTable reads the rows between the table's markers.
func readContractTable(t *testing.T) []contractRow {
	t.Helper()
	f, err := os.Open("hooks.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []contractRow
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "<!-- contract table"):
			in = true
			continue
		case strings.HasPrefix(line, "<!-- end of contract table"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 6 {
			t.Fatalf("hooks.md:%d: %d cells, want 6", n, len(cells))
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		unq := func(s string) string { return strings.Trim(s, "`") }
		rows = append(rows, contractRow{line: n, event: unq(cells[0]), method: unq(cells[1]), kind: cells[2],
			proto: unq(cells[3]), sdk: cells[4], jsf: unq(cells[5])})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// sdkKindNamed finds the SDK's observed-event kind named name.
func sdkKindNamed(name string) (sdk.EventKind, bool) {
	for k := range sdk.EventKind(255) {
		if k != 0 && k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// The one table of docs/hooks.md lists every core event once, and each
// form of the contract has it under the name the table gives: the Go
// method and kind (core), the plugin protocol's event (pluginv1, and the
// adapter's mapping), the SDK's method or observed kind, and the
// JavaScript function (issue 16 §1).
func TestContractTable(t *testing.T) {
	rows := readContractTable(t)
	seen := core.EventSet(0)
	plugin := reflect.TypeFor[sdk.Plugin]()
	for _, r := range rows {
		e, ok := core.EventNamed(r.event)
		if !ok {
			t.Errorf("hooks.md:%d: no core event %q", r.line, r.event)
			continue
		}
		if seen.Has(e) {
			t.Errorf("hooks.md:%d: event %s listed twice", r.line, e)
		}
		seen |= core.Events(e)
		if e.Method() != r.method {
			t.Errorf("hooks.md:%d: %s: Go method %q, the code has %q", r.line, e, r.method, e.Method())
		}
		if e.Kind().String() != r.kind {
			t.Errorf("hooks.md:%d: %s: kind %q, the code has %q", r.line, e, r.kind, e.Kind())
		}
		want, ok := pluginv1.Event_value[r.proto]
		if !ok {
			t.Errorf("hooks.md:%d: %s: no proto event %s", r.line, e, r.proto)
		} else if got, ok := plugins.WireEvent(e); !ok || int32(got) != want {
			t.Errorf("hooks.md:%d: %s: the plugin adapter maps it to %v (%v), the table says %s", r.line, e, got, ok, r.proto)
		}
		if e.Kind() == core.KindNotification {
			// "`Observe`: `EventX`": observed, with the core event's name.
			if k, ok := sdkKindNamed(r.event); !ok {
				t.Errorf("hooks.md:%d: %s: the SDK has no observed kind named %q", r.line, e, r.event)
			} else if !strings.Contains(r.sdk, "`Event") {
				t.Errorf("hooks.md:%d: %s: SDK cell %q does not name the kind (%d)", r.line, e, r.sdk, k)
			}
		} else {
			name := strings.Trim(r.sdk, "`")
			if _, ok := plugin.MethodByName(name); !ok {
				t.Errorf("hooks.md:%d: %s: sdk.Plugin has no method %s", r.line, e, name)
			}
		}
		if got := js.Function(e); got != r.jsf {
			t.Errorf("hooks.md:%d: %s: JavaScript function %q, the code has %q", r.line, e, r.jsf, got)
		}
	}
	if missing := core.AllEvents() &^ seen; missing != 0 {
		t.Errorf("hooks.md's contract table lacks %s", missing)
	}
}
