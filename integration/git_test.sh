#!/usr/bin/env bash
# ADD of git repositories through kilnd's git source, against a real `git daemon` on loopback:
# the default branch, an annotated tag, a commit id, a subdirectory, --keep-git-dir,
# submodules (relative URL) and ?submodules=false, ADD --checksum, a cached rebuild that only
# runs ls-remote, a moved branch that invalidates exactly its step, and clear errors.
. "$(dirname "$0")/lib.sh"
command -v git >/dev/null || skip "git is not installed"
start_busybox_registry
sock="unix://$WORK/k.sock"
start_kilnd main --root "$WORK/root" --addr "$sock"

# ---- repositories --------------------------------------------------------------------------
repos=$WORK/repos
mkdir -p "$repos"
start_git_daemon gitd "$repos"
g() { git -c user.name=kiln -c user.email=kiln@example.com -c init.defaultBranch=main \
        -c protocol.file.allow=always "$@"; }
g init -q --bare "$repos/lib.git"
g init -q --bare "$repos/app.git"
g clone -q "$repos/lib.git" "$WORK/lib" 2>/dev/null
echo "library code" >"$WORK/lib/lib.txt"
g -C "$WORK/lib" add -A && g -C "$WORK/lib" commit -qm lib && g -C "$WORK/lib" push -q origin HEAD:main

g clone -q "$repos/app.git" "$WORK/app" 2>/dev/null
mkdir -p "$WORK/app/sub/deeper"
echo "version one" >"$WORK/app/README"
echo "in a subdir" >"$WORK/app/sub/deeper/file"
ln -s ../README "$WORK/app/sub/link"
g -C "$WORK/app" add -A && g -C "$WORK/app" commit -qm one
g -C "$WORK/app" tag -a v1 -m "release one"
c1=$(git -C "$WORK/app" rev-parse HEAD)
echo "version two" >"$WORK/app/README"
# A submodule by relative URL: resolved against the superproject's remote.
g -C "$WORK/app" submodule add -q ../lib.git vendor/lib
g -C "$WORK/app" add -A && g -C "$WORK/app" commit -qm two
c2=$(git -C "$WORK/app" rev-parse HEAD)
g -C "$WORK/app" push -q origin HEAD:main --tags
URL="git://$GITD/app.git"

ctx=$WORK/ctx
mkdir -p "$ctx"
build() {  # build NAME: builds $ctx into $WORK/NAME (type=local); progress in $WORK/NAME.progress
  k build --progress plain --output "type=local,dest=$WORK/$1" "$ctx" 2>"$WORK/$1.progress"
}

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B AS src
ADD $URL /default
ADD $URL#v1 /tag
ADD $URL#$c1 /commit
ADD $URL#main:sub /sub
ADD --keep-git-dir=true $URL#main /kept
ADD $URL?ref=main&submodules=false /nosub
ADD --checksum=$c2 $URL /pinned
RUN ls -la /default /sub >/listing

FROM scratch
COPY --from=src / /
DOCKERFILE
build out || fail "ADD of git repositories failed: $(cat "$WORK/out.progress")"
o=$WORK/out
[ "$(cat "$o/default/README")" = "version two" ] || fail "the default branch was not checked out"
[ "$(cat "$o/default/vendor/lib/lib.txt")" = "library code" ] || fail "the submodule was not checked out"
[ ! -e "$o/default/.git" ] && [ ! -e "$o/default/vendor/lib/.git" ] || fail ".git was kept without --keep-git-dir"
[ "$(cat "$o/tag/README")" = "version one" ] || fail "#v1 (an annotated tag) was not checked out"
[ ! -e "$o/tag/vendor" ] || fail "#v1 has content of a later commit"
[ "$(cat "$o/commit/README")" = "version one" ] || fail "#<commit id> was not checked out"
[ "$(cat "$o/sub/deeper/file")" = "in a subdir" ] && [ ! -e "$o/sub/README" ] ||
  fail "#main:sub did not put the subdir's contents at the root: $(ls -la "$o/sub")"
