"""Reliability: the chain executor when the node behind the configured RPC URL misbehaves. A real local
JSON-RPC server over HTTP stands between the adapter and the test anvil; it forwards each call to anvil
unchanged, or answers a fault instead: a page that is not JSON, HTTP 500, a JSON-RPC error, a result that is
not what the method returns, or another chain's id (mainnet's).

What must hold: the run fails (no pretend success), nothing is recorded (the ledger's head, the mint's state
and no operation confirmed), and once the node answers properly again the mint is minted, its reference on
chain exactly once, and the ledger verifies."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chains import evm as chains_evm
from chains.evm import evm_chain, ref_bytes
from chains.executor import execute_pending
from ledger import selectors
from mint_redeem import jobs, services
from mint_redeem.models import ChainOperation, MintRequest
from mint_redeem.tasks import advance_request
from tests.subprocesses import assert_ledger_verifies

pytestmark = pytest.mark.reliability

EVERYTHING_BUT_THE_CHAIN_ID = "everything-but-eth_chainId"


def forward_over_ipc(path: str, body: bytes) -> bytes:
    """One JSON-RPC exchange with anvil over its Unix socket, returned as anvil wrote it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(body)
        buffer, decoder = b"", json.JSONDecoder()
        while True:
            chunk = sock.recv(65536)
            assert chunk, "anvil closed the connection before a full answer"
            buffer += chunk
            try:
                decoder.raw_decode(buffer.decode())
                return buffer
            except ValueError:
                continue


class FaultyNode(ThreadingHTTPServer):
    def __init__(self, upstream_ipc: str, fault: tuple[str, int, bytes | dict] | None):
        super().__init__(("127.0.0.1", 0), _NodeHandler)
        self.upstream_ipc, self.fault, self.methods = upstream_ipc, fault, []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _NodeHandler(BaseHTTPRequestHandler):
    server: FaultyNode

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        call = json.loads(body)
        self.server.methods.append(call["method"])
        fault = self.server.fault
        if fault and (fault[0] == call["method"] or (fault[0] == EVERYTHING_BUT_THE_CHAIN_ID
                                                     and call["method"] != "eth_chainId")):
            _, status, answer = fault
            payload = json.dumps({"jsonrpc": "2.0", "id": call["id"], **answer}).encode() \
                if isinstance(answer, dict) else answer
        else:
            status, payload = 200, forward_over_ipc(self.server.upstream_ipc, body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


FAULTS = {
    "not-json": (EVERYTHING_BUT_THE_CHAIN_ID, 200, b"<html><body>502 Bad Gateway</body></html>"),
    "http-500": (EVERYTHING_BUT_THE_CHAIN_ID, 500, b""),
    "json-rpc-error": (EVERYTHING_BUT_THE_CHAIN_ID, 200, {"error": {"code": -32603, "message": "internal error"}}),
    "malformed-result": (EVERYTHING_BUT_THE_CHAIN_ID, 200, {"result": "0xnot-hex"}),
    "another-chain": ("eth_chainId", 200, {"result": "0x1"}),
}


@pytest.fixture
def node(settings, request, monkeypatch):
    """A node in front of the test anvil, made the configured RPC URL of `ethereum`: healthy while the market
    is set up, `fail()` makes it answer the test's fault, `heal()` properly again."""
    upstream = settings.EVM_CHAINS["ethereum"]["rpc_url"].removeprefix("ipc://")
    if not upstream.startswith("/"):
        pytest.skip("forwards to the embedded anvil's IPC socket; EVM_ETHEREUM_RPC_URL points elsewhere")
    # This test runs the executor itself, in this process, against the faulty node. The suite's session
    # worker (started by earlier end-to-end tests, with the healthy anvil in its own settings) must not
    # take the executor task the test's transitions queue, or it mints around the fault.
    monkeypatch.setattr(jobs, "enqueue_on_commit", lambda *args, **kwargs: None)
    server = FaultyNode(upstream, None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EVM_CHAINS = {**settings.EVM_CHAINS, "ethereum": {**settings.EVM_CHAINS["ethereum"], "rpc_url": server.url}}

    def fail() -> None:
        server.fault, server.methods = FAULTS[request.param], []
        # As a worker that starts now meets it: an adapter that has not yet asked the node its chain id.
        chains_evm._cached_chain.cache_clear()

    server.fail = fail
    server.heal = lambda: setattr(server, "fault", None)
    yield server
    server.shutdown()
    server.server_close()


def recorded(mint: MintRequest) -> tuple:
    mint.refresh_from_db()
    operations = list(ChainOperation.objects.filter(request_reference=mint.stream).values_list("status", "tx_hash"))
    return selectors.head(), mint.state, operations


@pytest.mark.parametrize("node", list(FAULTS), indirect=True)
def test_a_node_answering_faults_records_nothing_and_the_mint_lands_once_it_heals(committed, node, evm_market, mm,
                                                                                 operations):
    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="2", wallet_id=mm.wallets["ethereum"].pk, funding="in_kind",
                                        actor="test")
    services.mint_shares_receive(mint=mint, custodian_confirmation="RPC-1", user=operations)
    advance_request("mint", mint.pk)  # what the worker would run next, here in this process: to minting
    before = recorded(mint)
    assert before[1] == "minting"
    node.fail()

    for _ in range(2):  # and a retry meets the same fault the same way
        with pytest.raises(Exception) as failed:  # noqa: PT011 - whatever web3 raises: the run must not pass
            execute_pending(chain_name="ethereum")
        assert recorded(mint) == before, failed.value
    assert "eth_sendRawTransaction" not in node.methods  # nothing was broadcast to a node we cannot read

    node.heal()
    for _ in range(20):
        execute_pending(chain_name="ethereum")
        mint.refresh_from_db()
        if mint.state == "minted":
            break
    assert mint.state == "minted"
    evm = evm_chain("ethereum")
    refs = [log["args"]["ref"] for log in evm.token(evm_market.token).events.Minted.get_logs(from_block=0)]
    assert refs.count(ref_bytes(mint.stream)) == 1
    assert evm.balance_of(evm_market.token, mm.wallets["ethereum"].address) == 2 * 10**18
    assert_ledger_verifies()
