#!/bin/sh
# mail-lab dhclient script (dhclient -sf). POSIX sh; needs only `ip` (iproute2).
#
# dhclient does not pass its own environment to this script: the lab passes
# the node's paths with `dhclient -e VAR=value`:
#   RESOLV_CONF  the node's resolv.conf, bind-mounted over /etc/resolv.conf inside
#                the host. Rewritten IN PLACE (truncate + write), never replaced by
#                mv: the bind mount pins the original inode.
#   LAB_LOG      optional: append one line per event to this file.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() {
    if [ -n "${LAB_LOG:-}" ]; then
        printf '%s %s %s\n' "$(date +%s)" "${interface:-?}" "$*" >>"$LAB_LOG"
    fi
}

# 255.255.255.0 -> 24
mask2prefix() {
    _bits=0
    _old_ifs=$IFS
    IFS=.
    set -- $1
    IFS=$_old_ifs
    for _octet in "$@"; do
        case $_octet in
            255) _bits=$((_bits + 8)) ;;
            254) _bits=$((_bits + 7)) ;;
            252) _bits=$((_bits + 6)) ;;
            248) _bits=$((_bits + 5)) ;;
            240) _bits=$((_bits + 4)) ;;
            224) _bits=$((_bits + 3)) ;;
            192) _bits=$((_bits + 2)) ;;
            128) _bits=$((_bits + 1)) ;;
            0) ;;
            *) return 1 ;;
        esac
    done
    echo "$_bits"
}

write_resolv_conf() {
    [ -n "${RESOLV_CONF:-}" ] || return 0
    _search=${new_domain_search:-$new_domain_name}
    _content="# written by mail-lab dhclient-script for ${interface} (${reason})"
    if [ -n "$_search" ]; then
        _content="${_content}
search ${_search}"
    fi
    for _ns in $new_domain_name_servers; do
        _content="${_content}
nameserver ${_ns}"
    done
    # '>' truncates and writes the same inode (keeps the bind mount valid).
    printf '%s\n' "$_content" >"$RESOLV_CONF"
}

remove_old_address() {
    [ -n "${old_ip_address:-}" ] || return 0
    _prefix=$(mask2prefix "${old_subnet_mask:-255.255.255.255}") || _prefix=32
    for _r in ${old_routers:-}; do
        ip -4 route del default via "$_r" dev "$interface" 2>/dev/null
    done
    ip -4 addr del "$old_ip_address/$_prefix" dev "$interface" 2>/dev/null
    return 0
}

log "$reason new=${new_ip_address:-} old=${old_ip_address:-}"

case "$reason" in
    MEDIUM | ARPCHECK | ARPSEND)
        exit 0
        ;;
    PREINIT)
        ip link set dev "$interface" up
        exit 0
        ;;
    BOUND | RENEW | REBIND | REBOOT)
        prefix=$(mask2prefix "${new_subnet_mask:-255.255.255.255}") || {
            log "bad subnet mask $new_subnet_mask"
            exit 1
        }
        if [ -n "${old_ip_address:-}" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
            remove_old_address
        fi
        if [ -n "${new_broadcast_address:-}" ]; then
            ip -4 addr replace "$new_ip_address/$prefix" broadcast "$new_broadcast_address" dev "$interface" || exit 1
        else
            ip -4 addr replace "$new_ip_address/$prefix" dev "$interface" || exit 1
        fi
        for router in ${new_routers:-}; do
            # first router is the default gateway
            ip -4 route replace default via "$router" dev "$interface" || log "route via $router failed"
            break
        done
        write_resolv_conf
        exit 0
        ;;
    EXPIRE | RELEASE | STOP | FAIL | EXPIRE6 | RELEASE6 | STOP6)
        remove_old_address
        exit 0
        ;;
    TIMEOUT)
        # no server answered and the saved lease was not checked: refuse it
        remove_old_address
        exit 1
        ;;
    *)
        exit 0
        ;;
esac
