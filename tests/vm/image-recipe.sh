#!/bin/bash
# Builds the gafix test image into $1 (an empty directory). Sourced by `testvm build`;
# the cache key is the hash of this file, so any change here rebuilds the image.
# Needs: debootstrap, dpkg-dev (dpkg-scanpackages), e2fsprogs, root.
set -euo pipefail
OUT=$1
ROOT=$OUT/rootfs
SUITE=bookworm
BASE_PACKAGES=systemd-sysv,openssh-server,udev,dbus,libpam-systemd,sudo,iproute2,procps,kmod,initramfs-tools,zstd,ca-certificates

# shellcheck source=tests/vm/mirror.sh
. "$(dirname "${BASH_SOURCE[0]}")/mirror.sh"
MIRROR=$(debian_mirror)

echo "image-recipe: debootstrap $SUITE from the machine's configured mirror" >&2
debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 ||
    { tail -n 30 "$OUT/debootstrap.log" >&2; exit 1; }

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
mount_api() { mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"; mount --bind /dev "$ROOT/dev"; }
umount_api() { umount -l "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" 2>/dev/null || true; }
trap umount_api EXIT
mount_api

# A small initrd: only what a virtio guest needs to find its root disk.
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOT/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_net virtio_console ext4 >"$ROOT/etc/initramfs-tools/modules"
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
in_root apt-get update -qq
echo "image-recipe: kernel" >&2
in_root apt-get install -y -qq --no-install-recommends linux-image-amd64 >"$OUT/kernel.log" 2>&1 ||
    { tail -n 30 "$OUT/kernel.log" >&2; exit 1; }

# The local flat repository: qemu-guest-agent and its dependencies, downloaded, not installed.
echo "image-recipe: local apt repository" >&2
mkdir -p "$ROOT/srv/debs"
in_root apt-get install -y -qq --download-only --no-install-recommends qemu-guest-agent >/dev/null
cp "$ROOT"/var/cache/apt/archives/*.deb "$ROOT/srv/debs/"
in_root apt-get clean

# gafix-testpkg: version 1 installed, version 2 in the repository; 2's postinst asks for a reboot.
make_testpkg() {
    local version=$1 dir
    dir=$(mktemp -d)
    mkdir -p "$dir/DEBIAN" "$dir/usr/share/gafix-testpkg"
    echo "$version" >"$dir/usr/share/gafix-testpkg/version"
    cat >"$dir/DEBIAN/control" <<CONTROL
Package: gafix-testpkg
Version: $version
Architecture: all
Maintainer: gafix tests <tests@gafix.invalid>
Description: gafix test package
 Version 2 requests a reboot from its postinst, like a kernel update does.
CONTROL
    if [ "$version" = 2 ]; then
        printf '#!/bin/sh\nset -e\ntouch /var/run/reboot-required\necho gafix-testpkg >>/var/run/reboot-required.pkgs\n' >"$dir/DEBIAN/postinst"
        chmod 755 "$dir/DEBIAN/postinst"
    fi
    dpkg-deb --root-owner-group --build "$dir" "$OUT/gafix-testpkg_${version}_all.deb" >/dev/null
    rm -rf "$dir"
}
make_testpkg 1
make_testpkg 2

# gafix-benchsvc: a package with a service that can run in a container (the benchmark's
# stand-in for qemu-guest-agent). No maintainer scripts: installed, it is disabled and stopped.
make_benchsvc() {
    local dir
    dir=$(mktemp -d)
    mkdir -p "$dir/DEBIAN" "$dir/lib/systemd/system"
    printf 'Package: gafix-benchsvc\nVersion: 1\nArchitecture: all\nMaintainer: gafix tests <tests@gafix.invalid>\nDescription: gafix benchmark service\n A unit that runs sleep.\n' >"$dir/DEBIAN/control"
    printf '[Unit]\nDescription=gafix benchmark service\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n' \
        >"$dir/lib/systemd/system/gafix-benchsvc.service"
    dpkg-deb --root-owner-group --build "$dir" "$ROOT/srv/debs/gafix-benchsvc_1_all.deb" >/dev/null
    rm -rf "$dir"
}
make_benchsvc
cp "$OUT/gafix-testpkg_2_all.deb" "$ROOT/srv/debs/"
cp "$OUT/gafix-testpkg_1_all.deb" "$ROOT/tmp/"
in_root dpkg -i /tmp/gafix-testpkg_1_all.deb >/dev/null
rm "$ROOT/tmp/gafix-testpkg_1_all.deb"
(cd "$ROOT/srv/debs" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages)
echo "deb [trusted=yes] file:/srv/debs ./" >"$ROOT/etc/apt/sources.list"
rm -rf "$ROOT"/var/lib/apt/lists/*
in_root apt-get update -qq

echo "image-recipe: configuration" >&2
echo gafix-test >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 gafix-test\n' >"$ROOT/etc/hosts"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$ROOT/etc/fstab"
mkdir -p "$ROOT/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$ROOT/etc/systemd/network/20-dhcp.network"
# Containers share the controller's network namespace: networkd must not touch it there.
mkdir -p "$ROOT/etc/systemd/system/systemd-networkd.service.d"
printf '[Unit]\nConditionVirtualization=!container\n' >"$ROOT/etc/systemd/system/systemd-networkd.service.d/vm-only.conf"
in_root systemctl enable systemd-networkd ssh >/dev/null 2>&1
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1
# Root's user manager can hang on stop under cgroup v1; lingering keeps it alive across logins.
mkdir -p "$ROOT/var/lib/systemd/linger" && touch "$ROOT/var/lib/systemd/linger/root"

ssh-keygen -q -t ed25519 -N '' -C gafix-tester -f "$OUT/id_ed25519"
in_root useradd -m -s /bin/bash tester
echo 'tester ALL=(ALL) NOPASSWD:ALL' >"$ROOT/etc/sudoers.d/tester" && chmod 440 "$ROOT/etc/sudoers.d/tester"
for home in "$ROOT/root" "$ROOT/home/tester"; do
    install -d -m 700 "$home/.ssh"
    install -m 600 "$OUT/id_ed25519.pub" "$home/.ssh/authorized_keys"
done
in_root chown -R tester:tester /home/tester/.ssh
in_root passwd -d root >/dev/null
rm -f "$ROOT"/etc/ssh/ssh_host_*
in_root ssh-keygen -q -A
cp "$ROOT/etc/ssh/ssh_host_ed25519_key.pub" "$OUT/host_key.pub"
printf 'UseDNS no\nPermitRootLogin prohibit-password\nMaxStartups 200\nMaxSessions 100\n' >"$ROOT/etc/ssh/sshd_config.d/gafix-test.conf"
# Serial console login is handy when a test VM misbehaves.
in_root systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1 || true
: >"$ROOT/etc/machine-id"

umount_api
trap - EXIT
cp "$ROOT"/boot/vmlinuz-* "$OUT/vmlinuz"
cp "$ROOT"/boot/initrd.img-* "$OUT/initrd.img"
echo "image-recipe: disk image" >&2
mkfs.ext4 -q -F -L root -d "$ROOT" "$OUT/base.img" 3G
