#!/usr/bin/env bash
# Replays the build stage of deploy/Containerfile without a container runtime, so that a change
# to the workspace (a new crate, bench, example or target) that the Containerfile does not follow
# fails here instead of in someone's `docker build`:
#   1. every COPY of the build stage copies from the repository (the build context) into a
#      temporary directory standing for the stage's WORKDIR, keeping file times as COPY does;
#   2. every RUN of the build stage runs there as written, with two stand-ins on the PATH:
#      `cargo build --release ...` runs as `cargo check ...` (same targets and flags, no release
#      build: this proves the manifests resolve with --locked, every declared target has its file,
#      the stubs compile, and the real sources compile as copied — a stub left behind by a
#      missing `touch` included), and `strip` only checks its argument is under target/release;
#   3. the sources of the final stage's COPY lines (other than --from) must exist.
# Environment: CONTAINERFILE (deploy/Containerfile), CONTAINER_CHECK_TARGET (the target directory,
# default target/container-check: kept between runs so dependencies are checked once; never the
# repository's own target/, where cargo would take the replayed crates — same names, same paths
# relative to their workspace, so the same artefact hashes — for the real ones), KEEP=1 keeps the
# replayed work directory.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CF=${CONTAINERFILE:-deploy/Containerfile}
export CARGO_TARGET_DIR=${CONTAINER_CHECK_TARGET:-$ROOT/target/container-check}
[ "$(readlink -f "$CARGO_TARGET_DIR")" != "$(readlink -f "$ROOT/target")" ] \
    || { echo "container-check: not the repository's own target/ (see the header)" >&2; exit 1; }
REAL_CARGO=$(command -v cargo) || { echo "container-check: cargo not found" >&2; exit 1; }

say()  { printf '==> %s\n' "$*"; }
die()  { printf 'container-check: %s\n' "$*" >&2; exit 1; }

[ -f "$CF" ] || die "no $CF"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/container-check.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
WORK=$TMP/work
SHIMS=$TMP/shims
mkdir -p "$WORK" "$SHIMS"

# Stand-ins for the two commands a container build has and a test run must not do.
cat >"$SHIMS/cargo" <<EOF
#!/usr/bin/env bash
# cargo as deploy/Containerfile calls it, with 'build --release' checked instead of built.
set -euo pipefail
echo "cargo \$*" >>"$TMP/cargo.log"
args=()
sub=
for a in "\$@"; do
    case "\$a" in
        --release) ;;
        build) if [ -z "\$sub" ]; then sub=check; args+=(check); else args+=("\$a"); fi ;;
        -*) args+=("\$a") ;;
        *) [ -n "\$sub" ] || sub=\$a; args+=("\$a") ;;
    esac
done
exec "$REAL_CARGO" "\${args[@]}"
EOF
cat >"$SHIMS/strip" <<'EOF'
#!/usr/bin/env bash
# strip: the release binary is not built here; its path must be the one cargo would produce.
for a in "$@"; do
    case "$a" in
        -*) ;;
        target/release/*) echo "strip $a: skipped (no release build in the check)" ;;
        *) echo "container-check: strip of $a, not a target/release/ binary" >&2; exit 1 ;;
    esac
done
EOF
chmod +x "$SHIMS/cargo" "$SHIMS/strip"

# The Containerfile as one instruction per line: continuations joined, comments dropped.
instructions() {
    awk '
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*$/ { if (!cont) next; else next }
        {
            line = $0
            if (cont) { sub(/^[[:space:]]+/, "", line); buf = buf " " line } else { buf = line }
            if (buf ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, "", buf); cont = 1; next }
            cont = 0; print buf
        }
        END { if (cont) print buf }' "$1"
}

# copy_into DEST SRC...: COPY's rules: a directory's contents (not the directory itself), files
# into DEST/ when DEST ends in / or there are several sources, times kept.
copy_into() {
    local dest=$1; shift
    local n=$#
    if [[ "$dest" == */ ]] || [ "$n" -gt 1 ]; then mkdir -p "$dest"; fi
    local src
    for src in "$@"; do
        [ -e "$src" ] || die "COPY $src: no such file in the build context"
        if [ -d "$src" ]; then
            mkdir -p "$dest"
            cp -a "$src/." "$dest/"
        elif [ -d "$dest" ]; then
            cp -p "$src" "$dest/"
        else
            mkdir -p "$(dirname "$dest")"
            cp -p "$src" "$dest"
        fi
    done
}

