#!/usr/bin/env bash
# check-deploy.sh: checks the deployment files (Dockerfile, .dockerignore,
# deploy/, docs/deployment.md) with what runs on a machine without a Docker
# engine, hadolint or a Kubernetes cluster. Exits non-zero on any failure;
# prints "skip" for a check it cannot run here, and why.
#
#   scripts/check-deploy.sh            # as root with CI=true it may apt-get install nginx
#
# What it checks:
#   settings     every FLOCK_* name in those files is one server/cmd/flock reads
#   Dockerfile   dockerfile-utils lint (npm); stage rules: the default target is
#                the ffmpeg image, both final stages run as a numeric non-root
#                USER, base images carry a tag; the Debian packages it installs
#                exist in bookworm (apt-cache, on a bookworm machine)
#   context      copies the build context that .dockerignore leaves (Docker's
#                matching rules, @balena/dockerignore from npm) and runs the
#                Dockerfile's go build in it: a static binary that starts
#   systemd      systemd-analyze verify on a copy whose ExecStart is that
#                binary; systemd-analyze security --offline (exposure <= 2.0);
#                flock.env.example names only known settings
#   kubernetes   each document decodes strictly (unknown or misspelt fields,
#                wrong types) into the k8s.io/api types, in a throwaway Go module
#                outside this repo; apiVersion, kind, metadata.name, no namespace;
#                selectors, named ports, ConfigMap/Secret references, probe paths,
#                non-root and read-only root, volumes for FLOCK_DATA_DIR and /tmp;
#                a preStop sleep, a grace period covering preStop + drain +
#                shutdown timeout + video jobs, a surge-first rollout
#   nginx        nginx -t on deploy/nginx/flock.conf with a self-signed
#                certificate, then nginx in front of a running flock (SQLite):
#                redirect, REST, Connect, a Connect stream receiving an event,
#                gRPC (grpc_pass, h2c), gRPC-Web (proxy_pass), a WebSocket
#                upgrade, a 12 MiB upload reaching flock while other paths keep
#                nginx's 10m limit, X-Forwarded-For reaching flock (trusted as
#                flock.env.example says) on both proxy_pass and grpc_pass, and
#                which way each request was routed. All of it with the second
#                upstream server stopped (a restarting instance: every request
#                must still succeed); then that server accepts and closes
#                connections without answering: POSTs with an Idempotency-Key
#                are retried on flock, POSTs without one are not (502)
#
# What it cannot check here: building or running the images (no Docker engine;
# Docker Hub and gcr.io are unreachable), hadolint's rules (no binary, GitHub
# unreachable), the unit under a running systemd (systemd is not PID 1 here:
# its sandboxing is only analysed), Kubernetes admission and the ingress-nginx
# controller (no cluster), and gRPC through ingress-nginx.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
export PATH="$PATH:/usr/local/go/bin"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -f "$TMP/nginx/nginx.pid" ]; then kill "$(cat "$TMP/nginx/nginx.pid")" 2>/dev/null; fi
  sleep 0.2
  rm -rf "$TMP"
}
trap cleanup EXIT

failures=0
skips=0
step() { printf '\n==> %s\n' "$*"; }
pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'skip  %s\n' "$*"; skips=$((skips + 1)); }
have() { command -v "$1" >/dev/null 2>&1; }

FILES=(Dockerfile .dockerignore deploy/systemd/flock.service deploy/systemd/flock.env.example
  deploy/kubernetes/deployment.yaml deploy/kubernetes/service.yaml deploy/kubernetes/configmap.yaml
  deploy/kubernetes/secret.example.yaml deploy/kubernetes/migrate-job.yaml deploy/kubernetes/ingress.yaml
  deploy/nginx/flock.conf docs/deployment.md)

step "files"
for f in "${FILES[@]}"; do
  if [ -s "$f" ]; then pass "$f"; else fail "$f is missing or empty"; fi
done

step "settings: every FLOCK_* name is one flock reads"
KNOWN=$(grep -o '"FLOCK_[A-Z0-9_]*"' server/cmd/flock/main.go | tr -d '"' | sort -u)
if [ -z "$KNOWN" ]; then
  fail "found no FLOCK_* settings in server/cmd/flock/main.go"
else
  unknown=0
  for f in "${FILES[@]}"; do
    [ -f "$f" ] || continue
    for name in $(grep -o 'FLOCK_[A-Z0-9_]*[A-Z0-9]' "$f" | sort -u); do
      if ! grep -qx "$name" <<<"$KNOWN"; then
        fail "$f names $name, which server/cmd/flock/main.go does not read"
        unknown=1
      fi
    done
  done
  [ "$unknown" = 0 ] && pass "$(wc -l <<<"$KNOWN") settings known; none unknown named"
fi

