# ruff: noqa: N802 (the methods carry the JSON-RPC method names)
"""JSON-RPC over HTTP for the local node: the methods the adapter (chains.solana) and the `solana`
client use, in the cluster's wire format (https://solana.com/docs/rpc), nothing more.

    python -m chains.solana_rpc.server --state-dir .data/solana/development --port-file PATH

It listens on 127.0.0.1 on a free port and writes the port to `--port-file` once it answers
(config.embedded starts it, as it starts anvil).
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import base58

from chains.solana_rpc.node import (
    LocalSolana,
    RpcError,
    mint_fields,
    token_account_fields,
    ui_amount,
)

U64_MAX = 2**64 - 1


def _config(params: list, index: int) -> dict:
    return params[index] if len(params) > index and isinstance(params[index], dict) else {}


def _context(node: LocalSolana, value: object) -> dict:
    return {"context": {"slot": node.slot, "apiVersion": "2.2.0"}, "value": value}


def _wire(text: str, encoding: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True) if encoding == "base64" else base58.b58decode(text)
    except ValueError as exc:
        raise RpcError(-32602, f"invalid transaction encoding: {exc}") from None


def _memo_field(memos: list[str]) -> str | None:
    return "; ".join(f"[{len(m.encode())}] {m}" for m in memos) if memos else None


class Methods:
    def __init__(self, node: LocalSolana) -> None:
        self.node = node

    def getHealth(self, params):
        return "ok"

    def getVersion(self, params):
        return {"solana-core": "2.2.0-litesvm", "feature-set": 0}

    def getGenesisHash(self, params):
        return self.node.genesis_hash

    def getSlot(self, params):
        return self.node.height(_config(params, 0).get("commitment"))

    def getBlockHeight(self, params):
        return self.node.height(_config(params, 0).get("commitment"))

    def getLatestBlockhash(self, params):
        with self.node.lock:
            return _context(self.node, {"blockhash": self.node.latest_hash,
                                        "lastValidBlockHeight": self.node.blockhashes[self.node.latest_hash]})

    def isBlockhashValid(self, params):
        with self.node.lock:
            return _context(self.node, self.node.blockhashes.get(params[0], -1) >= self.node.slot)

    def getMinimumBalanceForRentExemption(self, params):
        return self.node.svm.minimum_balance_for_rent_exemption(int(params[0]))

    def getBalance(self, params):
        account = self.node.account(params[0])
        return _context(self.node, account.lamports if account else 0)

    def getAccountInfo(self, params):
        account = self.node.account(params[0])
        if account is None:
            return _context(self.node, None)
        data = bytes(account.data)
        return _context(self.node, {
            "data": [base64.b64encode(data).decode(), "base64"], "executable": account.executable,
            "lamports": account.lamports, "owner": str(account.owner), "rentEpoch": min(account.rent_epoch, U64_MAX),
            "space": len(data)})

    def getTokenSupply(self, params):
        fields = mint_fields(self.node.account(params[0]))
        if fields is None:
            raise RpcError(-32602, "Invalid param: not a Token mint")
        return _context(self.node, ui_amount(*fields))

    def getTokenAccountBalance(self, params):
        fields = token_account_fields(self.node.account(params[0]))
        if fields is None:
            raise RpcError(-32602, "Invalid param: not a Token account")
        mint, _, amount = fields
        return _context(self.node, ui_amount(amount, mint_fields(self.node.account(mint))[1]))

    def requestAirdrop(self, params):
        return self.node.airdrop(params[0], int(params[1]))

    def sendTransaction(self, params):
        return self.node.send(_wire(params[0], _config(params, 1).get("encoding", "base58")))

    def simulateTransaction(self, params):
        return _context(self.node, self.node.simulate(_wire(params[0], _config(params, 1).get("encoding", "base58"))))

    def getSignatureStatuses(self, params):
        values = []
        with self.node.lock:
            for signature in params[0]:
                record = self.node.history.get(signature)
                if record is None:
                    values.append(None)
                    continue
                status = self.node.status(record)
                values.append({"slot": record.slot, "err": None, "status": {"Ok": None}, "confirmationStatus": status,
                               "confirmations": None if status == "finalized" else self.node.slot - record.slot})
            return _context(self.node, values)

    def getTransaction(self, params):
        config = _config(params, 1)
        if config.get("encoding", "json") != "base64":
            raise RpcError(-32602, "this local node serves transactions in base64 encoding only")
        with self.node.lock:
            record = self.node.history.get(params[0])
            if record is None or not record.tx or not self.node.visible(record, config.get("commitment")):
                return None
            return {"slot": record.slot, "blockTime": record.block_time, "version": "legacy",
                    "transaction": [record.tx, "base64"],
                    "meta": {"err": None, "status": {"Ok": None}, "fee": record.fee,
                             "preBalances": record.pre_balances, "postBalances": record.post_balances,
                             "innerInstructions": [], "logMessages": record.logs,
                             "preTokenBalances": record.pre_token, "postTokenBalances": record.post_token,
                             "rewards": [], "loadedAddresses": {"writable": [], "readonly": []},
                             "computeUnitsConsumed": record.units}}

    def getSignaturesForAddress(self, params):
        config = _config(params, 1)
        limit = min(int(config.get("limit") or 1000), 1000)
        before, until = config.get("before"), config.get("until")
        found = []
        with self.node.lock:
            signatures = self.node.by_address.get(params[0], [])
            started = before is None
            for signature in reversed(signatures):  # newest first
                if not started:
                    started = signature == before
                    continue
                if signature == until or len(found) >= limit:
                    break
                record = self.node.history[signature]
                if not self.node.visible(record, config.get("commitment")):
                    continue
                found.append({"signature": signature, "slot": record.slot, "err": None,
                              "memo": _memo_field(record.memos), "blockTime": record.block_time,
                              "confirmationStatus": self.node.status(record)})
        return found



def handler_for(methods: Methods) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes on a kept-alive connection: with Nagle's algorithm on,
        # the body waits for the client's delayed ACK of the headers, some 40 ms on every answer.
        disable_nagle_algorithm = True

        def log_message(self, format, *args):  # noqa: A002 (the base class's name)
            pass

        def _answer(self, request: dict) -> dict:
            request_id = request.get("id") if isinstance(request, dict) else None
            try:
                name = request.get("method", "") if isinstance(request, dict) else ""
                method = getattr(methods, name, None) if name[:1].islower() else None
                if method is None:
                    raise RpcError(-32601, "Method not found")
                return {"jsonrpc": "2.0", "result": method(request.get("params") or []), "id": request_id}
            except RpcError as exc:
                error = {"code": exc.code, "message": exc.message}
                if exc.data is not None:
                    error["data"] = exc.data
                return {"jsonrpc": "2.0", "error": error, "id": request_id}
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                return {"jsonrpc": "2.0", "error": {"code": -32602, "message": f"Invalid params: {exc}"},
                        "id": request_id}
            except Exception as exc:  # a bug here must answer, not drop the connection
                traceback.print_exc()
                return {"jsonrpc": "2.0", "error": {"code": -32603, "message": f"Internal error: {exc}"},
                        "id": request_id}

        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                request = json.loads(body)
            except ValueError:
                answer: object = {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
            else:
                answer = [self._answer(r) for r in request] if isinstance(request, list) else self._answer(request)
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def serve(*, state_dir: Path, port_file: Path | None, port: int = 0, slot_s: float = 0.4,
          valid_blocks: int = 150, finality_slots: int = 32) -> None:
    node = LocalSolana(state_dir, slot_s=slot_s, valid_blocks=valid_blocks, finality_slots=finality_slots)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(Methods(node)))
    server.daemon_threads = True
    threading.Thread(target=node.run_clock, daemon=True).start()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(server.server_address[1]))
        tmp.replace(port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        node.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--valid-blocks", type=int, default=150)
    parser.add_argument("--finality-slots", type=int, default=32)
    args = parser.parse_args(argv)
    serve(state_dir=args.state_dir, port_file=args.port_file, port=args.port, slot_s=args.slot_ms / 1000,
          valid_blocks=args.valid_blocks, finality_slots=args.finality_slots)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))



