package post_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flock-social/flock/internal/post"
)

func TestHashtags_UnicodeAware(t *testing.T) {
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
		if got := post.Hashtags(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Hashtags(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHashtags_Limits_P13(t *testing.T) {
	long := "#" + strings.Repeat("x", post.MaxHashtagLen+1)
	if got := post.Hashtags(long + " #ok"); !reflect.DeepEqual(got, []string{"ok"}) {
		t.Errorf("over-long tag indexed: %q", got)
	}
	var many []string
	for i := range 50 {
		many = append(many, "#tag"+strings.Repeat("x", i))
	}
	if got := post.Hashtags(strings.Join(many, " ")); len(got) != post.MaxPostHashtags {
		t.Errorf("%d tags indexed, want at most %d", len(got), post.MaxPostHashtags)
	}
}

func TestNormalizeHashtag_SearchMatchesStoredForm(t *testing.T) {
	for _, q := range []string{"#Café", "café", "CAFÉ", " #cafe\u0301 "} {
		if got := post.NormalizeHashtag(q); got != "café" {
			t.Errorf("NormalizeHashtag(%q) = %q", q, got)
		}
	}
}

func FuzzHashtags(f *testing.F) {
	for _, s := range []string{"#go", "a#b #c", "#café #日本語", "##x", "#\u0301", "#x\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags := post.Hashtags(s)
		if len(tags) > post.MaxPostHashtags {
			t.Fatalf("%d tags", len(tags))
		}
		seen := map[string]bool{}
		for _, tag := range tags {
			if tag == "" || seen[tag] || strings.HasPrefix(tag, "#") || utf8.RuneCountInString(tag) > post.MaxHashtagLen {
				t.Fatalf("bad tag %q in %q", tag, tags)
			}
			if post.NormalizeHashtag(tag) != tag {
				t.Fatalf("tag %q is not in normal form", tag)
			}
			seen[tag] = true
		}
	})
}