step "Dockerfile"
if have npx; then
  if out=$(npx --yes dockerfile-utils@0.16.3 lint Dockerfile 2>&1); then
    pass "dockerfile-utils lint${out:+: $out}"
  else
    fail "dockerfile-utils lint:"; printf '%s\n' "$out"
  fi
else
  skip "dockerfile-utils lint: no npx (Node.js)"
fi
# Stage rules, from the Dockerfile's text (line continuations joined).
awk '
  { line = line $0 }
  /\\$/ { sub(/\\$/, "", line); next }
  { print line; line = "" }
' Dockerfile | grep -v '^[[:space:]]*#' >"$TMP/Dockerfile.joined"
awk -v out="$TMP/stages" '
  toupper($1) == "FROM" {
    n++; image = $2; name = "stage" n
    for (i = 3; i <= NF; i++) if (toupper($i) == "AS") name = $(i + 1)
    user[n] = ""; entry[n] = ""; img[n] = image; nm[n] = name; ff[n] = 0
  }
  toupper($1) == "USER" { user[n] = $2 }
  toupper($1) == "ENTRYPOINT" { entry[n] = $0 }
  toupper($1) == "RUN" && /apt-get install/ && /ffmpeg/ { ff[n] = 1 }
  END { for (i = 1; i <= n; i++) printf "%s\t%s\t%s\t%d\t%s\n", nm[i], img[i], user[i], ff[i], entry[i] > out }
' "$TMP/Dockerfile.joined"
last=$(tail -n1 "$TMP/stages" | cut -f1)
if [ "$last" = runtime ] && [ "$(tail -n1 "$TMP/stages" | cut -f4)" = 1 ]; then
  pass "the default (last) target is runtime and installs ffmpeg"
else
  fail "the last stage should be runtime, installing ffmpeg (it is $last)"
fi
for target in runtime api-only; do
  row=$(awk -F'\t' -v t="$target" '$1 == t' "$TMP/stages")
  if [ -z "$row" ]; then fail "no stage named $target"; continue; fi
  user=$(cut -f3 <<<"$row"); uid=${user%%:*}
  if [[ "$uid" =~ ^[0-9]+$ ]] && [ "$uid" -ne 0 ]; then
    pass "$target runs as USER $user (numeric, not root)"
  else
    fail "$target must end with a numeric non-root USER (has '${user:-none}')"
  fi
  if grep -q 'ENTRYPOINT \["/usr/local/bin/flock"\]' <<<"$(cut -f5 <<<"$row")"; then
    pass "$target has ENTRYPOINT [\"/usr/local/bin/flock\"]"
  else
    fail "$target lacks ENTRYPOINT [\"/usr/local/bin/flock\"]"
  fi
done
while IFS=$'\t' read -r name image _; do
  case "$image" in
    *@sha256:*) pass "$name: $image pinned by digest" ;;
    *:latest | *'}') fail "$name: pin a tag other than latest ($image)" ;;
    *:*) pass "$name: $image" ;;
    *) fail "$name: $image has no tag" ;;
  esac
done < <(sed 's/\${GO_VERSION}/1.26/' "$TMP/stages")
if grep -q 'rm -rf /var/lib/apt/lists' "$TMP/Dockerfile.joined"; then pass "apt lists removed"; else fail "apt lists are left in the image"; fi
grep -q 'CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/flock ./server/cmd/flock' "$TMP/Dockerfile.joined" &&
  pass "build command as documented" || fail "the build command changed: update this script's context build"
if [ "$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")" = bookworm ] && have apt-cache; then
  pkgs=$(grep -o 'apt-get install[^&]*' "$TMP/Dockerfile.joined" | tr ' ' '\n' | grep -v '^-' | grep -v '^apt-get$\|^install$\|^$\|^DEBIAN' | sort -u)
  for p in $pkgs; do
    if apt-cache show "$p" >/dev/null 2>&1; then pass "Debian bookworm has package $p"; else fail "no package $p in this bookworm machine's apt lists (apt-get update?)"; fi
  done
else
  skip "package names: this machine is not Debian bookworm"
fi
skip "docker build, hadolint: no Docker engine or hadolint here (and Docker Hub, gcr.io and GitHub are unreachable)"

step "build context (.dockerignore) and the Dockerfile's go build"
BIN=""
if ! have node || ! have npm; then
  skip "build context: no Node.js"
elif ! npm install --silent --no-audit --no-fund --prefix "$TMP/node" @balena/dockerignore@1.0.2 >"$TMP/npm.log" 2>&1; then
  fail "npm install @balena/dockerignore:"; cat "$TMP/npm.log"
else
  cat >"$TMP/node/context.js" <<'EOF'
