package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// user is one entry of a JSON users file.
type user struct {
	Username     string `json:"username"`
	PasswordHash string `json:"password_hash"`
}

// loadUsers reads a users file: a JSON list of {username, password_hash},
// or, when the name ends in .csv, lines of "username,bcrypt-hash" (lines
// starting with # are comments; a first line "username,password_hash" is
// a header). It returns the hashes by user name and the commonest bcrypt
// cost among them. Every problem is reported, with its entry or line;
// hashes are never quoted.
func loadUsers(path string) (map[string][]byte, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("users file: %w", err)
	}
	var entries []user
	var where []string // where each entry is, for errors
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		entries, where, err = parseCSV(data)
	} else {
		entries, where, err = parseJSON(data)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("users file %s: %w", path, err)
	}
	users := make(map[string][]byte, len(entries))
	costs := make(map[int]int)
	var errs []error
	for i, e := range entries {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("users file %s: %s: %s", path, where[i], fmt.Sprintf(format, args...)))
		}
		cost, err := bcrypt.Cost([]byte(e.PasswordHash))
		switch {
		case e.Username == "":
			bad("empty user name")
		case users[e.Username] != nil:
			bad("user %q listed twice", e.Username)
		case err != nil || len(e.PasswordHash) != 60:
			bad("user %q: password_hash is not a bcrypt hash ($2a$10$ and 53 more characters)", e.Username)
		default:
			users[e.Username] = []byte(e.PasswordHash)
			costs[cost]++
		}
	}
	if len(errs) > 0 {
		return nil, 0, errors.Join(errs...)
	}
	common := bcrypt.DefaultCost
	for c, n := range costs {
		if n > costs[common] || n == costs[common] && c < common {
			common = c
		}
	}
	return users, common, nil
}

// parseJSON parses a JSON users file, strictly: unknown keys are errors.
func parseJSON(data []byte) ([]user, []string, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var entries []user
	if err := d.Decode(&entries); err != nil {
		return nil, nil, fmt.Errorf("want a JSON list of {\"username\", \"password_hash\"}: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("data after the JSON list")
	}
	where := make([]string, len(entries))
	for i := range entries {
		where[i] = fmt.Sprintf("entry %d", i+1)
	}
	return entries, where, nil
}

// parseCSV parses a CSV users file.
func parseCSV(data []byte) ([]user, []string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = 2
	r.TrimLeadingSpace = true
	var entries []user
	var where []string
	for first := true; ; first = false {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if first && rec[0] == "username" && rec[1] == "password_hash" {
			continue
		}
		line, _ := r.FieldPos(0)
		entries = append(entries, user{Username: rec[0], PasswordHash: strings.TrimSpace(rec[1])})
		where = append(where, fmt.Sprintf("line %d", line))
	}
	return entries, where, nil
}
