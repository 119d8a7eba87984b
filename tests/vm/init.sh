#!/bin/busybox sh
# /init of the guest rig's initramfs (busybox sh; built into the initrd by tests/vm/setup.sh).
#
# Loads the drivers, mounts the host root (9p, read-only) at /newroot and the runner's writable
# share (9p) at /share, makes the host root usable as a system (guest /dev /proc /sys, tmpfs on
# /tmp /run /var/tmp), then chroots into it and runs tests/vm/guest.sh, which sets up the devices
# and runs the scenario. The scenario's exit code goes back through /share/rc and the
# isa-debug-exit port (0xf4).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
echo "vm-init: up $(cut -d' ' -f1 /proc/uptime)s"

# Quiet console: only errors from the kernel from now on.
echo 3 >/proc/sys/kernel/printk

for m in $(cat /etc/modules); do
    modprobe "$m" || echo "vm-init: modprobe $m failed"
done
mount -t configfs configfs /sys/kernel/config

die() {
    echo "vm-init: $*"
    echo 125 >/share/rc 2>/dev/null
    sync
    printf '\001' | dd of=/dev/port bs=1 seek=244 count=1 conv=notrunc 2>/dev/null
    poweroff -f
}

mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none vmshare /share ||
    die "cannot mount the share"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /newroot ||
    die "cannot mount the host root"
[ -f /share/boot.env ] || die "no /share/boot.env"
# GUEST_SCRIPT: host path of tests/vm/guest.sh; KEEP_TMP: names under the host's /tmp that must
# stay visible (a checkout or build below /tmp) once /tmp becomes a guest tmpfs.
. /share/boot.env

mount --bind /newroot/tmp /oldtmp
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
for p in $KEEP_TMP; do
    if [ -d "/oldtmp/$p" ]; then
        mkdir -p "/newroot/tmp/$p" && mount --bind "/oldtmp/$p" "/newroot/tmp/$p"
    elif [ -e "/oldtmp/$p" ]; then
        touch "/newroot/tmp/$p" && mount --bind "/oldtmp/$p" "/newroot/tmp/$p"
    fi
done
mkdir -p /newroot/tmp/vmshare
mount --bind /share /newroot/tmp/vmshare
mount --rbind /dev /newroot/dev
mount --rbind /proc /newroot/proc
mount --rbind /sys /newroot/sys
for d in /run /var/tmp /root; do
    [ -d "/newroot$d" ] && mount -t tmpfs -o mode=1777 tmpfs "/newroot$d"
done

echo "vm-init: chroot $(cut -d' ' -f1 /proc/uptime)s"
chroot /newroot /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb LANG=C.UTF-8 /bin/bash "$GUEST_SCRIPT" /tmp/vmshare </dev/console >/dev/console 2>&1
rc=$?
[ -f /share/rc ] || echo "$rc" >/share/rc
rc=$(cat /share/rc)
sync
umount /newroot/tmp/vmshare 2>/dev/null
umount /share 2>/dev/null
case "$rc" in
    0) code='\000' ;;
    77) code='\002' ;;
    *) code='\001' ;;
esac
printf "$code" | dd of=/dev/port bs=1 seek=244 count=1 conv=notrunc 2>/dev/null
poweroff -f
