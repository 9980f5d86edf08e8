package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		why  string
	}{
		{"a", true, ""},
		{"sport/tennis/player1", true, ""},
		{"/", true, "a lone separator is two empty levels"},
		{"a//b", true, "empty levels are allowed"},
		{"/leading", true, ""},
		{"trailing/", true, ""},
		{"$SYS/broker/uptime", true, "'$' topics are valid names"},
		{"caf\u00e9/\u00fcber", true, ""},
		{"a b", true, "spaces are valid"},
		{strings.Repeat("x", MaxTopicLength), true, "[MQTT-4.7.3-3] limit itself"},
		{"", false, "[MQTT-4.7.3-1] at least one character"},
		{"a/+", false, "[MQTT-4.7.0-1] no wildcards in names"},
		{"+", false, "[MQTT-4.7.0-1]"},
		{"a/#", false, "[MQTT-4.7.0-1]"},
		{"a#b", false, "[MQTT-4.7.0-1] even inside a level"},
		{"sport+", false, "[MQTT-4.7.0-1]"},
		{"a\x00b", false, "[MQTT-4.7.3-2] no U+0000"},
		{strings.Repeat("x", MaxTopicLength+1), false, "[MQTT-4.7.3-3] at most 65535 bytes"},
	}
	for _, tt := range tests {
		err := ValidateTopicName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateTopicName(%.40q) = %v, want ok=%v (%s)", tt.name, err, tt.ok, tt.why)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopicName) {
			t.Errorf("ValidateTopicName(%.40q) = %v, does not wrap ErrInvalidTopicName", tt.name, err)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
		why    string
	}{
		// Valid filters; the examples come from §4.7.1 of both specifications.
		{"sport/tennis/player1", true, ""},
		{"#", true, "[MQTT-4.7.1-2] '#' on its own"},
		{"sport/#", true, "[MQTT-4.7.1-2] '#' after a separator, last"},
		{"sport/tennis/#", true, ""},
		{"+", true, "[MQTT-4.7.1-3] '+' on its own"},
		{"+/tennis/#", true, "'+' and '#' together"},
		{"sport/+/player1", true, "[MQTT-4.7.1-3] '+' as a whole level"},
		{"sport/+", true, "'+' as last level"},
		{"/+", true, "'+' after an empty level"},
		{"+/+", true, ""},
		{"a//b", true, "empty levels"},
		{"/", true, ""},
		{"/#", true, ""},
		{"$SYS/#", true, ""},
		{"$share/g/a", true, "an ordinary filter that happens to look shared"},
		{"", false, "[MQTT-4.7.3-1] at least one character"},
		{"sport/tennis#", false, "[MQTT-4.7.1-2] '#' not after a separator"},
		{"sport/tennis/#/ranking", false, "[MQTT-4.7.1-2] '#' not last"},
		{"#/", false, "[MQTT-4.7.1-2] '#' followed by an empty level"},
		{"##", false, "[MQTT-4.7.1-2]"},
		{"a/#b", false, "[MQTT-4.7.1-2]"},
		{"sport+", false, "[MQTT-4.7.1-3] '+' not a whole level"},
		{"sport/+player", false, "[MQTT-4.7.1-3]"},
		{"++", false, "[MQTT-4.7.1-3]"},
		{"a/b+/c", false, "[MQTT-4.7.1-3]"},
		{"a/\x00", false, "[MQTT-4.7.3-2] no U+0000"},
		{strings.Repeat("a/", MaxTopicLength/2+1) + "#", false, "[MQTT-4.7.3-3] too long"},
	}
	for _, tt := range tests {
		err := ValidateFilter(tt.filter)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateFilter(%.40q) = %v, want ok=%v (%s)", tt.filter, err, tt.ok, tt.why)
		}
		if err != nil && !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ValidateFilter(%.40q) = %v, does not wrap ErrInvalidFilter", tt.filter, err)
		}
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		filter string
		group  string
		inner  string
		shared bool
		ok     bool
		why    string
	}{
		{"a/b", "", "a/b", false, true, "ordinary filter"},
		{"#", "", "#", false, true, "ordinary filter"},
		{"$SYS/#", "", "$SYS/#", false, true, "ordinary '$' filter"},
		{"$share", "", "$share", false, true, "no '/' after $share: an ordinary filter"},
		{"$sharex/g/a", "", "$sharex/g/a", false, true, "prefix must be exactly $share/"},
		{"$SHARE/g/a", "", "$SHARE/g/a", false, true, "case-sensitive"},
		{"$share/g/a/b", "g", "a/b", true, true, ""},
		{"$share/group1/sport/+/player1", "group1", "sport/+/player1", true, true, ""},
		{"$share/g/#", "g", "#", true, true, ""},
		{"$share/g/+", "g", "+", true, true, ""},
		{"$share/g//", "g", "/", true, true, "inner filter of two empty levels"},
		{"$share/g/$SYS/#", "g", "$SYS/#", true, true, ""},
		{"$share/$g/a", "$g", "a", true, true, "'$' is allowed in a share name"},
		{"$share/", "", "", true, false, "[MQTT-4.8.2-1] share name at least one character"},
		{"$share//a", "", "", true, false, "[MQTT-4.8.2-1] empty share name"},
		{"$share/g", "", "", true, false, "[MQTT-4.8.2-2] share name followed by '/'"},
		{"$share/g/", "", "", true, false, "[MQTT-4.8.2-2] '/' followed by a filter ([MQTT-4.7.3-1] non-empty)"},
		{"$share/g+/a", "", "", true, false, "[MQTT-4.8.2-2] no '+' in share name"},
		{"$share/+/a", "", "", true, false, "[MQTT-4.8.2-2]"},
		{"$share/g#/a", "", "", true, false, "[MQTT-4.8.2-2] no '#' in share name"},
		{"$share/#", "", "", true, false, "[MQTT-4.8.2-2]"},
		{"$share/g/a/#/b", "", "", true, false, "[MQTT-4.8.2-2] inner filter must be valid"},
		{"$share/g/a+", "", "", true, false, "[MQTT-4.8.2-2] inner filter must be valid"},
	}
	for _, tt := range tests {
		group, inner, shared, err := ParseShared(tt.filter)
		if (err == nil) != tt.ok || shared != tt.shared || group != tt.group || inner != tt.inner {
			t.Errorf("ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, ok=%v (%s)",
				tt.filter, group, inner, shared, err, tt.group, tt.inner, tt.shared, tt.ok, tt.why)
		}
		if err != nil && !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ParseShared(%q) = %v, does not wrap ErrInvalidFilter", tt.filter, err)
		}
	}
}

