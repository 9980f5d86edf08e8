// Package jsacl is the js-acl example: access rules for vanemq written in
// JavaScript (acl.js), run by the js hook from the vanemq binary's config
// file (vanemq.yaml). It holds no Go code but its tests, which run the
// example in process and as the vanemq binary. See README.md.
package jsacl
