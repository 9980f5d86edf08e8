package js

import (
	"log/slog"
	"regexp"
)

// deliver's first argument was the subscriber's client ID, a string; it
// is now the subscriber's client object (issue 17). The object converts
// to the ID in a string context, so "x/" + client and client == "id" go
// on working; what does not is treating it as a string otherwise:
// client === "id" is false for every client, silently, and a string
// method throws. The script is looked at when it loads, and a deliver
// function that does either gets a warning naming the use.

// oldDeliverUse returns a use, in a deliver function's source, of its
// first parameter as the string it no longer is: a strict comparison, a
// typeof, or a string method. ok is false when there is none, or no
// parameter.
func oldDeliverUse(src string) (param, use string, ok bool) {
	m := paramRe.FindStringSubmatch(src)
	if m == nil {
		return "", "", false
	}
	param = m[1]
	if param == "" {
		param = m[2]
	}
	q := regexp.QuoteMeta(param)
	for _, re := range []string{
		`\b(typeof\s*\(?\s*` + q + `)(?:[^\w$.\[(]|$)`,          // typeof client
		`(?:^|[^\w$.])(` + q + `\s*[!=]==)`,                     // client === "id"
		`([!=]==\s*` + q + `)(?:[^\w$.\[(]|$)`,                  // "id" === client
		`(?:^|[^\w$.])(` + q + `\s*\.\s*` + stringMethods + `)`, // client.indexOf(…)
	} {
		if u := regexp.MustCompile(re).FindStringSubmatch(src); u != nil {
			return param, u[1], true
		}
	}
	return param, "", false
}

// paramRe finds a function's first parameter: function f(a, …), (a, …) =>
// or a => (the async forms too).
var paramRe = regexp.MustCompile(`^\s*(?:async\s+)?(?:(?:function\b[^(]*)?\(\s*([A-Za-z_$][\w$]*)|([A-Za-z_$][\w$]*)\s*=>)`)

// stringMethods are the string properties a script that took the ID
// would use.
const stringMethods = `(?:indexOf|lastIndexOf|startsWith|endsWith|includes|slice|substring|substr|split|length|` +
	`toUpperCase|toLowerCase|match|matchAll|replace|replaceAll|charAt|charCodeAt|trim|search|concat|localeCompare)\b`

// warnOldDeliver logs a warning when the script's deliver function (as the
// probe runtime defines it, under name) uses its first argument as the ID
// string it was before.
func (v *vm) warnOldDeliver(name string, log *slog.Logger) {
	param, use, ok := oldDeliverUse(v.rt.Get(name).String())
	if !ok {
		return
	}
	log.Warn("deliver's first argument is the subscriber's client object, no longer its client ID: "+
		"compare "+param+".clientId (a string only in a string context: "+param+` == "id" and "x/" + `+param+` work, === and string methods do not)`,
		"script", v.prog.path, "function", name, "use", use)
}