// Prints the files Docker would send as the build context: every file under
// the root that .dockerignore does not exclude (Docker's matching rules).
const fs = require("fs"), path = require("path");
const ignore = require("@balena/dockerignore");
const root = process.argv[2];
const ig = ignore().add(fs.readFileSync(path.join(root, ".dockerignore"), "utf8"));
(function walk(dir) {
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = dir ? dir + "/" + e.name : e.name;
    if (e.isDirectory()) { walk(rel); continue; }
    if (!ig.ignores(rel)) console.log(rel);
  }
})("");
EOF
  mkdir -p "$TMP/context"
  if ! NODE_PATH="$TMP/node/node_modules" node "$TMP/node/context.js" "$ROOT" >"$TMP/context.list"; then
    fail "could not list the build context"
  else
    (cd "$ROOT" && tar -cf - -T "$TMP/context.list") | tar -xf - -C "$TMP/context"
    pass "context: $(wc -l <"$TMP/context.list") files, $(du -sh "$TMP/context" | cut -f1)"
    if grep -q '\(^\|/\)node_modules/\|^\.git/\|^bin/' "$TMP/context.list"; then
      fail "the context holds node_modules, .git or bin"
    fi
    # The build stage's command, in the copied context (Go's module and build
    # caches are shared with this machine, so only a first run is slow).
    if (cd "$TMP/context" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 \
      go build -trimpath -ldflags="-s -w" -o "$TMP/out/flock" ./server/cmd/flock) >"$TMP/build.log" 2>&1; then
      BIN=$TMP/out/flock
      pass "go build in the context"
      if go version -m "$BIN" | grep -q 'CGO_ENABLED=0' && ! readelf -l "$BIN" 2>/dev/null | grep -q INTERP; then
        pass "the binary is static (CGO_ENABLED=0, no ELF interpreter): it runs on distroless/static"
      else
        fail "the binary is not static"
      fi
      if "$BIN" --help >/dev/null 2>&1; then pass "flock --help runs"; else fail "flock --help failed"; fi
    else
      fail "go build in the context that .dockerignore leaves:"; tail -n 30 "$TMP/build.log"
    fi
  fi
fi

step "systemd"
UNIT=deploy/systemd/flock.service
if have systemd-analyze; then
  mkdir -p "$TMP/systemd"
  exe=${BIN:-/bin/true}
  sed "s|^ExecStart=/usr/local/bin/flock|ExecStart=$exe|" "$UNIT" >"$TMP/systemd/flock.service"
  if out=$(systemd-analyze verify "$TMP/systemd/flock.service" 2>&1) && [ -z "$out" ]; then
    pass "systemd-analyze verify (ExecStart pointed at $exe, since /usr/local/bin/flock is not installed here)"
  else
    fail "systemd-analyze verify:"; printf '%s\n' "$out"
  fi
  if out=$(systemd-analyze security --offline=yes --threshold=20 "$TMP/systemd/flock.service" 2>&1); then
    pass "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$out")"
  else
    fail "systemd-analyze security (threshold 2.0):"; printf '%s\n' "$out" | tail -n 25
  fi
  skip "running the unit: systemd is not PID 1 here ($(ps -p 1 -o comm= 2>/dev/null))"
else
  skip "systemd-analyze is not installed"
fi
bad=$(grep -v '^[[:space:]]*\(#\|$\)' deploy/systemd/flock.env.example | grep -v '^\(FLOCK\|AWS\)_[A-Z0-9_]*=' || true)
if [ -z "$bad" ]; then pass "flock.env.example: only KEY=value lines"; else fail "flock.env.example lines that are not KEY=value: $bad"; fi

step "kubernetes"
mkdir -p "$TMP/kubecheck"
cat >"$TMP/kubecheck/go.mod" <<'EOF'
module kubecheck

go 1.25

require (
	k8s.io/api v0.37.2
	k8s.io/apimachinery v0.37.2
	sigs.k8s.io/yaml v1.6.0
)
EOF
cat >"$TMP/kubecheck/main.go" <<'EOF'
// Command kubecheck decodes Kubernetes manifests strictly into the API types
// (unknown fields and wrong types are errors) and checks that they fit
// together. Usage: kubecheck KNOWN_SETTINGS_FILE manifest.yaml...
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var problems []string

