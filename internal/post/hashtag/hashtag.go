// Package hashtag finds the hashtags of a post's text and gives them the
// one stored form that searches match. It imports nothing of Flock's, so
// its fuzz target builds without the store (.ci/run).
package hashtag

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Hashtag limits.
const (
	MaxLen     = 100 // runes; longer tags are not indexed
	MaxPerPost = 30  // further tags in one post are not indexed
)

// Find returns the normalised hashtags of content in order of first
// appearance, without duplicates. A hashtag is '#' followed by letters,
// marks, digits or underscores, with at least one letter, in any script
// (#café, #日本語); punctuation or space ends it. A '#' right after a word
// character ("a#b", "&#38;") does not start one.
func Find(content string) []string {
	var (
		tags []string
		seen = map[string]bool{}
		prev rune
	)
	for i := 0; i < len(content); {
		r, size := utf8.DecodeRuneInString(content[i:])
		if r != '#' || isTagRune(prev) || prev == '#' {
			prev = r
			i += size
			continue
		}
		j := i + size
		letter := false
		for j < len(content) {
			r2, s2 := utf8.DecodeRuneInString(content[j:])
			if !isTagRune(r2) {
				break
			}
			letter = letter || unicode.IsLetter(r2)
			j += s2
		}
		if tag := Normalize(content[i+size : j]); letter && tag != "" && !seen[tag] && utf8.RuneCountInString(tag) <= MaxLen {
			seen[tag] = true
			tags = append(tags, tag)
			if len(tags) == MaxPerPost {
				break
			}
		}
		prev = '#'
		if j > i+size {
			prev, _ = utf8.DecodeLastRuneInString(content[:j])
		}
		i = j
	}
	return tags
}

// Normalize returns the stored form of a hashtag: without a leading
// '#', in Unicode NFC, lower-case. Searches normalise their query the same
// way, so letter case and composed/decomposed accents never matter.
func Normalize(tag string) string {
	tag = strings.TrimPrefix(strings.TrimSpace(tag), "#")
	return strings.ToLower(norm.NFC.String(tag))
}

func isTagRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}
