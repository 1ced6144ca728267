"""Debian's Chromium as the web board's tests and benchmark drive it (through Playwright).

What a probe of this kind of machine found it needs: no sandbox as root, no GPU, and none of
its background connections (the network is closed). Playwright's own browser download cannot
work here, so it is pointed at this executable.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
