#!/usr/bin/env bash
# Baseline for scripts/bench_dr.py: the seed story's manual sequence, with kubectl, after the VM was
# stopped by hand: force-delete the node's pods, delete its VolumeAttachments, wait for Traefik.
#   benchmarks/baseline_kubectl.sh KUBECONFIG NODE [NAMESPACE SELECTOR COUNT]   (default: Traefik)
set -euo pipefail
kc=$1 node=$2 ns=${3:-traefik} selector=${4:-app.kubernetes.io/name=traefik} count=${5:-1}
k() { kubectl --kubeconfig "$kc" --cache-dir "${KUBECTL_CACHE:-$(mktemp -d)}" "$@"; }
k get pods -A --field-selector "spec.nodeName=$node" -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' \
  | while read -r ns pod; do
      if [ -n "$pod" ]; then k delete pod -n "$ns" "$pod" --force --grace-period=0 --wait=false; fi
    done
k get volumeattachment -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.nodeName}{"\n"}{end}' \
  | while read -r va n; do
      if [ "$n" = "$node" ]; then k delete volumeattachment "$va" --wait=false; fi
    done
for _ in $(seq 1 600); do
  running=$(k get pods -n "$ns" ${selector:+-l "$selector"} --field-selector status.phase=Running \
    -o jsonpath='{range .items[*]}{.spec.nodeName}{" "}{.metadata.deletionTimestamp}{"\n"}{end}' \
    | awk -v dead="$node" '$1 != dead && $2 == ""' | wc -l)
  if [ "$running" -ge "$count" ]; then
    exit 0
  fi
  sleep 0.5
done
echo "the workloads did not come back" >&2
exit 1
