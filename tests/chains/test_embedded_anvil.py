"""The embedded chains: started once and reused, their state kept across a stop and a start (so the
chain and the database, which also survives, never disagree), gone with `make clean`'s data."""

from __future__ import annotations

import shutil
import sys
import uuid

from tests.conftest import ROOT
from tests.subprocesses import command_env, describe, run

RECIPIENT = "0x000000000000000000000000000000000000dEaD"
SCRIPT = """
import json, sys, time
from config import embedded
command = sys.argv[1]
if command == "stop":
    embedded.stop_anvil()
    print(json.dumps({"stopped": embedded.anvil_instances()}))
    sys.exit(0)
url = embedded.anvil_url("ethereum", 31337, profile="test")
again = embedded.anvil_url("ethereum", 31337, profile="test")  # reused, not started twice
pid = (embedded.ANVIL_DIR / "test-ethereum.pid").read_text()
if command == "send":
    sender = embedded.ipc_request(url, "eth_accounts")[0]
    tx = embedded.ipc_request(url, "eth_sendTransaction", [{"from": sender, "to": sys.argv[2], "value": hex(12345)}])
    while embedded.ipc_request(url, "eth_getTransactionReceipt", [tx]) is None:  # mined just after it answers
        time.sleep(0.02)
print(json.dumps({"url": url, "same": url == again, "pid": pid,
                  "block": int(embedded.ipc_request(url, "eth_blockNumber"), 16),
                  "balance": int(embedded.ipc_request(url, "eth_getBalance", [sys.argv[2], "latest"]), 16)}))
"""


def test_a_chain_keeps_its_state_across_a_stop_and_a_start_and_clean_resets_it():
    import json

    # A data directory of its own, so the suite's own chains are not stopped.
    data_dir = ROOT / ".data" / f"anvil-restart-{uuid.uuid4().hex[:8]}"
    env = command_env(ISSUER_DATA_DIR=str(data_dir))

    def step(*args):
        result = run([sys.executable, "-c", SCRIPT, *args], env=env, timeout_s=60)
        assert result.returncode == 0, describe(result)
        return json.loads(result.stdout.splitlines()[-1])

    try:
        sent = step("send", RECIPIENT)
        assert sent["same"] and sent["balance"] == 12345 and sent["block"] >= 1
        assert sent["url"] == str(data_dir / "anvil" / "test-ethereum.ipc")
        assert step("read", RECIPIENT)["pid"] == sent["pid"]  # reused by the next command

        assert step("stop")["stopped"] == []
        assert (data_dir / "anvil" / "test-ethereum.json").is_file()
        restarted = step("read", RECIPIENT)
        assert restarted["pid"] != sent["pid"]
        assert (restarted["block"], restarted["balance"]) == (sent["block"], 12345)

        step("stop")
        shutil.rmtree(data_dir)  # what `make clean` does to .data
        fresh = step("read", RECIPIENT)
        assert (fresh["block"], fresh["balance"]) == (0, 0)
    finally:
        run([sys.executable, "-c", SCRIPT, "stop"], env=env)
        shutil.rmtree(data_dir, ignore_errors=True)
