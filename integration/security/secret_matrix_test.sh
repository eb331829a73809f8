#!/usr/bin/env bash
# The secret-leak matrix: every way a secret can reach a build, and every place a build can put
# it, asserted. Each way gets a daemon (--debug) on an empty state root, a random value of its
# own and one build that exports everything at once: the image (pushed, with an inline cache), a
# mode=max registry cache and a mode=max local cache. Then each place is searched for the value
# (fixed strings, binary-safe):
#   layers    the image's layers, decompressed
#   config    the image config without its history and inline cache
#   history   the image config's history
#   inline    the inline cache (moby.buildkit.cache.v0, as stored and decoded)
#   registry  the registry cache: manifest, config and layers (decompressed)
#   local     the local cache directory: every blob (decompressed)
#   root      kilnd's state root once the daemon stopped: every file, gzip ones decompressed too
#   log       kilnd's --debug log
#   progress  the client's --progress plain output
#   metadata  the client's --metadata-file
# and the leak guard's warnings are compared with what it should say. The ways:
#   context        a secret file in the context that no COPY names
#   copy           COPY of a secret file from the context (a user error, as in any builder: the
#                  guard names it when the same value is a --secret the build mounts)
#   copy-unmounted the same, the --secret given but mounted by no RUN (the kiln client names
#                  the secrets it offers, so the guard still looks for it)
#   arg            ARG NPM_TOKEN from --build-arg, used in RUN: in the history, as in BuildKit
#                  ("ARG NPM_TOKEN=…", "RUN |1 NPM_TOKEN=… /bin/sh -c …")
#   arg-escaped    the same with a value JSON escapes (a quote, a backslash)
#   env            ENV from such an ARG: the config's Env too
#   newline        a secret file ending in a newline, written to a layer without it
#   mount          RUN --mount=type=secret as a file and as env=NAME: nowhere
#   ssh            RUN --mount=type=ssh with a forwarded ssh-agent: the key and the agent's
#                  socket nowhere, the socket reachable in RUN
# A mode=max cache export does not carry the build context (a source's result; BuildKit exports
# results only for records with inputs), so a context file no step copies reaches no cache.
. "$(dirname "$0")/../lib.sh"
start_busybox_registry
ctx=$WORK/ctx
mkdir -p "$ctx"
CONTEXT_IN_MAX_CACHE=""  # where a context file no step uses is exported: nowhere

rand() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
accept="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
manifest() { curl -sf -H "Accept: $accept" "http://$R/v2/$1/manifests/$2"; }
blob() { curl -sf "http://$R/v2/$1/blobs/$2"; }
# unz: stdin, decompressed when it is gzip.
unz() {
  local tmp=$WORK/unz.tmp
  cat >"$tmp"
  if gzip -t "$tmp" 2>/dev/null; then zcat "$tmp"; else cat "$tmp"; fi
}
# has NEEDLE...: stdin holds one of the needles. All of stdin is read (grep -q would stop early,
# and pipefail count the writer's SIGPIPE as a miss).
has() {
  local args=() n
  for n in "$@"; do args+=(-e "$n"); done
  grep -caF "${args[@]}" >/dev/null
}
# root_has NEEDLE...: a file of kilnd's state root holds a needle, as is or decompressed.
root_has() {
  local args=() n f
  for n in "$@"; do args+=(-e "$n"); done
  [ -n "$(grep -rlaF "${args[@]}" "$WORK/root" 2>/dev/null)" ] && return 0
  while IFS= read -r -d '' f; do
    if gzip -t "$f" 2>/dev/null && zcat "$f" | has "$@"; then return 0; fi
  done < <(find "$WORK/root" -type f -print0)
  return 1
}