func problem(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func main() {
	known := map[string]bool{}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	for _, n := range strings.Fields(string(b)) {
		known[n] = true
	}
	var (
		deployments []*appsv1.Deployment
		jobs        []*batchv1.Job
		services    = map[string]*corev1.Service{}
		configMaps  = map[string]*corev1.ConfigMap{}
		secrets     = map[string]*corev1.Secret{}
		ingresses   []*networkingv1.Ingress
		count       int
	)
	for _, path := range os.Args[2:] {
		f, err := os.ReadFile(path)
		if err != nil {
			problem("%v", err)
			continue
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(f)))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			where := fmt.Sprintf("%s document %d", filepath.Base(path), i)
			if err != nil {
				problem("%s: %v", where, err)
				break
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			count++
			var h header
			if err := yaml.Unmarshal(doc, &h); err != nil {
				problem("%s: not YAML: %v", where, err)
				continue
			}
			if h.APIVersion == "" || h.Kind == "" || h.Metadata.Name == "" {
				problem("%s: needs apiVersion, kind and metadata.name", where)
				continue
			}
			if h.Metadata.Namespace != "" {
				problem("%s: sets a namespace; the manifests are namespace-less", where)
			}
			where = fmt.Sprintf("%s (%s %s)", where, h.Kind, h.Metadata.Name)
			var obj any
			switch h.APIVersion + " " + h.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				deployments, obj = append(deployments, d), d
			case "batch/v1 Job":
				j := &batchv1.Job{}
				jobs, obj = append(jobs, j), j
			case "v1 Service":
				s := &corev1.Service{}
				services[h.Metadata.Name], obj = s, s
			case "v1 ConfigMap":
				c := &corev1.ConfigMap{}
				configMaps[h.Metadata.Name], obj = c, c
			case "v1 Secret":
				s := &corev1.Secret{}
				secrets[h.Metadata.Name], obj = s, s
			case "networking.k8s.io/v1 Ingress":
				in := &networkingv1.Ingress{}
				ingresses, obj = append(ingresses, in), in
			default:
				problem("%s: kind not checked by this program", where)
				continue
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				problem("%s: %v", where, err)
			}
		}
	}

	settings := func(where string, keys []string) {
		for _, k := range keys {
			if strings.HasPrefix(k, "FLOCK_") && !known[k] {
				problem("%s: %s is not a setting flock reads", where, k)
			}
		}
	}
	for name, c := range configMaps {
		keys := []string{}
		for k := range c.Data {
			keys = append(keys, k)
		}
		settings("ConfigMap "+name, keys)
	}
	for name, s := range secrets {
		keys := []string{}
		for k := range s.StringData {
			keys = append(keys, k)
		}
		for k := range s.Data {
			keys = append(keys, k)
		}
		settings("Secret "+name, keys)
	}

	checkPod := func(where string, spec *corev1.PodSpec, server bool) {
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			problem("%s: the pod must set runAsNonRoot and a non-zero runAsUser", where)
		}
		volumes := map[string]bool{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = true
		}
		if len(spec.Containers) == 0 {
			problem("%s: no containers", where)
		}
		for _, c := range spec.Containers {
			cw := where + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				problem("%s: needs readOnlyRootFilesystem: true and allowPrivilegeEscalation: false", cw)
			}
			if c.Resources.Requests == nil {
				problem("%s: no resource requests", cw)
			}
			mounts := map[string]bool{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = true
				if !volumes[m.Name] {
					problem("%s: mounts volume %q, which the pod does not define", cw, m.Name)
				}
			}
			if !mounts["/tmp"] {
				problem("%s: the read-only root needs a volume at /tmp (video processing, temporary files)", cw)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				settings(cw, []string{e.Name})
			}
			for _, name := range []string{"FLOCK_DATA_DIR", "FLOCK_VIDEO_TEMP_DIR"} {
				if dir, ok := env[name]; ok && !mounts[dir] {
					problem("%s: %s=%s is not a mounted volume", cw, name, dir)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && configMaps[ef.ConfigMapRef.Name] == nil {
					problem("%s: no ConfigMap %q among the manifests", cw, ef.ConfigMapRef.Name)
				}
				if ef.SecretRef != nil && secrets[ef.SecretRef.Name] == nil {
					problem("%s: no Secret %q among the manifests", cw, ef.SecretRef.Name)
				}
			}
			if !server {
				continue
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			probe := func(kind string, p *corev1.Probe, path string) {
				if p == nil || p.HTTPGet == nil {
					problem("%s: needs an HTTP %s probe", cw, kind)
					return
				}
				if p.HTTPGet.Path != path {
					problem("%s: %s probe path %s, want %s", cw, kind, p.HTTPGet.Path, path)
				}
				if p.HTTPGet.Port.StrVal != "" && !ports[p.HTTPGet.Port.StrVal] {
					problem("%s: %s probe port %q is not a container port", cw, kind, p.HTTPGet.Port.StrVal)
				}
			}
			probe("readiness", c.ReadinessProbe, "/readyz")
			probe("liveness", c.LivenessProbe, "/healthz")
		}
	}

	for _, d := range deployments {
		where := "Deployment " + d.Name
		if d.Spec.Selector == nil {
			problem("%s: no selector", where)
			continue
		}
		if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
			problem("%s: the selector does not match the pod labels", where)
		}
		// Termination: preStop sleep, then FLOCK_SHUTDOWN_DRAIN (default 5 s),
		// then in-flight requests (25 s) and video jobs (20 s).
		need, drain := int64(25+20), int64(5)
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				problem("%s: container %s has no preStop sleep (endpoint removal would race the drain)", where, c.Name)
				continue
			}
			need += c.Lifecycle.PreStop.Sleep.Seconds
		}
		for _, cm := range configMaps {
			if v, ok := cm.Data["FLOCK_SHUTDOWN_DRAIN"]; ok {
				dd, err := time.ParseDuration(v)
				if err != nil {
					problem("ConfigMap %s: FLOCK_SHUTDOWN_DRAIN %q is no duration", cm.Name, v)
				}
				drain = int64(math.Ceil(dd.Seconds()))
			}
		}
		need += drain
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < need {
			problem("%s: terminationGracePeriodSeconds must cover preStop, the %d s drain, the 25 s shutdown timeout and the 20 s video job grace (%d s)", where, drain, need)
		}
		if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" || ru.MaxSurge == nil || ru.MaxSurge.String() == "0" {
			problem("%s: a rollout must surge a new pod before taking one away (maxUnavailable: 0, maxSurge >= 1)", where)
		}
		checkPod(where, &d.Spec.Template.Spec, true)
		found := false
		for _, s := range services {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				found = true
				for _, sp := range s.Spec.Ports {
					if sp.TargetPort.StrVal == "" {
						continue
					}
					ok := false
					for _, c := range d.Spec.Template.Spec.Containers {
						for _, cp := range c.Ports {
							ok = ok || cp.Name == sp.TargetPort.StrVal
						}
					}
					if !ok {
						problem("Service %s: targetPort %q is no container port of %s", s.Name, sp.TargetPort.StrVal, where)
					}
				}
			}
		}
		if !found {
			problem("%s: no Service selects its pods", where)
		}
	}
	for _, j := range jobs {
		checkPod("Job "+j.Name, &j.Spec.Template.Spec, false)
		if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
			problem("Job %s: restartPolicy must be Never or OnFailure", j.Name)
		}
	}
	for _, in := range ingresses {
		where := "Ingress " + in.Name
		for k, v := range in.Annotations {
			if strings.HasSuffix(k, "/proxy-body-size") {
				if _, err := resource.ParseQuantity(strings.TrimSuffix(v, "m") + "Mi"); err != nil {
					problem("%s: %s=%q is not a size", where, k, v)
				}
			}
		}
		for _, rule := range in.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				svc := p.Backend.Service
				if svc == nil {
					problem("%s: path %s has no service backend", where, p.Path)
					continue
				}
				s := services[svc.Name]
				if s == nil {
					problem("%s: path %s names Service %q, not among the manifests", where, p.Path, svc.Name)
					continue
				}
				ok := false
				for _, sp := range s.Spec.Ports {
					ok = ok || (svc.Port.Name != "" && sp.Name == svc.Port.Name) || (svc.Port.Number != 0 && sp.Port == svc.Port.Number)
				}
				if !ok {
					problem("%s: path %s names a port Service %s does not have", where, p.Path, svc.Name)
				}
			}
		}
	}

	for _, p := range problems {
		fmt.Println(p)
	}
	fmt.Printf("%d documents: %d Deployment, %d Job, %d Service, %d ConfigMap, %d Secret, %d Ingress\n",
		count, len(deployments), len(jobs), len(services), len(configMaps), len(secrets), len(ingresses))
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// stripComments drops comment-only lines, so that a document of comments
// counts as empty.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
EOF
printf '%s\n' "$KNOWN" >"$TMP/known-settings"
if ! (cd "$TMP/kubecheck" && GOWORK=off GOFLAGS=-mod=mod go mod tidy) >"$TMP/kubecheck.log" 2>&1; then
  fail "kubecheck: fetching k8s.io/api through the Go module proxy failed:"; tail -n 20 "$TMP/kubecheck.log"
