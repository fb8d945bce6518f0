package hashtag_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flock-social/flock/internal/post/hashtag"
)

func TestFind_UnicodeAware(t *testing.T) {
	cases := map[string][]string{
		"Loving #Go and #golang!":                {"go", "golang"},
		"#café au lait, #日本語のテキスト。":              {"café", "日本語のテキスト"},
		"end of sentence #done.":                 {"done"},
		"#a,#b;#c:#d":                            {"a", "b", "c", "d"},
		"duplicates #Go #GO #go":                 {"go"},
		"not tags: a#b &#38; ## #123 #_ #":       nil,
		"mixed #v2 #2024goals":                   {"v2", "2024goals"},
		"combining #cafe\u0301":                  {"café"}, // decomposed é becomes the composed form
		"emoji ends it #party🎉time":              {"party"},
		"underscore_joins #snake_case_tag-after": {"snake_case_tag"},
		"Ünïcödé #ÜBER #Straße":                  {"über", "straße"},
		"in (#parens) and \"#quotes\"":           {"parens", "quotes"},
	}
	for in, want := range cases {
		if got := hashtag.Find(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Find(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFind_Limits_P13(t *testing.T) {
	long := "#" + strings.Repeat("x", hashtag.MaxLen+1)
	if got := hashtag.Find(long + " #ok"); !reflect.DeepEqual(got, []string{"ok"}) {
		t.Errorf("over-long tag indexed: %q", got)
	}
	var many []string
	for i := range 50 {
		many = append(many, "#tag"+strings.Repeat("x", i))
	}
	if got := hashtag.Find(strings.Join(many, " ")); len(got) != hashtag.MaxPerPost {
		t.Errorf("%d tags indexed, want at most %d", len(got), hashtag.MaxPerPost)
	}
}

func TestNormalize_SearchMatchesStoredForm(t *testing.T) {
	for _, q := range []string{"#Café", "café", "CAFÉ", " #cafe\u0301 "} {
		if got := hashtag.Normalize(q); got != "café" {
			t.Errorf("Normalize(%q) = %q", q, got)
		}
	}
}

func FuzzFind(f *testing.F) {
	for _, s := range []string{"#go", "a#b #c", "#café #日本語", "##x", "#\u0301", "#x\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags := hashtag.Find(s)
		if len(tags) > hashtag.MaxPerPost {
			t.Fatalf("%d tags", len(tags))
		}
		seen := map[string]bool{}
		for _, tag := range tags {
			if tag == "" || seen[tag] || strings.HasPrefix(tag, "#") || utf8.RuneCountInString(tag) > hashtag.MaxLen {
				t.Fatalf("bad tag %q in %q", tag, tags)
			}
			if hashtag.Normalize(tag) != tag {
				t.Fatalf("tag %q is not in normal form", tag)
			}
			seen[tag] = true
		}
	})
}
