# Debian packages the tests need; installed only when missing (CI runs as root on a fresh machine).
APT_PACKAGES := chromium python3-torch python3-torchvision python3-numpy python3-pytest python3-flatbuffers python3-onnx python3-pil

SETUP_TARGETS += apt-deps

.PHONY: apt-deps
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
