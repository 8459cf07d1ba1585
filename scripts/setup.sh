#!/usr/bin/env bash
# Idempotent setup for mail-lab on Debian 12 (run as root).
#  1. installs the Debian packages the lab uses (named one by one, even those a
#     given image already has: a minimal Debian lacks many of them);
#  2. keeps the distribution's own service instances from starting (the lab runs
#     its own daemons inside namespaces, with its own config);
#  3. creates .venv with --system-site-packages, so Debian's mininet imports,
#     and installs the project into it.
# Re-running it is cheap: it skips what is already done.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

PACKAGES=(
  mininet iproute2 bridge-utils net-tools iputils-ping procps psmisc ethtool
  postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd
  bind9 bind9-utils bind9-dnsutils
  kea-dhcp4-server isc-dhcp-client
  tcpdump nftables openssl ca-certificates frr tshark chromium
  traceroute iputils-tracepath mtr-tiny swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl s-nail curl
  rspamd clamav-daemon fail2ban sslscan postfix-mta-sts-resolver
  squid nginx openvpn iptables
  libnetfilter-queue-dev build-essential python3-dev
  apache2 libapache2-mod-php php-cli roundcube-core roundcube-sqlite3
  chromium-driver python3-selenium libnss3-tools
  pebble certbot
  openssh-server openssh-client
  radicale python3-bcrypt apache2-utils python3-icalendar
  python3 python3-venv python3-pip python3-distutils
)
# postfix-mta-sts-resolver: mta-sts-daemon, the MTA-STS resolver beside each mail node's Postfix;
# squid, nginx (the proxy lab's forward proxy and web server), openvpn (the VPN lab);
# iptables and libnetfilter-queue-dev (+ a compiler and Python's headers, to build the
# NetfilterQueue module): the NFQUEUE link-delay helper, for kernels without tc netem
SERVICES=(postfix dovecot named bind9 kea-dhcp4-server isc-dhcp-server rspamd clamav-daemon clamav-freshclam fail2ban
  squid nginx openvpn apache2 ssh radicale postfix-mta-sts-resolver)

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it installs Debian packages and builds network namespaces)"
  exit 3
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix asks how to configure itself: the lab writes its own config per node.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string mail-lab.invalid" | debconf-set-selections
  # Roundcube: its own sqlite database (copied per node by the lab), no web server
  # restart and no change to the machine's Apache (each webmail node has its own copy).
  debconf-set-selections <<'SEL'
roundcube-core roundcube/dbconfig-install boolean true
roundcube-core roundcube/database-type select sqlite3
roundcube-core roundcube/restart-webserver boolean false
roundcube-core roundcube/reconfigure-webserver multiselect apache2
SEL
  # Keep the package scripts from starting the stock daemons in the root namespace.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
fi

# The stock instances, if a previous install started any, would hold ports in the
# root namespace; the lab never uses them.  Stop them by their own pid files.
for pidf in /run/dovecot/master.pid /var/spool/postfix/pid/master.pid /run/named/named.pid \
            /run/kea/kea-dhcp4.kea-dhcp4.pid /run/rspamd/rspamd.pid /run/clamav/clamd.pid \
            /run/clamav/freshclam.pid /run/fail2ban/fail2ban.pid /run/squid.pid /run/nginx.pid \
            /run/apache2/apache2.pid /run/sshd.pid /run/radicale.pid; do
  if [ -s "$pidf" ]; then
    pid=$(tr -dc 0-9 < "$pidf")
    if [ -n "$pid" ] && [ "$(readlink /proc/"$pid"/ns/net 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ]; then
      log "stopping stock daemon pid $pid ($pidf)"
      kill "$pid" 2>/dev/null || true
    fi
  fi
done

venv="$here/.venv"
stamp="$venv/.mail-lab-installed"
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  log "installing the project into $venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install -q -e "$here[test]"
  touch "$stamp"
fi
"$venv/bin/python" -c 'import mininet.net, mininet.nodelib' || { log "mininet does not import in $venv"; exit 3; }
"$venv/bin/python" -c 'import scapy.layers.l2, scapy.layers.dns, scapy.layers.dhcp' || { log "scapy does not import in $venv"; exit 3; }
log "ready"
