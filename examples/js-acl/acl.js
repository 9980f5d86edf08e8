// acl.js: the access rules of the js-acl example, for vanemq's js hook.
//
// The hook calls the functions of this file by name, for every client
// (connect), every PUBLISH (authorizePublish) and every filter of every
// SUBSCRIBE (authorizeSubscribe). Each returns
//
//   true                              allowed
//   {allow: false, reason: "..."}     refused: MQTT 5 clients get reason code
//                                     0x87 (Not authorized) and the reason
//   undefined (no return)             no opinion: the next hook decides
//
// The rules:
//
//   - Every user owns users/{username}/#: publish and subscribe.
//   - Admins (config.vars.admins, in vanemq.yaml) may also subscribe to
//     everything, $SYS/# included. They publish like everyone else.
//   - Devices are clients whose username starts with "device-"; their client
//     ID must be their username. A device publishes to
//     devices/{clientId}/telemetry only, and subscribes to
//     devices/{clientId}/commands/# only.
//   - $SYS is the broker's: nobody publishes there, and only admins read it.
//   - Anything else is refused, with a reason.
//
// Edit this file and save it: the broker reloads it within a moment
// (SIGHUP reloads it too). A file that does not compile, or throws while
// loading, is refused and the rules in force stay; the log says why, with
// the file, line and column. docs/javascript.md describes the whole API.
//
// The script runs in several runtimes at once, one call at a time in each:
// keep no state in globals that one call writes and another reads. Each call
// must finish within the hook's timeout (10ms in vanemq.yaml), or it fails,
// and a failed decision refuses (on_failure: deny).

"use strict";

// ---- Settings ---------------------------------------------------------------

// The admins' usernames, from the hook's config block in vanemq.yaml
// (hooks[].config.vars.admins). Checked when the script loads: throwing here
// makes the broker refuse this script (at start-up: it does not start; on a
// reload: the previous script stays in force).
var ADMINS = config.vars.admins || [];
if (!Array.isArray(ADMINS) || !ADMINS.every(function (a) { return typeof a === "string" && validName(a); })) {
	throw new Error("config.vars.admins must be a list of usernames without '/', '+' or '#'");
}

// Usernames that start with this are devices, with the device rules only.
var DEVICE_PREFIX = "device-";
ADMINS.forEach(function (a) {
	if (a.indexOf(DEVICE_PREFIX) === 0) {
		throw new Error("config.vars.admins: " + a + " is a device name; a device cannot be an admin");
	}
});

// Topic filters that every user (not devices) may publish and subscribe to,
// next to their own users/{username}/#. None here; to open a public area for
// everyone, make it ["public/#"] and save.
var SHARED = [];

// ---- Rules ------------------------------------------------------------------

// connect runs once per connection, after authentication. It refuses the
// names the rules below cannot handle safely, and returns undefined (no
// opinion) for the others, so that the hooks after this one still run. (Its
// second argument, the client's policy, which it could set, is not needed
// here.)
function connect(client) {
	var user = client.username;
	if (user === "") {
		return refuse(client, "connect", "", "a username is required", 0x86); // Bad User Name or Password
	}
	if (!validName(user)) {
		// "users/" + "a+b" + "/#" would be a filter over other users' topics.
		return refuse(client, "connect", "", "a username must not contain '/', '+' or '#'", 0x86);
	}
	if (isDevice(client) && client.clientId !== user) {
		// The device's topics are named by its client ID; the username is what
		// an authentication hook vouches for. They must be the same.
		log.warn("device", user, "connected with client ID", client.clientId, "from", client.remoteAddr);
		return refuse(client, "connect", "", "a device's client ID must be its username", 0x85); // Client Identifier not valid
	}
	return undefined;
}