[ "$(readlink "$o/sub/link")" = "../README" ] || fail "a symlink in the repository was not kept as is"
[ "$(git -C "$o/kept" rev-parse HEAD)" = "$c2" ] || fail "--keep-git-dir: HEAD is not $c2"
[ "$(git -C "$o/kept" remote get-url origin)" = "$URL" ] || fail "--keep-git-dir: origin is not the remote"
[ "$(cat "$o/kept/vendor/lib/lib.txt")" = "library code" ] || fail "--keep-git-dir: the submodule was not checked out"
[ -z "$(git -C "$o/kept" status --porcelain)" ] || fail "--keep-git-dir: the work tree is not clean"
[ -d "$o/nosub/vendor/lib" ] && [ ! -e "$o/nosub/vendor/lib/lib.txt" ] || fail "?submodules=false fetched the submodule"
[ "$(cat "$o/pinned/README")" = "version two" ] || fail "ADD --checksum=<commit> did not check out that commit"
pass "ADD of git URLs: default branch, annotated tag, commit id, subdir, keep-git-dir, submodules, checksum"

# ---- cache ----------------------------------------------------------------------------------
fetches() { grep -c "Request upload-pack" "$WORK/gitd.log" || true; }
before=$(fetches)
build again || fail "the rebuild failed: $(cat "$WORK/again.progress")"
[ "$(grep -c CACHED "$WORK/again.progress")" -ge 8 ] || fail "the rebuild was not cached: $(cat "$WORK/again.progress")"
# ls-remote only: the default-branch lookup and one per ADD that names a ref (a commit id
# needs none); nothing is fetched.
after=$(fetches)
[ $((after - before)) -le 8 ] || fail "the cached rebuild talked to the server $((after - before)) times"
pass "an unchanged repository rebuilds from cache with ls-remote only ($((after - before)) requests)"

# Moving main invalidates the step that follows main, not the tag's or the commit's.
echo "version three" >"$WORK/app/README"
g -C "$WORK/app" commit -qam three && g -C "$WORK/app" push -q origin HEAD:main
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B AS src
ADD $URL#v1 /tag
ADD $URL#$c1 /commit
ADD $URL /default
FROM scratch
COPY --from=src / /
DOCKERFILE
build moved || fail "the build after a push failed: $(cat "$WORK/moved.progress")"
[ "$(cat "$WORK/moved/default/README")" = "version three" ] || fail "the moved branch was not fetched"
# source_cached TEXT: the git source vertex of the step named TEXT (its first vertex) is CACHED.
source_cached() {
  local n
  n=$(grep -F "] $1" "$WORK/moved.progress" | head -n1 | sed 's/^#\([0-9]*\) .*/\1/')
  grep -q "^#$n CACHED" "$WORK/moved.progress"
}
source_cached "ADD $URL#v1 /tag" || fail "the tag's source was not cached: $(cat "$WORK/moved.progress")"
source_cached "ADD $URL#$c1 /commit" || fail "the commit's source was not cached"
source_cached "ADD $URL /default" && fail "the moved branch's source was cached"
[ "$(grep -c "fetching git://" "$WORK/moved.progress")" -eq 1 ] ||
  fail "not exactly one fetch after the push: $(cat "$WORK/moved.progress")"
pass "a pushed branch invalidates its ADD source only; one fetch"

# ---- errors ---------------------------------------------------------------------------------
expect_error() {  # expect_error NAME TEXT: the build of $ctx fails and its progress contains TEXT
  local rc=0
  build "$1" || rc=$?
  [ "$rc" -ne 0 ] || fail "$1: the build succeeded"
  assert_contains "$(cat "$WORK/$1.progress")" "$2" "$1"
}
printf 'FROM %s\nADD --checksum=%s %s /x\n' "$B" "$c1" "$URL" >"$ctx/Dockerfile"
expect_error bad-checksum "expected checksum to match $c1"
printf 'FROM %s\nADD %s#no-such-branch /x\n' "$B" "$URL" >"$ctx/Dockerfile"
expect_error bad-ref "does not contain ref no-such-branch"
printf 'FROM %s\nADD git://%s/missing.git /x\n' "$B" "$GITD" >"$ctx/Dockerfile"
expect_error bad-repo "git ls-remote failed"
printf 'FROM %s\nADD %s#main:sub/link /x\n' "$B" "$URL" >"$ctx/Dockerfile"
expect_error symlink-subdir "contains non-directory"
printf 'FROM %s\nCOPY %s /x\n' "$B" "$URL" >"$ctx/Dockerfile"
expect_error copy-git "source can't be a git ref for COPY"
printf 'FROM %s\nADD %s?branch=main&tag=v1 /x\n' "$B" "$URL" >"$ctx/Dockerfile"
expect_error branch-and-tag "branch conflicts with tag"
pass "git sources fail clearly: wrong checksum, missing ref or repository, symlinked subdir, COPY, bad query"
