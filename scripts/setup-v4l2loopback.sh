#!/usr/bin/env bash
# Create the virtual camera avatarify sends to on Linux: installs v4l2loopback (DKMS) if needed and
# loads it with exclusive_caps=1 (so Chrome, Zoom and Teams list it) and a readable card label.
#
#   scripts/setup-v4l2loopback.sh [--persist] [--label NAME] [--device-number N]
#
#   --persist        also load it at every boot (/etc/modules-load.d, /etc/modprobe.d)
#   --label NAME     the camera's name in apps (default: Avatarify)
#   --device-number  create /dev/videoN (default: 10)
set -euo pipefail

label="Avatarify"
number=10
persist=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --persist) persist=1; shift ;;
        --label) label="$2"; shift 2 ;;
        --device-number) number="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ "$(uname -s)" != "Linux" ]]; then
    echo "v4l2loopback is for Linux. On Windows install OBS Studio 26+ (or Unity Capture);" >&2
    echo "on macOS install OBS Studio 30+ and click 'Start Virtual Camera' once." >&2
    exit 1
fi

sudo=""
if [[ $EUID -ne 0 ]]; then
    sudo="sudo"
fi

install_module() {
    echo "Installing v4l2loopback..."
    if command -v apt-get >/dev/null; then
        $sudo apt-get install -y v4l2loopback-dkms v4l2loopback-utils "linux-headers-$(uname -r)" || \
            $sudo apt-get install -y v4l2loopback-dkms v4l2loopback-utils
    elif command -v dnf >/dev/null; then
        $sudo dnf install -y v4l2loopback akmod-v4l2loopback || {
            echo "On Fedora v4l2loopback comes from RPM Fusion: enable it, then run this again." >&2; exit 1; }
    elif command -v pacman >/dev/null; then
        $sudo pacman -S --needed --noconfirm v4l2loopback-dkms linux-headers
    elif command -v zypper >/dev/null; then
        $sudo zypper install -y v4l2loopback-kmp-default v4l2loopback-utils
    else
        echo "Install the v4l2loopback kernel module with your distribution's package manager, then run this again." >&2
        exit 1
    fi
}

if ! modinfo v4l2loopback >/dev/null 2>&1; then
    install_module
fi

if lsmod | grep -q '^v4l2loopback'; then
    echo "Reloading v4l2loopback with avatarify's options (programs using a virtual camera must be closed)..."
    $sudo modprobe -r v4l2loopback
fi

options=(devices=1 "video_nr=${number}" exclusive_caps=1 "card_label=${label}")
if ! output=$($sudo modprobe v4l2loopback "${options[@]}" 2>&1); then
    echo "$output" >&2
    if grep -qi "key was rejected\|required key not available" <<<"$output"; then
        echo "Secure Boot refuses the unsigned module. Enrol the DKMS signing key and reboot:" >&2
        echo "  sudo mokutil --import /var/lib/dkms/mok.pub   (then choose 'Enroll MOK' at the next boot)" >&2
        echo "or turn Secure Boot off in the firmware settings." >&2
    elif grep -qi "not found" <<<"$output"; then
        echo "The module is not built for kernel $(uname -r): install its headers and reinstall v4l2loopback-dkms," >&2
        echo "or reboot if the kernel was just updated." >&2
    fi
    exit 1
fi

if [[ $persist -eq 1 ]]; then
    echo "v4l2loopback" | $sudo tee /etc/modules-load.d/avatarify-v4l2loopback.conf >/dev/null
    echo "options v4l2loopback devices=1 video_nr=${number} exclusive_caps=1 card_label=\"${label}\"" | \
        $sudo tee /etc/modprobe.d/avatarify-v4l2loopback.conf >/dev/null
    echo "It will be loaded at every boot."
fi

echo "Virtual camera ready: /dev/video${number} (\"${label}\"). Start avatarify with --vcam-device /dev/video${number}"
echo "or let it pick the first virtual camera."
