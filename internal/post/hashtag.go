package post

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Hashtag limits.
const (
	MaxHashtagLen   = 100 // runes; longer tags are not indexed
	MaxPostHashtags = 30  // further tags in one post are not indexed
)

// Hashtags returns the normalised hashtags of content in order of first
// appearance, without duplicates. A hashtag is '#' followed by letters,
// marks, digits or underscores, with at least one letter, in any script
// (#café, #日本語); punctuation or space ends it. A '#' right after a word
// character ("a#b", "&#38;") does not start one.
func Hashtags(content string) []string {
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
		if tag := NormalizeHashtag(content[i+size : j]); letter && tag != "" && !seen[tag] && utf8.RuneCountInString(tag) <= MaxHashtagLen {
			seen[tag] = true
			tags = append(tags, tag)
			if len(tags) == MaxPostHashtags {
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

// NormalizeHashtag returns the stored form of a hashtag: without a leading
// '#', in Unicode NFC, lower-case. Searches normalise their query the same
// way, so letter case and composed/decomposed accents never matter.
func NormalizeHashtag(tag string) string {
	tag = strings.TrimPrefix(strings.TrimSpace(tag), "#")
	return strings.ToLower(norm.NFC.String(tag))
}

func isTagRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}
