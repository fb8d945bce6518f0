package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// consumerModules are the only modules a program using the SDK may have in
// its module graph: the SDK, the generated code, Connect, protobuf, the
// generated protovalidate and google.api annotations the generated code
// registers, and what those list in their own go.mod files.
var consumerModules = []string{
	"example.com/consumer",
	"github.com/flock-social/flock/client/go",
	"github.com/flock-social/flock/gen/go",
	"connectrpc.com/connect",
	"google.golang.org/protobuf",
	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go",
	"google.golang.org/genproto/googleapis/api",
	"google.golang.org/genproto/googleapis/rpc",
	"google.golang.org/grpc",
	"github.com/golang/protobuf",
	"github.com/google/go-cmp",
	"golang.org/x/net",
	"golang.org/x/sys",
	"golang.org/x/text",
}

// goProgram is a fenced go block of a Markdown file that is a whole program.
var goProgram = regexp.MustCompile("(?s)```go\n(package main\n.*?)```")

// A program outside the repository builds against the SDK exactly as
// docs/sdk-go.md says (its program, go mod init, the replace lines for a
// checkout, go mod tidy), and its module graph holds Connect and protobuf,
// none of the server: no SQLite, River, Postgres, Redis or cloud SDKs.
// It needs the Go module proxy (GOPROXY and GOFLAGS are taken from the
// environment) unless the module cache has those modules.
func TestConsumer_BuildsOutsideTheRepoWithOnlyConnectAndProtobuf(t *testing.T) {
	root := repoRoot()
	if root == "" {
		t.Skip("not in a Flock checkout")
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "sdk-go.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := goProgram.FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/sdk-go.md has no complete program (a go block starting with package main)")
	}
	if !strings.Contains(string(doc), "go get github.com/flock-social/flock/client/go@latest") {
		t.Error("docs/sdk-go.md does not say to go get github.com/flock-social/flock/client/go@latest")
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), m[1], 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"))
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	goCmd("mod", "init", "example.com/consumer")
	goCmd("mod", "edit",
		"-replace", "github.com/flock-social/flock/client/go="+filepath.Join(root, "client", "go"),
		"-replace", "github.com/flock-social/flock/gen/go="+filepath.Join(root, "gen", "go"))
	goCmd("mod", "tidy")
	goCmd("build", "-o", filepath.Join(dir, "consumer"), ".")
	goCmd("vet", ".")

	allowed := map[string]bool{}
	for _, p := range consumerModules {
		allowed[p] = true
	}
	list := goCmd("list", "-m", "-f", "{{.Path}}", "all")
	var extra []string
	for _, p := range strings.Fields(list) {
		if !allowed[p] {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		t.Errorf("a consumer of the SDK gets modules beyond Connect and protobuf: %s\n"+
			"(the SDK and gen/go must not import the server; see docs/development.md#modules)\ngo list -m all:\n%s",
			strings.Join(extra, ", "), list)
	}
	for _, p := range []string{"github.com/flock-social/flock/client/go", "github.com/flock-social/flock/gen/go", "connectrpc.com/connect"} {
		if !strings.Contains(list, p+"\n") {
			t.Errorf("go list -m all lacks %s:\n%s", p, list)
		}
	}
}
