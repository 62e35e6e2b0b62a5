#!/usr/bin/env bash
# Build the two images and record how long each build took and how big each image is:
#   - adl-student: from the student edition (make student), the image students run; checked for solutions;
#   - adl-instructor: from this repository (Dockerfile at the root), never for students.
# Uses docker where a Docker engine runs, else podman (apt install podman). Results: benchmarks/images.txt.
#
# Where Docker Hub cannot be reached (this project's CI machines reach only the package registries), the base
# images python:3.13-slim and python:3.12-slim are stood in for by local ones with the same layout: a Debian
# 12 root file system from Debian's packages (debootstrap) and this machine's CPython of that version in
# /usr/local. The script says so when it does; sizes are then comparable, not identical, to the real base.
#
#   bash benchmarks/build_images.sh            # both images
#   ENGINE=podman bash benchmarks/build_images.sh student
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHICH=${1:-all}
ENGINE=${ENGINE:-$( (docker info >/dev/null 2>&1 && echo docker) || (command -v podman >/dev/null && echo podman) || echo none)}
[ "$ENGINE" != none ] || { echo "build_images: neither a running Docker engine nor podman (apt install podman)" >&2; exit 1; }
WORK=$ROOT/build/images
OUT=$ROOT/benchmarks/images.txt
mkdir -p "$WORK"
PY=${PYTHON:-.venv/bin/python}
BUILD_OPTS=(--network host)
[ "$ENGINE" = podman ] && BUILD_OPTS+=(--isolation chroot)

log() { printf '%s\n' "$*" | tee -a "$WORK/log.txt"; }

# A local stand-in for docker.io/library/python:X.Y-slim, when that cannot be pulled.
standin_base() {
    local tag=$1 version=${1#python:}; version=${version%-slim}
    local src rootfs=$WORK/rootfs-$version
    src=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".* 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$src" ] || src=$(dirname "$(dirname "$(command -v "python$version")")")
    [ -x "$src/bin/python$version" ] || { echo "build_images: no local Python $version to stand in for $tag" >&2; exit 1; }
    log "note: $tag cannot be pulled here; standing in: Debian 12 (debootstrap) + $($src/bin/python$version -V) from $src"
    if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include=ca-certificates,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libuuid1,netbase,tzdata \
            bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap-$version.log"
    fi
    rm -rf "$rootfs/usr/local"; mkdir -p "$rootfs/usr/local"
    cp -a "$src/bin" "$src/include" "$src/lib" "$rootfs/usr/local/"
    rm -rf "$rootfs/usr/local/lib/python$version/test" "$rootfs/usr/local/lib/python$version/idlelib" \
        "$rootfs/usr/local/lib/python$version/tkinter" "$rootfs/var/cache/apt/archives/"*.deb
    find "$rootfs/usr/local" -name __pycache__ -prune -exec rm -rf {} +
    ln -sf "python$version" "$rootfs/usr/local/bin/python"
    chroot "$rootfs" /sbin/ldconfig
    tar -C "$rootfs" -c . | $ENGINE import --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$tag" >/dev/null
}

base() {
    $ENGINE image inspect "$1" >/dev/null 2>&1 && return
    timeout 60 $ENGINE pull "docker.io/library/$1" >/dev/null 2>&1 && return
    standin_base "$1"
}

size_of() { $ENGINE image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

build() {  # name context
    local name=$1 context=$2 start end
    base "$(awk 'toupper($1) == "FROM" {print $2; exit}' "$context/Dockerfile")"
    start=$(date +%s)
    $ENGINE build "${BUILD_OPTS[@]}" -t "$name" "$context" >"$WORK/build-$name.log" 2>&1 \
        || { tail -30 "$WORK/build-$name.log" >&2; exit 1; }
    end=$(date +%s)
    log "$name: built in $((end - start)) s, $(size_of "$name") ($ENGINE, $(date -u +%Y-%m-%d), $(nproc) cores)"
}

: >"$WORK/log.txt"
if [ "$WHICH" = all ] || [ "$WHICH" = student ]; then
    $PY course/student_edition.py build build/student-image
    build adl-student build/student-image
    # What students receive: no solution, hidden test or sample submission anywhere in the image's course
    # folder or its installed helpers; the helpers import; TensorFlow runs.
    cid=$($ENGINE create adl-student)
    rm -rf "$WORK/student-fs"; mkdir -p "$WORK/student-fs"
    $ENGINE export "$cid" | tar -C "$WORK/student-fs" -x
    $ENGINE rm "$cid" >/dev/null
    $PY course/student_edition.py scan "$WORK/student-fs/home/student/course" \
        "$(ls -d "$WORK"/student-fs/usr/local/lib/python3.*/site-packages/adl_helpers)" | tee -a "$WORK/log.txt"
    check='import adl_helpers, tensorflow as tf; print("adl_helpers", adl_helpers.__version__, "| TensorFlow", tf.__version__, "| sum of 0..4:", int(tf.reduce_sum(tf.range(5))))'
    # Some machines (containers without CAP_SYS_RESOURCE) cannot start a container: run the image's own
    # file system with chroot instead.
    { $ENGINE run --rm adl-student python -c "$check" 2>/dev/null \
        || unshare --mount --fork sh -c 'fs=$1; shift; mount -t proc proc "$fs/proc" && mount --rbind /dev "$fs/dev" &&
               exec chroot --userspec=1000:1000 "$fs" /usr/bin/env HOME=/home/student "$@"' sh "$WORK/student-fs" \
               /usr/local/bin/python -c "$check"; } | tee -a "$WORK/log.txt"
    rm -rf "$WORK/student-fs"
fi
if [ "$WHICH" = all ] || [ "$WHICH" = instructor ]; then
    build adl-instructor "$ROOT"
    cid=$($ENGINE create adl-instructor)
    listing=$($ENGINE export "$cid" | tar -t | grep -c '^home/instructor/course/source/' || true)
    $ENGINE rm "$cid" >/dev/null
    log "adl-instructor: holds source/ (solutions, hidden tests): $listing files; never give it to students"
fi
cp "$WORK/log.txt" "$OUT"
echo "written: benchmarks/images.txt"