// authorizePublish decides one PUBLISH. msg.topic never holds wildcards.
function authorizePublish(client, msg) {
	var topic = msg.topic;
	if (isSys(topic)) {
		return refuse(client, "publish", topic, "$SYS topics are the broker's");
	}
	if (isDevice(client)) {
		var telemetry = "devices/" + client.clientId + "/telemetry";
		if (topic === telemetry) {
			return true;
		}
		return refuse(client, "publish", topic, "a device may publish to " + telemetry + " only");
	}
	// mqtt.match(filter, topic) matches a topic name against a filter, as the
	// broker routes: + is one level, # the rest.
	if (mqtt.match(home(client), topic)) {
		return true;
	}
	for (var i = 0; i < SHARED.length; i++) {
		if (mqtt.match(SHARED[i], topic)) {
			return true;
		}
	}
	return refuse(client, "publish", topic, "publishing to " + topic + " is not allowed; yours is " + home(client));
}

// authorizeSubscribe decides one filter of a SUBSCRIBE (a SUBSCRIBE with
// several filters calls it once per filter).
function authorizeSubscribe(client, sub) {
	var filter = withoutShare(sub.filter);
	if (isAdmin(client)) {
		return true; // admins read everything, $SYS included
	}
	if (isSys(filter)) {
		return refuse(client, "subscribe", sub.filter, "$SYS is for admins only");
	}
	if (isDevice(client)) {
		var commands = "devices/" + client.clientId + "/commands/#";
		if (covers(commands, filter)) {
			return true;
		}
		return refuse(client, "subscribe", sub.filter, "a device may subscribe to " + commands + " only");
	}
	if (covers(home(client), filter)) {
		return true;
	}
	for (var i = 0; i < SHARED.length; i++) {
		if (covers(SHARED[i], filter)) {
			return true;
		}
	}
	return refuse(client, "subscribe", sub.filter, "subscribing to " + sub.filter + " is not allowed; yours is " + home(client));
}

// ---- Helpers ----------------------------------------------------------------

// refuse logs a refusal at debug level (the broker logs every refused
// publish at info already; set log.level: debug to see these) and returns
// the refusal. code is the MQTT 5 reason code, 0x87 (Not authorized) when
// left out.
function refuse(client, action, topic, reason, code) {
	var what = topic === "" ? action : action + " " + topic;
	log.debug("refused", what, "for", client.username || "(no username)", "(client " + client.clientId + "):", reason);
	var verdict = {allow: false, reason: reason};
	if (code !== undefined) {
		verdict.code = code;
	}
	return verdict;
}

// home is the filter of the topics a user owns.
function home(client) {
	return "users/" + client.username + "/#";
}

function isAdmin(client) {
	return ADMINS.indexOf(client.username) >= 0;
}

function isDevice(client) {
	return client.username.indexOf(DEVICE_PREFIX) === 0;
}

// validName reports whether a username can be put in a topic filter: not
// empty, and no level separator or wildcard.
function validName(name) {
	return name !== "" && !/[\/+#]/.test(name);
}

// isSys reports whether a topic or filter is in $SYS.
function isSys(t) {
	return t === "$SYS" || t.indexOf("$SYS/") === 0;
}

// withoutShare strips a shared subscription's $share/{group}/ prefix: the
// rules are about the topics a subscription receives, whatever its group.
function withoutShare(filter) {
	if (filter.indexOf("$share/") !== 0) {
		return filter;
	}
	var rest = filter.slice("$share/".length);
	var slash = rest.indexOf("/");
	return slash < 0 ? rest : rest.slice(slash + 1);
}

// covers reports whether every topic that the subscription filter can
// receive matches pattern, so that the subscription stays inside it.
//
// mqtt.match is not enough here: it takes a topic name as its second
// argument, and would compare the filter's wildcards as plain text; with a
// pattern "a/+", it would let the filter "a/#" through, which receives a/x/y.
function covers(pattern, filter) {
	if (filter.charAt(0) === "$" && (pattern.charAt(0) === "+" || pattern.charAt(0) === "#")) {
		return false; // wildcards at the start never match $ topics
	}
	var p = pattern.split("/"), f = filter.split("/");
	for (var i = 0; i < p.length; i++) {
		if (p[i] === "#") {
			return true; // this level and everything below it
		}
		if (i >= f.length || f[i] === "#") {
			return false; // the filter ends early, or reaches wider than the pattern
		}
		if (p[i] !== "+" && p[i] !== f[i]) {
			return false; // a different level, or "+" where the pattern has a name
		}
	}
	return f.length === p.length;
}