# run_way WAY DOCKERFILE [kiln build flags...]: a daemon on an empty root builds $ctx with
# DOCKERFILE, exporting everything; the daemon is stopped after (its root and log complete).
run_way() {
  local way=$1
  printf '%s\n' "$2" >"$ctx/Dockerfile"
  shift 2
  fresh "$way"
  build "$way" --output "type=image,name=$R/matrix-$way:1,push=true" --export-cache type=inline \
    --export-cache "type=registry,ref=$R/matrix-cache:$way,mode=max" \
    --export-cache "type=local,dest=$WORK/local-$way,mode=max" "$@"
  stop_kilnd "$KPID"
  KPID=""
}
# places WAY NEEDLE...: the places (in the order above) that hold a needle after build WAY.
places() {
  local way=$1 out="" m cfg d f
  shift
  m=$(manifest "matrix-$way" 1) || fail "$way: no image manifest"
  cfg=$(echo "$m" | jq -r .config.digest)
  blob "matrix-$way" "$cfg" >"$WORK/$way.config"
  local in_layer=""
  for d in $(echo "$m" | jq -r '.layers[].digest'); do
    blob "matrix-$way" "$d" | unz >"$WORK/layer.tar"
    has "$@" <"$WORK/layer.tar" && in_layer=" layers"
    # Mount points of secrets and agents are no more in a layer than their contents.
    tar tf "$WORK/layer.tar" 2>/dev/null | grep -E '^(\./)?run/(secrets|buildkit)' >&2 &&
      fail "$way: a layer holds a secret's or an agent's mount point"
  done
  out+=$in_layer
  jq 'del(.history) | del(."moby.buildkit.cache.v0")' "$WORK/$way.config" | has "$@" && out+=" config"
  jq .history "$WORK/$way.config" | has "$@" && out+=" history"
  jq -r '."moby.buildkit.cache.v0" // ""' "$WORK/$way.config" >"$WORK/$way.inline"
  [ -s "$WORK/$way.inline" ] || fail "$way: the image has no inline cache"
  { cat "$WORK/$way.inline"; base64 -d <"$WORK/$way.inline" || true; } | has "$@" && out+=" inline"
  m=$(manifest matrix-cache "$way") || fail "$way: no registry cache"
  {
    echo "$m"
    for d in $(echo "$m" | jq -r '.config.digest, .layers[].digest'); do blob matrix-cache "$d" | unz; done
  } | has "$@" && out+=" registry"
  [ -f "$WORK/local-$way/index.json" ] || fail "$way: no local cache"
  for f in $(find "$WORK/local-$way" -type f); do unz <"$f"; done | has "$@" && out+=" local"
  root_has "$@" && out+=" root"
  has "$@" <"$WORK/$way.log" && out+=" log"
  has "$@" <"$WORK/$way.progress" && out+=" progress"
  has "$@" <"$WORK/$way.json" && out+=" metadata"
  echo $out
}
# guard WAY: the leak guard's warnings for build WAY, sorted, one a line.
guard() { { grep -o 'secret leak: .*' "$WORK/$1.progress" || true; } | sed 's/^secret leak: //; s/ (secret-scan=error.*//' | sort; }

