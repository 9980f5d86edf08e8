package js

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/topics"
)

// vmLimits is what every runtime of a hook shares: its limits and the
// environment scripts see.
type vmLimits struct {
	timeout time.Duration
	// wait bounds the wait for a free runtime.
	wait time.Duration
	// maxLen caps the strings and arrays the capped built-ins build.
	maxLen int
	// stack caps the call stack depth.
	stack int
	log   *slog.Logger
	// config is the hook's config block, as the script's config global.
	config map[string]any
	// publish publishes in process; nil when the hook has no server.
	publish func(core.InlineMessage) error
	// clock is a coarse clock (unix nanos) the watchdog keeps, for the
	// decision cache: reading the real clock per decision costs more
	// than the cache saves on some machines.
	clock *atomic.Int64
}

// errTimeout is what an interrupted call fails with.
var errTimeout = errors.New("timed out")

// vm is one goja runtime with the program run in it and its functions
// found. A vm is used by one call at a time (the pool hands it out); its
// deadline is watched by the pool's watchdog, which interrupts a call that
// runs past it.
type vm struct {
	rt   *goja.Runtime
	prog *program
	fns  [numFns]goja.Callable
	lim  *vmLimits

	// publishFn is the publish helper, the global publish until the
	// script defines a publish function of its own, and mqtt.publish.
	publishFn *goja.Object

	// clients keeps the client objects of recent callers, so that a
	// client's object and its strings are made once, not per call; it is
	// emptied when it reaches maxClients. A ClientInfo does not change
	// while its connection lives.
	clients map[*core.ClientInfo]*goja.Object
	// clientProto is the client objects' prototype, which converts a
	// client to its client ID (makeClientProto).
	clientProto *goja.Object

	// mu orders arming and disarming a call against the watchdog's
	// interrupt, so an interrupt never outlives the call it was for.
	mu       sync.Mutex
	deadline time.Time // zero while idle
}

// prelude caps the built-ins that can build a huge string or array in one
// step, before any script code runs. The call timeout cannot stop a
// single allocation.
const prelude = `(function (max) {
	"use strict";
	var repeat = String.prototype.repeat, padStart = String.prototype.padStart,
		padEnd = String.prototype.padEnd, fill = Array.prototype.fill, join = Array.prototype.join;
	function cap(what) { throw new RangeError(what + ": the result would exceed " + max + " characters or elements (js hook limit)"); }
	function def(o, name, f) { Object.defineProperty(o, name, { value: f, writable: false, configurable: false, enumerable: false }); }
	def(String.prototype, "repeat", function (n) { if (String(this).length * Number(n) > max) cap("String.prototype.repeat"); return repeat.call(this, n); });
	def(String.prototype, "padStart", function (n, s) { if (Number(n) > max) cap("String.prototype.padStart"); return padStart.call(this, n, s); });
	def(String.prototype, "padEnd", function (n, s) { if (Number(n) > max) cap("String.prototype.padEnd"); return padEnd.call(this, n, s); });
	def(Array.prototype, "fill", function (v, a, b) { if (this.length > max) cap("Array.prototype.fill"); return fill.call(this, v, a, b); });
	def(Array.prototype, "join", function (s) { if (this.length > max) cap("Array.prototype.join"); return join.call(this, s); });
	var from = Array.from;
	def(Array, "from", function (src, f, self) { if (src != null && Number(src.length) > max) cap("Array.from"); return from.call(this, src, f, self); });
	// Constructors that allocate their length at once.
	["ArrayBuffer", "Uint8Array", "Int8Array", "Uint8ClampedArray", "Uint16Array", "Int16Array",
	 "Uint32Array", "Int32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"].forEach(function (name) {
		var C = globalThis[name];
		if (typeof C !== "function") return;
		globalThis[name] = new Proxy(C, { construct: function (t, args, nt) {
			if (typeof args[0] === "number" && args[0] > max) cap(name);
			return Reflect.construct(t, args, nt);
		} });
	});
})`

// newVM makes a runtime for p: globals, capped built-ins, then the script
// itself, run under the call timeout.
func newVM(p *program, lim vmLimits) (*vm, error) {
	rt := goja.New()
	rt.SetMaxCallStackSize(lim.stack)
	v := &vm{rt: rt, prog: p, lim: &lim}
	capFn, err := rt.RunString(prelude)
	if err != nil {
		return nil, fmt.Errorf("js prelude: %w", err)
	}
	if c, ok := goja.AssertFunction(capFn); ok {
		if _, err := c(goja.Undefined(), rt.ToValue(lim.maxLen)); err != nil {
			return nil, fmt.Errorf("js prelude: %w", err)
		}
	}
	if err := v.setGlobals(); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(lim.timeout*10, func() { rt.Interrupt(errTimeout) })
	_, err = rt.RunProgram(p.prog)
	timer.Stop()
	rt.ClearInterrupt()
	if err != nil {
		return nil, fmt.Errorf("running %s: %s", p.path, describe(err))
	}
	v.bind()
	return v, nil
}

