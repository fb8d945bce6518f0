// Command openapioverlay adds to the OpenAPI document that protoc-gen-openapi
// writes what it cannot know from the protos: the bearer security scheme
// (and which RPCs need no token), the plain-HTTP endpoints, and the order of
// the tags. make generate runs it:
//
//	go run ./tools/openapioverlay -overlay tools/openapioverlay/overlay.yaml gen/openapi/openapi.yaml > server/openapi.yaml
//
// The overlay (see overlay.yaml) has four keys:
//
//	add               merged into the document: a mapping key the document
//	                  lacks is added, one it has is merged when both values
//	                  are mappings and an error otherwise (nothing generated
//	                  is silently replaced)
//	tags              tags appended to the document's tags
//	publicOperations  operationIds that need no token: each gets security: []
//	tagOrder          every tag of the document, in the order to show them
//
// The output is deterministic: the document's own order is kept, added
// paths are placed in sorted order among the generated ones, and it is
// written as protoc-gen-openapi writes it (YAML, four-space indent). An
// operationId or tag that the overlay names and the document lacks is an
// error, so that a renamed RPC fails make generate instead of leaving the
// reference wrong.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"

	"go.yaml.in/yaml/v3"
)

func main() {
	overlayPath := flag.String("overlay", "", "the overlay YAML file")
	flag.Parse()
	if *overlayPath == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: openapioverlay -overlay overlay.yaml openapi.yaml > out.yaml")
		os.Exit(2)
	}
	out, err := run(*overlayPath, flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapioverlay:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

// overlay is the hand-written part.
type overlay struct {
	Add              yaml.Node `yaml:"add"`
	Tags             yaml.Node `yaml:"tags"`
	PublicOperations []string  `yaml:"publicOperations"`
	TagOrder         []string  `yaml:"tagOrder"`
}

func run(overlayPath, docPath string) ([]byte, error) {
	var ov overlay
	if err := decodeFile(overlayPath, &ov); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := decodeFile(docPath, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", docPath)
	}
	root := doc.Content[0]

	if ov.Add.Kind != 0 {
		if err := merge(root, &ov.Add, ""); err != nil {
			return nil, err
		}
	}
	if paths := get(root, "paths"); paths != nil {
		sortMapping(paths)
	}
	if err := markPublic(root, ov.PublicOperations); err != nil {
		return nil, err
	}
	if err := orderTags(root, &ov.Tags, ov.TagOrder); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// set sets key in mapping m to v, appending it when m lacks it.
func set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// merge adds the keys of mapping src to mapping dst, recursively.
func merge(dst, src *yaml.Node, at string) error {
	if dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: the document has it already and one of the two is not a mapping", at)
	}
	for i := 0; i+1 < len(src.Content); i += 2 {
		key, val := src.Content[i].Value, src.Content[i+1]
		clearStyle(val)
		if have := get(dst, key); have != nil {
			if err := merge(have, val, at+"/"+key); err != nil {
				return err
			}
			continue
		}
		set(dst, key, val)
	}
	return nil
}

// clearStyle writes what the overlay says in flow style ({...}, [...]) in
// block style, like the generated document, and drops its comments.
func clearStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// sortMapping orders the keys of m (paths, which protoc-gen-openapi sorts).
func sortMapping(m *yaml.Node) {
	type pair struct{ k, v *yaml.Node }
	var pairs []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		pairs = append(pairs, pair{m.Content[i], m.Content[i+1]})
	}
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].k.Value < pairs[j].k.Value })
	m.Content = m.Content[:0]
	for _, p := range pairs {
		m.Content = append(m.Content, p.k, p.v)
	}
}

// markPublic gives each operation in ids an empty security requirement, so
// that it is sent without the token the document asks for elsewhere.
func markPublic(root *yaml.Node, ids []string) error {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	paths := get(root, "paths")
	if paths == nil {
		return errors.New("the document has no paths")
	}
	for i := 1; i < len(paths.Content); i += 2 {
		item := paths.Content[i]
		for j := 1; j < len(item.Content); j += 2 {
			op := item.Content[j]
			if op.Kind != yaml.MappingNode {
				continue
			}
			id := get(op, "operationId")
			if id == nil || !want[id.Value] {
				continue
			}
			set(op, "security", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"})
			delete(want, id.Value)
		}
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for id := range want {
			missing = append(missing, id)
		}
		slices.Sort(missing)
		return fmt.Errorf("publicOperations names operations the document lacks: %v", missing)
	}
	return nil
}

// orderTags appends extra to the document's tags and puts them in order,
// which must name each of them once.
func orderTags(root, extra *yaml.Node, order []string) error {
	tags := get(root, "tags")
	if tags == nil {
		tags = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		set(root, "tags", tags)
	}
	if extra.Kind == yaml.SequenceNode {
		clearStyle(extra)
		tags.Content = append(tags.Content, extra.Content...)
	}
	byName := map[string]*yaml.Node{}
	for _, t := range tags.Content {
		name := get(t, "name")
		if name == nil {
			return errors.New("a tag has no name")
		}
		byName[name.Value] = t
	}
	var sorted []*yaml.Node
	for _, name := range order {
		t, ok := byName[name]
		if !ok {
			return fmt.Errorf("tagOrder names %q, which is no tag of the document", name)
		}
		sorted = append(sorted, t)
		delete(byName, name)
	}
	if len(byName) > 0 {
		var left []string
		for name := range byName {
			left = append(left, name)
		}
		slices.Sort(left)
		return fmt.Errorf("tagOrder leaves out the tags %v", left)
	}
	tags.Content = sorted
	return nil
}
