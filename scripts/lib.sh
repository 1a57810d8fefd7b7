# shellcheck shell=bash
#
# lib.sh - shell helpers shared by scripts/test and scripts/demo.
#
# Source it from bash; it sets MARKETFS_ROOT to the repository root and
# defines:
#   mf_die MSG...          print "error: MSG" on stderr and exit 1
#   mf_as_root CMD...      run CMD as root (directly, or with sudo)
#   mf_install_deps        apt-get install what is missing (Debian 12)
#   mf_fuse_ready          load the fuse module when /dev/fuse is missing
#   mf_build DIR [TARGET...]  meson setup (or reconfigure) DIR, then ninja

MARKETFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export MARKETFS_ROOT

mf_die()
{
	printf 'error: %s\n' "$*" >&2
	exit 1
}

mf_as_root()
{
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		mf_die "need root to run '$*' (no sudo here); run as root"
	fi
}

# Debian packages the build, the tests and the demo use.  A package is
# installed only when dpkg does not already report it installed.
MF_PACKAGES=(
	meson ninja-build gcc pkg-config
	libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libjansson-dev
	libcmocka-dev scdoc
	jq attr python3 sqlite3 dcmtk bcftools samtools nginx openssl
	faketime libfaketime fio
)

mf_pkg_installed()
{
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
		grep -q 'install ok installed'
}

mf_install_deps()
{
	local missing=() p

	if ! command -v dpkg-query >/dev/null 2>&1; then
		echo "note: not a Debian system; not installing packages" >&2
		return 0
	fi
	for p in "${MF_PACKAGES[@]}"; do
		mf_pkg_installed "$p" || missing+=("$p")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	echo "Installing missing packages: ${missing[*]}"
	mf_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
		mf_die "apt-get update failed"
	mf_as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		mf_die "apt-get install failed: ${missing[*]}"
}

mf_fuse_ready()
{
	if [ ! -e /dev/fuse ]; then
		mf_as_root modprobe fuse >/dev/null 2>&1 || true
	fi
	if [ ! -e /dev/fuse ]; then
		echo "warning: /dev/fuse is missing; mounting will not work" >&2
	fi
	return 0
}

mf_build()
{
	local dir=$1

	shift

	cd "$MARKETFS_ROOT" || mf_die "cannot cd to $MARKETFS_ROOT"
	if [ -d "$dir/meson-private" ]; then
		# Reconfigure; if the old configuration cannot be reused (a
		# meson upgrade, an interrupted setup), start it afresh.
		meson setup --reconfigure "$dir" ||
			meson setup --wipe "$dir" ||
			mf_die "meson setup --reconfigure $dir failed"
	else
		meson setup "$dir" || mf_die "meson setup $dir failed"
	fi
	ninja -C "$dir" "$@" || mf_die "build failed (ninja -C $dir${*:+ $*})"
}