// bind finds the script's functions under the names the program
// recorded (none yet in the probe runtime that records them).
func (v *vm) bind() {
	for f, name := range v.prog.names {
		if name == "" {
			continue
		}
		if c, ok := goja.AssertFunction(v.rt.Get(name)); ok {
			v.fns[f] = c
		}
	}
}

// defines reports whether the script defines a global function name:
// publish is the broker's helper until the script defines its own.
func (v *vm) defines(name string) bool {
	val := v.rt.Get(name)
	if _, ok := goja.AssertFunction(val); !ok {
		return false
	}
	return !val.SameAs(v.publishFn)
}

// setGlobals installs what scripts may use: mqtt.match, mqtt.publish,
// log, config, and publish (mqtt.publish's old name, which a script's own
// publish function replaces).
func (v *vm) setGlobals() error {
	rt := v.rt
	mqtt := rt.NewObject()
	// A native function, not a reflected one: it is on every ACL's path.
	_ = mqtt.Set("match", func(call goja.FunctionCall) goja.Value {
		return rt.ToValue(topics.MatchFilter(call.Argument(0).String(), call.Argument(1).String()))
	})
	v.publishFn = rt.ToValue(v.publish).ToObject(rt)
	_ = mqtt.Set("publish", v.publishFn)
	logObj := rt.NewObject()
	for _, lv := range []struct {
		name  string
		level slog.Level
	}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}} {
		_ = logObj.Set(lv.name, func(call goja.FunctionCall) goja.Value {
			v.scriptLog(lv.level, call.Arguments)
			return goja.Undefined()
		})
	}
	if err := rt.Set("mqtt", mqtt); err != nil {
		return err
	}
	if err := rt.Set("log", logObj); err != nil {
		return err
	}
	if err := rt.Set("config", freezeValue(rt, v.lim.config)); err != nil {
		return err
	}
	if err := rt.Set("publish", v.publishFn); err != nil {
		return err
	}
	if err := v.makeClientProto(); err != nil {
		return err
	}
	// Nothing a script is handed may be changed by it.
	_, err := rt.RunString(`Object.freeze(mqtt); Object.freeze(log);`)
	return err
}

// makeClientProto makes the client objects' prototype: a client converts
// to its client ID in a string context (deliver's first argument was the
// subscriber's ID before it was its client). Symbol.toPrimitive answers
// the conversion in one native call, where toString alone would take
// valueOf's first.
func (v *vm) makeClientProto() error {
	rt := v.rt
	id := func(call goja.FunctionCall) goja.Value {
		if o, ok := call.This.(*goja.Object); ok {
			if co, ok := o.Export().(*clientObject); ok {
				return co.Get("clientId")
			}
			return o.Get("clientId")
		}
		return goja.Undefined()
	}
	proto := rt.NewObject()
	if err := proto.DefineDataPropertySymbol(goja.SymToPrimitive, rt.ToValue(id), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
		return err
	}
	if err := proto.DefineDataProperty("toString", rt.ToValue(id), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
		return err
	}
	freeze, _ := goja.AssertFunction(rt.Get("Object").ToObject(rt).Get("freeze"))
	if _, err := freeze(goja.Undefined(), proto); err != nil {
		return err
	}
	v.clientProto = proto
	return nil
}

// scriptLog writes a script's log call: the arguments joined by spaces,
// with the script's file and line.
func (v *vm) scriptLog(level slog.Level, args []goja.Value) {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = a.String()
	}
	attrs := []any{"script", filepath.Base(v.prog.path)}
	if frames := v.rt.CaptureCallStack(2, nil); len(frames) > 1 {
		attrs = append(attrs, "line", frames[1].Position().Line)
	}
	v.lim.log.Log(context.Background(), level, strings.Join(parts, " "), attrs...)
}

