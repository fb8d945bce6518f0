package moderation

import (
	"errors"
	"strings"
	"testing"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/store"
)

// The rules of a report's fields hold in the domain whatever the
// transport checked before.
func TestCheckReport(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		in        ReportInput
		wantField string // "" when the input is fine
		wantText  string // what the cleaned details must be
	}{
		{"reason and no details", ReportInput{Reason: store.ReasonSpam}, "", ""},
		{"details trimmed", ReportInput{Reason: store.ReasonHate, Details: "  slur \n"}, "", "slur"},
		{"no reason", ReportInput{Details: "x"}, "reason", ""},
		{"unknown reason", ReportInput{Reason: "boring"}, "reason", ""},
		{"other needs details", ReportInput{Reason: store.ReasonOther}, "details", ""},
		{"other with blank details", ReportInput{Reason: store.ReasonOther, Details: " \t "}, "details", ""},
		{"other with details", ReportInput{Reason: store.ReasonOther, Details: "fake giveaway"}, "", "fake giveaway"},
		{"1000 characters", ReportInput{Reason: store.ReasonSpam, Details: strings.Repeat("ж", MaxDetailsLen)}, "", strings.Repeat("ж", MaxDetailsLen)},
		{"1001 characters", ReportInput{Reason: store.ReasonSpam, Details: strings.Repeat("x", MaxDetailsLen+1)}, "details", ""},
		{"NUL", ReportInput{Reason: store.ReasonSpam, Details: "a\x00b"}, "details", ""},
		{"invalid UTF-8", ReportInput{Reason: store.ReasonSpam, Details: "a\xffb"}, "details", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := checkReport(c.in)
			if c.wantField == "" {
				if err != nil || got.Details != c.wantText {
					t.Fatalf("checkReport(%+v) = %+v, %v", c.in, got, err)
				}
				return
			}
			var fe *flock.Error
			if !errors.As(err, &fe) || fe.Code != flock.EINVALID || fe.Field != c.wantField || fe.Message == "" {
				t.Fatalf("checkReport(%+v) error = %v, want invalid_argument on %s", c.in, err, c.wantField)
			}
		})
	}
}