func TestIsSysTopic(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"$SYS/broker", true},
		{"$", true},
		{"$share/g/a", true},
		{"a/$SYS", false},
		{"", false},
		{"/$SYS", false},
	}
	for _, tt := range tests {
		if got := IsSysTopic(tt.name); got != tt.want {
			t.Errorf("IsSysTopic(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCheckLevels(t *testing.T) {
	deep := strings.Repeat("/", 128) // 129 empty levels
	for _, tc := range []struct {
		name   string
		s      string
		max    int
		filter bool
		want   error
	}{
		{"one level", "a", 1, false, nil},
		{"empty string has one level", "", 1, false, nil},
		{"two levels over one", "a/b", 1, false, ErrInvalidTopicName},
		{"filter over the limit", "a/+/#", 2, true, ErrInvalidFilter},
		{"exactly the limit", "a/b/c", 3, false, nil},
		{"empty levels count", "//", 2, false, ErrInvalidTopicName},
		{"128 levels at 128", strings.Repeat("a/", 127) + "a", 128, false, nil},
		{"129 empty levels at 128", deep, 128, false, ErrInvalidTopicName},
		{"short string is never read as deep", "a/b", 100, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLevels(tc.s, tc.max, tc.filter)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("CheckLevels(%.20q, %d) = %v, want %v", tc.s, tc.max, err, tc.want)
			}
		})
	}
}