stage=0
build_stage=
workdir=/
runs=0
copies=0
while IFS= read -r line; do
    instr=$(printf '%s' "${line%%[[:space:]]*}" | tr '[:lower:]' '[:upper:]')
    args=${line#*[[:space:]]}
    args=${args#"${args%%[![:space:]]*}"}
    case "$instr" in
        FROM)
            stage=$((stage + 1))
            if [ -z "$build_stage" ]; then
                build_stage=$stage
                say "build stage: FROM $args"
            else
                say "stage $stage: FROM $args (only its COPY sources are checked)"
            fi
            ;;
        WORKDIR)
            [ "$stage" = "$build_stage" ] && workdir=$args
            ;;
        COPY|ADD)
            [[ "$args" == \[* ]] && die "$instr in JSON form is not replayed: $line"
            read -r -a words <<<"$args"
            from=
            files=()
            for w in "${words[@]}"; do
                case "$w" in
                    --from=*) from=${w#--from=} ;;
                    --*) ;;
                    *) files+=("$w") ;;
                esac
            done
            [ "${#files[@]}" -ge 2 ] || die "cannot read: $line"
            dest=${files[-1]}
            unset 'files[-1]'
            if [ -n "$from" ]; then
                continue
            fi
            # Sources are paths in the build context (globs as COPY expands them).
            srcs=()
            for f in "${files[@]}"; do
                # shellcheck disable=SC2206
                matches=( $f )
                for m in "${matches[@]}"; do
                    [ -e "$m" ] || die "$instr $f: nothing in the build context matches ($line)"
                    srcs+=("$m")
                done
            done
            if [ "$stage" != "$build_stage" ]; then
                say "COPY ${srcs[*]} (exists)"
                continue
            fi
            case "$dest" in
                /*)
                    [[ "$dest" == "$workdir"* ]] || die "COPY to $dest, outside WORKDIR $workdir"
                    rel=${dest#"$workdir"}; rel=${rel#/}
                    ;;
                *) rel=$dest ;;
            esac
            target_path=$WORK/${rel#./}
            [ -n "${rel#./}" ] || target_path=$WORK/
            [[ "$dest" == */ ]] && [[ "$target_path" != */ ]] && target_path=$target_path/
            say "COPY ${srcs[*]} -> $dest"
            copy_into "$target_path" "${srcs[@]}"
            copies=$((copies + 1))
            ;;
        RUN)
            [ "$stage" = "$build_stage" ] || continue
            [[ "$args" == \[* ]] && die "RUN in JSON form is not replayed: $line"
            say "RUN $args"
            (cd "$WORK" && PATH="$SHIMS:$PATH" sh -ec "$args") \
                || die "the build stage fails at: RUN $args"
            runs=$((runs + 1))
            ;;
        ENV)
            [ "$stage" = "$build_stage" ] && die "ENV in the build stage is not replayed: $line"
            ;;
        *)
            ;;
    esac
done < <(instructions "$CF")

[ -n "$build_stage" ] || die "no FROM in $CF"
[ "$copies" -gt 0 ] && [ "$runs" -gt 0 ] || die "the build stage has no COPY or no RUN"
builds=$(grep -c '^cargo build' "$TMP/cargo.log" 2>/dev/null || true)
[ "${builds:-0}" -gt 0 ] || die "the build stage never runs cargo build"
say "ok: the build stage of $CF resolves and compiles ($builds cargo build(s), checked)"
