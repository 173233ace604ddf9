"""A local Solana RPC of a test's own (chains.solana_rpc.server in a subprocess), for what the shared
test node cannot show quickly: blockhash expiry with a short validity window, restarts."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from config.embedded import PROJECT_ROOT, _solana_healthy


@contextlib.contextmanager
def own_solana_node(state_dir: Path, *, slot_ms: int = 50, valid_blocks: int = 150, finality_slots: int = 32):
    port_file = state_dir.parent / f"{state_dir.name}.port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "chains.solana_rpc.server", "--state-dir", str(state_dir), "--port-file", str(port_file),
         "--slot-ms", str(slot_ms), "--valid-blocks", str(valid_blocks), "--finality-slots", str(finality_slots)],
        cwd=PROJECT_ROOT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text() and _solana_healthy(int(port_file.read_text()))):
            assert process.poll() is None and time.monotonic() < deadline, "the local Solana RPC did not start"
            time.sleep(0.05)
        yield process, f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(20)