elif out=$(cd "$TMP/kubecheck" && GOWORK=off go run . "$TMP/known-settings" "$ROOT"/deploy/kubernetes/*.yaml 2>&1); then
  pass "strict decoding into k8s.io/api v0.37.2 and cross-checks: $(tail -n1 <<<"$out")"
else
  fail "kubernetes manifests:"; printf '%s\n' "$out"
fi
skip "kubectl apply --dry-run=server and the ingress-nginx controller: no cluster here"

step "nginx"
if ! have nginx && [ "$(id -u)" = 0 ] && [ "${CI:-}" = true ]; then
  echo "installing nginx-light"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light) >"$TMP/apt.log" 2>&1 ||
    { fail "apt-get install nginx-light:"; tail -n 20 "$TMP/apt.log"; }
fi
if ! have nginx; then
  skip "nginx is not installed (scripts/check-deploy.sh installs nginx-light as root under CI=true)"
elif ! have openssl; then
  skip "nginx: no openssl to make a test certificate"
else
  N=$TMP/nginx
  mkdir -p "$N"
  chmod 755 "$TMP" "$N" # nginx's workers (nobody) create their temp files in here
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=flock.example.com \
    -keyout "$N/key.pem" -out "$N/cert.pem" >/dev/null 2>&1
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  FP=$(free_port) FP2=$(free_port) HP=$(free_port) SP=$(free_port)
  # The file as shipped, with the test certificate, for nginx -t; then a copy
  # on loopback ports in front of the flock started below.
  sed -e "s|/etc/ssl/flock/fullchain.pem|$N/cert.pem|; s|/etc/ssl/flock/privkey.pem|$N/key.pem|" \
    deploy/nginx/flock.conf >"$N/flock.conf"
  sed -e "s|server 127.0.0.1:8080 |server 127.0.0.1:$FP |" -e "s|server 127.0.0.1:8081 |server 127.0.0.1:$FP2 |" -e '/listen \[::\]/d' \
    -e "s|listen 80;|listen 127.0.0.1:$HP;|" -e "s|listen 443 |listen 127.0.0.1:$SP |" \
    "$N/flock.conf" >"$N/flock-test.conf"
  wrapper() {
    cat <<EOF
pid $N/nginx.pid;
error_log $N/error.log warn;
events { worker_connections 256; }
http {
    log_format routed '\$request_uri grpc=\$flock_grpc status=\$status upstream=\$upstream_addr';
    access_log $N/access.log routed;
    client_body_temp_path $N/body;
    proxy_temp_path $N/proxy;
    include $N/$1;
}
EOF
  }
  wrapper flock.conf >"$N/check.conf"
  wrapper flock-test.conf >"$N/run.conf"
  if out=$(nginx -t -p "$N" -c "$N/check.conf" -e stderr 2>&1); then
    pass "nginx -t ($(nginx -v 2>&1 | sed 's/.*: //'))"
    grep -i 'warn\|emerg' <<<"$out" || true
  else
    fail "nginx -t:"; printf '%s\n' "$out"
  fi

  if [ -z "$BIN" ]; then
    skip "requests through nginx: no flock binary (the context build failed or was skipped)"
  elif ! have curl || ! have perl || ! have python3; then
    skip "requests through nginx: needs curl, perl and python3"
  else
    mkdir -p "$TMP/flock/mail"
    # Trusting nginx as the systemd example does (FLOCK_TRUSTED_PROXIES).
    TRUSTED=$(sed -n 's/^FLOCK_TRUSTED_PROXIES=//p' deploy/systemd/flock.env.example)
    [ -n "$TRUSTED" ] || fail "deploy/systemd/flock.env.example sets no FLOCK_TRUSTED_PROXIES for its nginx"
    FLOCK_ADDR=127.0.0.1:$FP FLOCK_DATA_DIR=$TMP/flock/data FLOCK_MAILER=file:$TMP/flock/mail \
      FLOCK_RATE_LIMITS=off FLOCK_TRUSTED_PROXIES=$TRUSTED FLOCK_PUBLIC_URL=https://127.0.0.1:$SP "$BIN" >"$TMP/flock/log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 60); do curl -fsS -o /dev/null "http://127.0.0.1:$FP/healthz" 2>/dev/null && break; sleep 0.5; done
    if ! nginx -p "$N" -c "$N/run.conf" -e "$N/error.log"; then
      fail "nginx did not start:"; cat "$N/error.log"
    else
      for _ in $(seq 1 20); do [ -s "$N/nginx.pid" ] && break; sleep 0.2; done
      U=https://127.0.0.1:$SP
      C=(curl -sk --max-time 10)
      check() { # check NAME COMMAND...: passes when COMMAND succeeds
        local name=$1; shift
        if "$@"; then pass "$name"; else fail "$name"; fi
      }
      json() { python3 -c 'import json,sys; print(json.load(sys.stdin)'"$1"')'; }

      check "HTTP on port 80 redirects to HTTPS" \
        test "$("${C[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HP/healthz")" = "301 https://127.0.0.1/healthz"
      check "GET /healthz over HTTP/2" test "$("${C[@]}" --http2 -w ' %{http_version}' "$U/healthz")" = "ok
 2"
      check "GET /readyz" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/readyz")" = 200
      check "GET /metrics is not public (404 from nginx)" test "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/metrics")" = 404

      # An account: REST registration, the emailed token, Connect login.
      "${C[@]}" -X POST "$U/api/users/" -H 'Content-Type: application/json' \
        -d '{"username":"alice","email":"alice@example.com","password":"correct horse","fullName":"Alice"}' >"$TMP/reg.json"
      check "REST POST /api/users/ (register)" grep -q '"username":"alice"' "$TMP/reg.json"
      sleep 1
      token=$(cat "$TMP"/flock/mail/*.eml 2>/dev/null | perl -0pe 's/=\r?\n//g; s/=3D/=/g' | grep -o 'verify-email?token=[A-Za-z0-9_-]*' | head -n1 | cut -d= -f2)
      "${C[@]}" -X POST "$U/api/users/verify-email/" -H 'Content-Type: application/json' -d "{\"token\":\"$token\"}" >/dev/null
      AT=$("${C[@]}" --http1.1 -X POST "$U/flock.v1.UserService/Login" -H 'Content-Type: application/json' \
        -d '{"username":"alice","password":"correct horse"}' | json '["accessToken"]' 2>/dev/null)
      check "Connect unary over HTTP/1.1 (UserService/Login)" test -n "$AT"

      # A Connect server stream stays open and delivers an event at once.
      printf '\0\0\0\0\002{}' >"$TMP/empty.connect"
      "${C[@]}" --http2 -N -X POST "$U/flock.v1.ActivityService/Subscribe" \
        -H 'Content-Type: application/connect+json' -H "Authorization: Bearer $AT" \
        --data-binary @"$TMP/empty.connect" -o "$TMP/stream.out" --max-time 8 &
      stream=$!
      sleep 1.5
      "${C[@]}" -X POST "$U/api/posts/" -H "Authorization: Bearer $AT" -H 'Content-Type: application/json' \
        -d '{"content":"through nginx #flock"}' -o /dev/null
      got=no
      for _ in $(seq 1 20); do grep -q ACTIVITY_TYPE_POST_CREATED "$TMP/stream.out" 2>/dev/null && { got=yes; break; }; sleep 0.25; done
      kill "$stream" 2>/dev/null; wait "$stream" 2>/dev/null
      check "Connect stream (ActivityService/Subscribe) receives a new post's event through nginx" test "$got" = yes

      # gRPC: HealthCheckRequest{} is the 5-byte frame of an empty message.
      printf '\0\0\0\0\0' >"$TMP/empty.grpc"
      "${C[@]}" --http2 -X POST "$U/grpc.health.v1.Health/Check" -H 'Content-Type: application/grpc' -H 'TE: trailers' \
        --data-binary @"$TMP/empty.grpc" -D "$TMP/grpc.headers" -o "$TMP/grpc.body"
      check "gRPC (grpc.health.v1.Health/Check): grpc-status 0, SERVING" \
        sh -c "grep -qi '^grpc-status: 0' '$TMP/grpc.headers' && test \"\$(od -An -tx1 '$TMP/grpc.body' | tr -d ' \n')\" = 00000000020801"
      # gRPC-Web over HTTP/1.1: status in a trailer frame inside the body.
      "${C[@]}" --http1.1 -X POST "$U/grpc.health.v1.Health/Check" -H 'Content-Type: application/grpc-web+proto' \
        --data-binary @"$TMP/empty.grpc" -D "$TMP/grpcweb.headers" -o "$TMP/grpcweb.body"
      check "gRPC-Web over HTTP/1.1: SERVING, grpc-status 0 in the trailer frame" \
        sh -c "grep -qi '^content-type: application/grpc-web+proto' '$TMP/grpcweb.headers' && grep -qa 'grpc-status: *0' '$TMP/grpcweb.body'"

      # WebSocket upgrade through nginx (the token as the browser sends it).
      "${C[@]}" --http1.1 -i -N --max-time 3 "$U/api/notifications/" -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
        -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
        -H "Sec-WebSocket-Protocol: flock.v1, bearer.$AT" -o "$TMP/ws.out" 2>/dev/null
      check "WebSocket upgrade on /api/notifications/: 101 Switching Protocols" grep -q '^HTTP/1.1 101' "$TMP/ws.out"

      # A 12 MiB upload passes nginx (1100m there) and reaches flock, which
      # refuses it as not a video; elsewhere 12 MiB is past nginx's 10m.
      head -c $((12 << 20)) /dev/zero >"$TMP/big.bin"
      code=$("${C[@]}" --max-time 60 -o "$TMP/upload.json" -w '%{http_code}' -X POST "$U/api/posts/videos/" \
        -H "Authorization: Bearer $AT" -F file=@"$TMP/big.bin")
      check "12 MiB POST /api/posts/videos/ reaches flock (answered $code with flock's JSON error)" \
        sh -c "test '$code' != 413 && grep -q '\"code\"' '$TMP/upload.json'"
      code=$("${C[@]}" --max-time 60 -o /dev/null -w '%{http_code}' -X POST "$U/api/posts/" \
        -H "Authorization: Bearer $AT" -H 'Content-Type: application/json' --data-binary @"$TMP/big.bin")
      check "12 MiB POST /api/posts/ stops at nginx's client_max_body_size (413)" test "$code" = 413

      # Client addresses: nginx appends the address it saw to X-Forwarded-For
      # on proxy_pass and grpc_pass, and flock (trusting nginx) takes the
      # first untrusted one from the right. The test client is on loopback,
      # which is trusted too, so the address it sends itself is the client.
      "${C[@]}" -o /dev/null -H 'X-Forwarded-For: 203.0.113.9' "$U/readyz"
      "${C[@]}" --http2 -o /dev/null -X POST "$U/grpc.health.v1.Health/Check" -H 'Content-Type: application/grpc' \
        -H 'TE: trailers' -H 'X-Forwarded-For: 203.0.113.10' --data-binary @"$TMP/empty.grpc"
      sleep 0.3
      check "X-Forwarded-For through proxy_pass: flock logs the client (client=203.0.113.9)" \
        grep -q 'path=/readyz .*client=203\.0\.113\.9' "$TMP/flock/log"
      check "X-Forwarded-For through grpc_pass: flock logs the client (client=203.0.113.10)" \
        grep -q 'path=/grpc.health.v1.Health/Check .*client=203\.0\.113\.10' "$TMP/flock/log"

      # Which way nginx routed each RPC: $flock_grpc in the access log.
      kill -USR1 "$(cat "$N/nginx.pid")" 2>/dev/null; sleep 0.3
      check "routing: gRPC went to grpc_pass (flock_grpc=1)" grep -q '^/grpc.health.v1.Health/Check grpc=1 status=200' "$N/access.log"
      check "routing: gRPC-Web and Connect went to proxy_pass (flock_grpc=0)" \
        sh -c "grep -q '^/grpc.health.v1.Health/Check grpc=0 status=200' '$N/access.log' && grep -q '^/flock.v1.UserService/Login grpc=0 status=200' '$N/access.log'"
      # Both upstream servers are in the shipped form, and the second one
      # (127.0.0.1:$FP2) was stopped all along: each request that picked it
      # went on to flock (max_fails=0 never takes flock out, either).
      check "two servers per upstream, the second stopped: nginx tried it and went on to flock" \
        grep -q "upstream=127.0.0.1:$FP2, 127.0.0.1:$FP\$" "$N/access.log"
      # Now the second server takes each request and closes without an
      # answer (an instance dying mid-request): a POST with an
      # Idempotency-Key goes on to flock; one without it does not (502).
      python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); c.settimeout(2); data = b""
    try:
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d: break
            data += d
    except OSError: pass
    c.close()
' "$FP2" &
      PIDS+=($!)
      sleep 0.5
      keyed_ok=0 plain_502=0
      for i in 1 2 3 4 5 6; do
        code=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "$U/api/posts/" -H "Authorization: Bearer $AT" \
          -H 'Content-Type: application/json' -H "Idempotency-Key: check-deploy-$i-$$" -d "{\"content\":\"keyed $i\"}")
        [ "$code" = 200 ] && keyed_ok=$((keyed_ok + 1))
      done
      for i in 1 2 3 4 5 6; do # round robin: every other one goes to the closer first
        code=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "$U/api/posts/" -H "Authorization: Bearer $AT" \
          -H 'Content-Type: application/json' -d "{\"content\":\"plain $i\"}")
        [ "$code" = 502 ] && plain_502=$((plain_502 + 1))
      done
      check "POST with Idempotency-Key, one upstream closing without an answer: 6 of 6 answered by flock ($keyed_ok)" test "$keyed_ok" = 6
      keyed_ok=0
      for i in 1 2 3 4; do # Connect, through the RPC location
        code=$("${C[@]}" -o /dev/null -w '%{http_code}' -X POST "$U/flock.v1.PostService/CreatePost" -H "Authorization: Bearer $AT" \
          -H 'Content-Type: application/json' -H "Idempotency-Key: check-deploy-connect-$i-$$" -d "{\"content\":\"connect $i\"}")
        [ "$code" = 200 ] && keyed_ok=$((keyed_ok + 1))
      done
      check "Connect CreatePost with Idempotency-Key, one upstream closing without an answer: 4 of 4 answered by flock ($keyed_ok)" test "$keyed_ok" = 4
      check "POST without Idempotency-Key is not retried after it was sent: some 502 ($plain_502 of 6)" test "$plain_502" -gt 0
      if [ "$failures" -gt 0 ]; then
        echo "--- nginx error log"; tail -n 40 "$N/error.log"
        echo "--- nginx access log"; cat "$N/access.log"
        echo "--- flock log"; tail -n 20 "$TMP/flock/log"
      fi
    fi
  fi
fi

step "result"
if [ "$failures" -gt 0 ]; then
  echo "check-deploy: $failures failed, $skips skipped"
  exit 1
fi
echo "check-deploy: all checks passed, $skips skipped (see above for what is not checked here)"