// publish is the script's publish(topic, payload, {qos, retain}).
func (v *vm) publish(call goja.FunctionCall) goja.Value {
	if v.lim.publish == nil {
		panic(v.rt.NewGoError(errors.New("publish: the hook is not running in a broker")))
	}
	m := core.InlineMessage{Topic: call.Argument(0).String()}
	payload, err := v.payloadOf(call.Argument(1))
	if err != nil {
		panic(v.rt.NewTypeError("publish: payload: %s", err))
	}
	m.Payload = payload
	if opts, ok := call.Argument(2).(*goja.Object); ok {
		if q := opts.Get("qos"); q != nil && !goja.IsUndefined(q) {
			n := q.ToInteger()
			if n < 0 || n > 2 {
				panic(v.rt.NewTypeError("publish: qos %d is not 0, 1 or 2", n))
			}
			m.QoS = byte(n)
		}
		if r := opts.Get("retain"); r != nil {
			m.Retain = r.ToBoolean()
		}
	}
	if err := v.lim.publish(m); err != nil {
		panic(v.rt.NewGoError(err))
	}
	return goja.Undefined()
}

// payloadOf converts a script value to a payload: a string (UTF-8), an
// ArrayBuffer or a typed array's bytes.
func (v *vm) payloadOf(val goja.Value) ([]byte, error) {
	if val == nil || goja.IsUndefined(val) || goja.IsNull(val) {
		return nil, nil
	}
	switch x := val.Export().(type) {
	case string:
		return []byte(x), nil
	case goja.ArrayBuffer:
		return append([]byte(nil), x.Bytes()...), nil
	case []byte:
		return append([]byte(nil), x...), nil
	}
	if o, ok := val.(*goja.Object); ok {
		// A typed array or DataView: the bytes of its view only.
		if buf, ok := o.Get("buffer").Export().(goja.ArrayBuffer); ok {
			b := buf.Bytes()
			off, n := o.Get("byteOffset").ToInteger(), o.Get("byteLength").ToInteger()
			if off < 0 || n < 0 || off+n > int64(len(b)) {
				return nil, fmt.Errorf("a view outside its buffer")
			}
			return append([]byte(nil), b[off:off+n]...), nil
		}
	}
	return nil, fmt.Errorf("a %s, want a string or bytes", typeName(val))
}

// arm starts a call's clock; disarm stops it and clears an interrupt
// that came too late to matter, so it cannot hit the next call.
func (v *vm) arm() {
	v.mu.Lock()
	v.deadline = time.Now().Add(v.lim.timeout)
	v.mu.Unlock()
}

func (v *vm) disarm() {
	v.mu.Lock()
	v.deadline = time.Time{}
	v.rt.ClearInterrupt()
	v.mu.Unlock()
}

// overdue interrupts the call under way if it is past its deadline.
func (v *vm) overdue(now time.Time) {
	v.mu.Lock()
	if !v.deadline.IsZero() && now.After(v.deadline) {
		v.rt.Interrupt(errTimeout)
		v.deadline = time.Time{}
	}
	v.mu.Unlock()
}

// call runs a script function with the timeout armed.
func (v *vm) call(f fn, args ...goja.Value) (goja.Value, error) {
	v.arm()
	res, err := v.fns[f](goja.Undefined(), args...)
	v.disarm()
	return res, err
}

// describe turns a script error into a message with the script's file and
// line: an exception's message and where it was thrown, a timeout, or a
// call stack too deep.
func describe(err error) string {
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		return "timed out" + traceTail(ie.String())
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		return fmt.Sprintf("call stack deeper than %d calls%s", maxStack, where(so.Stack()))
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		if ex.Value() == nil {
			return strings.TrimSpace(ex.Error())
		}
		return ex.Value().String() + where(ex.Stack())
	}
	return err.Error()
}

// traceTail is the innermost frame of a goja stack trace text, as " at
// FUNCTION (FILE:LINE:COLUMN)".
func traceTail(trace string) string {
	for _, line := range strings.Split(trace, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "at "); ok {
			return " at " + rest
		}
	}
	return ""
}

// where is " at FILE:LINE:COLUMN" of the innermost frame in the script
// (not in the broker's prelude).
func where(frames []goja.StackFrame) string {
	for _, f := range frames {
		pos := f.Position()
		if pos.Line > 0 && pos.Filename != "" {
			return fmt.Sprintf(" at %s:%d:%d", pos.Filename, pos.Line, pos.Column)
		}
	}
	return ""
}

// typeName names a script value's type for messages.
func typeName(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if o, ok := v.(*goja.Object); ok {
		if _, ok := goja.AssertFunction(o); ok {
			return "function"
		}
		if o.ClassName() == "Array" {
			return "array"
		}
		return "object"
	}
	return v.ExportType().Kind().String()
}