TABLE=$(printf '%-15s %-40s %s' WAY "LEAKS TO" "GUARD")
# expect WAY PLACES [WARNING...]: the value of way WAY reached exactly PLACES, and the guard
# warned exactly the WARNINGs.
expect() {
  local way=$1 want=$2 got warned w
  shift 2
  got=$(places "$way" "${NEEDLES[@]}")
  [ "$got" = "$want" ] || fail "$way: the value reached [$got], expected [$want]"
  warned=$(guard "$way")
  [ "$(echo "$warned" | grep -c .)" -eq $# ] ||
    fail "$way: the guard warned [$warned], expected $# warning(s): $*"
  for w in "$@"; do
    echo "$warned" | grep -qxF -- "$w" || fail "$way: the guard did not warn '$w'; it warned [$warned]"
  done
  TABLE+=$(printf '\n%-15s %-40s %s' "$way" "${got:-nowhere}" "$([ $# -gt 0 ] && echo warns || echo -)")
  pass "$way: the value reaches ${got:-nothing}; the guard warns $#"
}

# ---- a secret file in the context that no COPY names -------------------------------------------
v=context-$(rand)
NEEDLES=("$v")
printf '%s' "$v" >"$ctx/.env"
echo app >"$ctx/app.txt"
run_way context "FROM $B
COPY app.txt /app.txt
RUN echo ok >/ok"
# The root keeps the synced context (its next sync sends only changes), as BuildKit's does.
expect context "$(echo $CONTEXT_IN_MAX_CACHE root)"
rm "$ctx/.env" "$ctx/app.txt"

# ---- 1. COPY of a secret file from the context ------------------------------------------------
v=copy-$(rand)
NEEDLES=("$v")
printf '%s' "$v" >"$ctx/npmrc"
printf '%s' "$v" >"$WORK/npmrc"
run_way copy "FROM $B
COPY npmrc /app/.npmrc
RUN --mount=type=secret,id=npm test -s /run/secrets/npm && echo ok >/ok" --secret "id=npm,src=$WORK/npmrc"
warnings=("secret npm found in the result's layer 2 (copy /npmrc /app/.npmrc) at /app/.npmrc")
# (The context is in the mode=max caches: the guard says so.)
[ -z "$CONTEXT_IN_MAX_CACHE" ] ||
  warnings+=("secret npm found in a cache export's layer 1 (local source for context) at /npmrc")
expect copy "layers registry local root" "${warnings[@]}"
# The guard knows the secrets RUN steps mount, and the kiln client names every --secret it
# offers (ids only, frontend option secret-scan-ids): a --secret nothing mounts is looked for too.
run_way copy-unmounted "FROM $B
COPY npmrc /app/.npmrc
RUN echo ok >/ok" --secret "id=npm,src=$WORK/npmrc"
expect copy-unmounted "layers registry local root" \
  "secret npm found in the result's layer 2 (copy /npmrc /app/.npmrc) at /app/.npmrc"
rm "$ctx/npmrc"

# ---- 2. ARG with a secret-looking name, used in RUN --------------------------------------------
v=arg-$(rand)
NEEDLES=("$v")
run_way arg "FROM $B
ARG NPM_TOKEN
RUN test -n \"\$NPM_TOKEN\" && echo ok >/ok" --build-arg "NPM_TOKEN=$v"
expect arg "history root" "build-arg NPM_TOKEN found in the image config at history"
# Where in the history: as BuildKit records it (the RUN's build args before its command).
history=$(jq -r '.history[].created_by' "$WORK/arg.config")
assert_contains "$history" "ARG NPM_TOKEN=$v" "history"
assert_contains "$history" "RUN |1 NPM_TOKEN=$v /bin/sh -c test -n \"\$NPM_TOKEN\" && echo ok >/ok # buildkit" "history"
# The step's name is the Dockerfile's text: unlike BuildKit, which expands the ARG in it.
assert_contains "$(cat "$WORK/arg.progress")" 'RUN test -n "$NPM_TOKEN"' "progress"
assert_contains "$(cat "$WORK/arg.progress")" "SecretsUsedInArgOrEnv" "progress"

# A value that JSON escapes is found as JSON decodes it.
v="arg\"\\$(rand)"
NEEDLES=("$v" "$(printf '%s' "$v" | sed 's/["\\]/\\&/g')")
run_way arg-escaped "FROM $B
ARG API_TOKEN
RUN echo ok >/ok" --build-arg "API_TOKEN=$v"
expect arg-escaped "history root" "build-arg API_TOKEN found in the image config at history"

# ---- 3. ENV set from an ARG --------------------------------------------------------------------
v=env-$(rand)
NEEDLES=("$v")
run_way env "FROM $B
ARG API_TOKEN
ENV API_TOKEN=\$API_TOKEN
RUN echo ok >/ok" --build-arg "API_TOKEN=$v"
expect env "config history root" \
  "build-arg API_TOKEN found in the image config at config.Env" \
  "build-arg API_TOKEN found in the image config at history"
assert_contains "$(jq -r '.config.Env[]' "$WORK/env.config")" "API_TOKEN=$v" "config Env"

# ---- a mounted secret ending in a newline, copied into a layer without it --------------------
v=newline-$(rand)
NEEDLES=("$v")
printf '%s\n' "$v" >"$WORK/tok"
run_way newline "FROM $B
RUN --mount=type=secret,id=tok printf 'TOKEN=%s;' \"\$(cat /run/secrets/tok)\" >/app.env" \
  --secret "id=tok,src=$WORK/tok"
expect newline "layers registry local root" \
  "secret tok found in the result's layer 2 (exec /bin/sh -c printf 'TOKEN=%s;' \"\$(cat /run/secrets/tok)\" >/app.env) at /app.env"

# ---- 4. RUN --mount=type=secret, as a file and as env -------------------------------------------
# The RUN checks each value by its hash (the value is in no command text); secret-scan=error
# fails the build on any finding.
vf=file-$(rand)
ve=envsecret-$(rand)
NEEDLES=("$vf" "$ve")
printf '%s' "$vf" >"$WORK/tok"
hf=$(printf '%s' "$vf" | sha256sum | cut -d' ' -f1)
he=$(printf '%s' "$ve" | sha256sum | cut -d' ' -f1)
KILN_MATRIX_TOK=$ve run_way mount "FROM $B
RUN --mount=type=secret,id=tok --mount=type=secret,id=tok2,env=TOK2 \\
    test \"\$(sha256sum </run/secrets/tok | cut -d' ' -f1)\" = $hf && \\
    test \"\$(printf %s \"\$TOK2\" | sha256sum | cut -d' ' -f1)\" = $he && echo ok >/ok" \
  --secret "id=tok,src=$WORK/tok" --secret "id=tok2,env=KILN_MATRIX_TOK" --opt secret-scan=error
expect mount ""
assert_contains "$(cat "$WORK/mount.log")" "secret scan of 2 secret(s): 0 finding(s)" "kilnd's log"

# ---- 5. RUN --mount=type=ssh with a forwarded ssh-agent -----------------------------------------
if ! command -v ssh-agent >/dev/null || ! command -v ssh-keygen >/dev/null || ! command -v ssh-add >/dev/null; then
  echo "# ssh: skipped (openssh-client is not installed)"
  echo "$TABLE"
  exit 0
fi
# ssh-add for the container, from a bind mount of the context (in no layer): the host's binary,
# its libraries and their loader, run through the loader.
mkdir -p "$ctx/sshbin"
for f in $(command -v ssh-add) $(ldd "$(command -v ssh-add)" | grep -o '/[^ ]*'); do cp -L "$f" "$ctx/sshbin/"; done
loader=$(basename "$(ldd "$(command -v ssh-add)" | grep -o '/[^ ]*ld-linux[^ ]*')")
agent=$WORK/agent-$(rand)
mkdir -m 700 "$agent"
ssh-keygen -q -t ed25519 -N '' -C kiln-matrix -f "$agent/id"
fp=$(ssh-keygen -lf "$agent/id.pub" | cut -d' ' -f2)
eval "$(ssh-agent -s -a "$agent/agent.sock")" >/dev/null
PIDS+=("$SSH_AGENT_PID")
ssh-add -q "$agent/id"
# The needles: the private key (its file's base64 lines but the first, which holds the header
# and public key) and the agent's socket (its directory's random name).
mapfile -t NEEDLES < <(sed '1d;2d;$d' "$agent/id")
[ "${#NEEDLES[@]}" -ge 2 ] || fail "unexpected key file: $(cat "$agent/id")"
NEEDLES+=("${agent##*/}")
has "${NEEDLES[@]}" <"$agent/id" || fail "the key's lines are not in its file"
run_way ssh "FROM $B
RUN --mount=type=ssh --mount=type=bind,source=sshbin,target=/x \\
    test -S \"\$SSH_AUTH_SOCK\" && /x/$loader --library-path /x /x/ssh-add -l | grep -qF $fp && echo ok >/ok" \
  --ssh default --opt secret-scan=error
expect ssh ""
[ -z "$(find "$WORK/root" -type s)" ] || fail "sockets left in the state root: $(find "$WORK/root" -type s)"
pass "ssh: the agent answered in RUN (test -S \$SSH_AUTH_SOCK, ssh-add -l lists $fp)"

echo "$TABLE"
