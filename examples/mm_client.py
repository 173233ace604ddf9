#!/usr/bin/env python
"""The market-maker client: everything a market maker does against the issuer's API, from a terminal.

    .venv/bin/python examples/mm_client.py products
    .venv/bin/python examples/mm_client.py wallets
    .venv/bin/python examples/mm_client.py wallet-add ethereum --key-file my-wallet.key
    .venv/bin/python examples/mm_client.py mint AAPLx ethereum 2.5 in_kind --wait minted
    .venv/bin/python examples/mm_client.py redeem AAPLx ethereum 1 in_kind --wait burned
    .venv/bin/python examples/mm_client.py follow mint 1
    .venv/bin/python examples/mm_client.py webhook-add https://desk.example/issuer-hooks
    .venv/bin/python examples/mm_client.py get /api/v1/mints/1

Every request carries the API key; every POST is signed (RFC 9421, HMAC-SHA256 over "@method",
"@path" and "content-digest", with `created` and a fresh nonce) and has an Idempotency-Key. A POST
that gets no answer, a 5xx, a 429 or a retryable 409 is sent again with the SAME Idempotency-Key (and a
new signature): the server runs it at most once and returns the first answer to a replay.

`redeem` asks for the redemption, then hands the tokens over on chain itself: on an EVM chain it calls
`redeem(amount, ref)` on the token from the wallet (web3 and eth-account), as the answer's
`redeem_on_chain` says, so the tokens reach the issuer's vault with the request's reference; on Solana
it sends one transaction with a Token-2022 `transfer_checked` to the redemption token account and a
Memo carrying the reference (the `solana` client). The wallet key (hex on EVM chains; a base58 keypair
or solana-keygen's JSON on Solana) comes from --key-file, or the credentials file's `wallet_keys` (the
demo's); the chain's RPC URL from --rpc CHAIN=URL, env MM_RPC_<CHAIN>, or the local demo chain
(.data/anvil/development-<chain>.ipc, .data/solana/development.port).

Reads the credentials `make run` wrote to .data/demo-credentials.json (or --credentials FILE);
BASE_URL defaults to http://127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from http_message_signatures import HTTPMessageSigner, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

ROOT = Path(__file__).resolve().parent.parent
BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
EVM_CHAINS = ("ethereum", "arbitrum", "base")
FINAL_STATES = {"mint": {"minted", "rejected", "cancelled", "failed"},
                "redemption": {"paid_out", "shares_delivered", "cancelled", "failed"}}
MAX_ATTEMPTS = 5


class ApiError(RuntimeError):
    def __init__(self, response: requests.Response):
        self.response = response
        super().__init__(f"{response.status_code}: {response.text[:500]}")


# --- the API: signing, idempotency, retries ------------------------------------------------------

class Client:
    def __init__(self, creds: dict, base_url: str = BASE_URL, *, log=print, sleep=time.sleep):
        self.creds = creds
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.log = log
        self.last_status: int | None = None
        self.sleep = sleep

    def _prepare(self, method: str, path: str, body: bytes, idempotency_key: str | None) -> requests.PreparedRequest:
        request = requests.Request(method, self.base_url + path, data=body or None, headers={
            "Authorization": f"ApiKey {self.creds['key_id']}.{self.creds['secret']}",
            "Content-Type": "application/json"}).prepare()
        if method != "GET":
            request.headers["Idempotency-Key"] = idempotency_key
            raw = self.creds["hmac_key"]
            hmac_key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=MappingKeyResolver(
                public_keys={}, private_keys={self.creds["key_id"]: hmac_key}))
            # A new nonce on every attempt (a reused one is refused); the Idempotency-Key stays the same.
            signer.sign(request, key_id=self.creds["key_id"], created=datetime.now(tz=UTC),
                        nonce=secrets.token_hex(16), label="sig",
                        covered_component_ids=("@method", "@path", "content-digest"), body=body)
        return request

    def call(self, method: str, path: str, payload: dict | None = None, *, idempotency_key: str | None = None
             ) -> requests.Response:
        """One API call. POSTs are retried with the same Idempotency-Key on no answer, 5xx, 429 and a
        retryable 409 (another request with that key still running, or a concurrent update)."""
        body = json.dumps(payload).encode() if payload is not None else b""
        key = idempotency_key or secrets.token_hex(16)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.session.send(self._prepare(method, path, body, key), timeout=30)
            except requests.ConnectionError as exc:
                if method == "GET" or attempt == MAX_ATTEMPTS:
                    raise
                self.log(f"# no answer ({type(exc).__name__}); retrying with Idempotency-Key {key}", file=sys.stderr)
                self.sleep(min(2 ** attempt, 10))
                continue
            if not _retryable(response) or attempt == MAX_ATTEMPTS:
                return response
            wait_s = float(response.headers.get("Retry-After") or min(2 ** attempt, 10))
            self.log(f"# {response.status_code}; retrying in {wait_s:g} s with Idempotency-Key {key}", file=sys.stderr)
            self.sleep(wait_s)
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, payload: dict | None = None, **kwargs) -> dict:
        response = self.call(method, path, payload, **kwargs)
        self.last_status = response.status_code
        if not response.ok:
            raise ApiError(response)
        return response.json()

    def all(self, path: str) -> list[dict]:
        """Every item of a paged list (follows `next`)."""
        items, page = [], self.ok("GET", path)
        while True:
            items += page["results"] if isinstance(page, dict) else page
            if not isinstance(page, dict) or not page.get("next"):
                return items
            page = self.ok("GET", _path(page["next"]))

    def wallet_for(self, chain: str) -> dict:
        verified = [w for w in self.all("/api/v1/wallets") if w["chain"] == chain and w.get("verified")]
        if not verified:
            raise SystemExit(f"no verified wallet on {chain}: register one with `wallet-add {chain}`")
        return verified[0]


def _retryable(response: requests.Response) -> bool:
    if response.status_code >= 500 or response.status_code == 429:
        return True
    if response.status_code == 409:
        try:
            return bool(response.json()["error"]["retryable"])
        except (ValueError, KeyError, TypeError):
            return False
    return False


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- webhooks ------------------------------------------------------------------------------------

def webhook_verify(*, secret: str, signature_header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """Check an `Issuer-Signature: t=<unix>,v1=<hex>` header: HMAC-SHA256(secret, "<t>.<body>"), sent
    within `tolerance_s`. Use it in the receiver you register with `webhook-add`."""
    fields = dict(part.split("=", 1) for part in signature_header.split(",") if "=" in part)
    if "t" not in fields or "v1" not in fields or abs(time.time() - int(fields["t"])) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


# --- chains: wallet proofs and on-chain redemptions -----------------------------------------------

def _evm_account(key_hex: str):
    from eth_account import Account

    return Account.from_key(key_hex)


def wallet_key(chain: str, *, key_file: str | None, creds: dict) -> str:
    if key_file:
        return Path(key_file).read_text().strip()
    key = creds.get("wallet_keys", {}).get(chain)
    if not key:
        raise SystemExit(f"no key for the {chain} wallet: pass --key-file")
    return key


def sign_challenge(chain: str, key: str, message: str) -> str:
    if chain in EVM_CHAINS:  # EIP-191 personal_sign, as wallets sign messages
        from eth_account.messages import encode_defunct

        return "0x" + _evm_account(key).sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")
    return SOLANA.sign_challenge(key, message)


def rpc_url(chain: str, overrides: dict[str, str]) -> str:
    url = overrides.get(chain) or os.environ.get(f"MM_RPC_{chain.upper()}")
    if url:
        return url
    local = ROOT / ".data" / "anvil" / f"development-{chain}.ipc"  # the chain `make run` starts
    if local.exists():
        return str(local)
    port = ROOT / ".data" / "solana" / "development.port"  # `make run`'s local Solana RPC
    if chain == "solana" and port.exists():
        return f"http://127.0.0.1:{port.read_text().strip()}"
    raise SystemExit(f"no JSON-RPC URL for {chain}: pass --rpc {chain}=URL or set MM_RPC_{chain.upper()}")


REDEEM_ABI = [{"type": "function", "name": "redeem", "stateMutability": "nonpayable", "outputs": [],
               "inputs": [{"name": "amount", "type": "uint256"}, {"name": "ref", "type": "bytes32"}]}]


def evm_redeem(*, url: str, key: str, instructions: dict) -> str:
    """Call `redeem(amount, ref)` on the token from the wallet; return the transaction hash once mined."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url) if url.startswith(("http://", "https://")) else Web3.IPCProvider(url))
    account = _evm_account(key)
    token = w3.eth.contract(address=Web3.to_checksum_address(instructions["token"]), abi=REDEEM_ABI)
    function = getattr(token.functions, instructions["function"])  # "redeem", as the API says
    tx = function(int(instructions["amount"]), bytes.fromhex(instructions["ref"].removeprefix("0x"))).build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id})
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        raise SystemExit(f"redeem reverted: {tx_hash.hex()}")
    return "0x" + tx_hash.hex().removeprefix("0x")


class _Solana:
    """Solana with the `solana` client (solders, spl): the wallet key is an Ed25519 keypair, as the
    Solana CLI and wallets export it (base58 of its 64 bytes, or the CLI's JSON array of them)."""

    def keypair(self, key: str):
        from solders.keypair import Keypair

        key = key.strip()
        if key.startswith("["):  # solana-keygen's id.json
            return Keypair.from_bytes(bytes(json.loads(key)))
        return Keypair.from_base58_string(key)

    def address(self, key: str) -> str:
        return str(self.keypair(key).pubkey())

    def sign_challenge(self, key: str, message: str) -> str:
        """An Ed25519 signature of the challenge's UTF-8 bytes, base58 (as `signMessage` wallets give it)."""
        return str(self.keypair(key).sign_message(message.encode("utf-8")))

    def redeem(self, *, url: str, key: str, redemption: dict) -> str:
        """One transaction from the wallet: Token-2022 `transfer_checked` of the amount from the wallet's
        associated token account to the redemption token account (`destination`), and a Memo carrying
        the request's reference, as the answer's `redeem_on_chain` says. Returns the signature once
        confirmed."""
        import asyncio

        return asyncio.run(self._redeem(url=url, key=key, instructions=redemption["redeem_on_chain"]))

    async def _redeem(self, *, url: str, key: str, instructions: dict) -> str:
        from solana.rpc.async_api import AsyncClient
        from solana.rpc.commitment import Confirmed
        from solana.rpc.models import TxOpts
        from solders.message import Message
        from solders.pubkey import Pubkey
        from solders.transaction import Transaction
        from spl.memo.constants import MEMO_PROGRAM_ID
        from spl.memo.instructions import create_memo
        from spl.memo.models import MemoParams
        from spl.token.constants import TOKEN_2022_PROGRAM_ID
        from spl.token.instructions import get_associated_token_address, transfer_checked
        from spl.token.models import TransferCheckedParams

        wallet = self.keypair(key)
        owner, mint = wallet.pubkey(), Pubkey.from_string(instructions["mint"])
        async with AsyncClient(url, commitment=Confirmed) as client:
            if (await client.get_balance(owner)).value == 0:
                # No SOL for the fee: the local demo RPC (and devnet) airdrop some; mainnet refuses, and says so.
                await client.confirm_transaction((await client.request_airdrop(owner, 10**9)).value, Confirmed)
            transfer = transfer_checked(TransferCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID, source=get_associated_token_address(owner, mint, TOKEN_2022_PROGRAM_ID),
                mint=mint, dest=Pubkey.from_string(instructions["destination"]), owner=owner,
                amount=int(instructions["amount"]), decimals=int(instructions["decimals"])))
            memo = create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=owner,
                                          message=instructions["memo"].encode("utf-8")))
            blockhash = (await client.get_latest_blockhash(Confirmed)).value.blockhash
            tx = Transaction([wallet], Message([transfer, memo], owner), blockhash)
            signature = (await client.send_raw_transaction(bytes(tx), TxOpts(preflight_commitment=Confirmed))).value
            await client.confirm_transaction(signature, Confirmed)
            status = (await client.get_signature_statuses([signature])).value[0]
        if status is None or status.err is not None:
            raise SystemExit(f"the transfer failed: {signature} ({status.err if status else 'not found'})")
        return str(signature)


SOLANA = _Solana()


# --- commands ------------------------------------------------------------------------------------

def follow(client: Client, kind: str, request_id: int, *, until: str | None, timeout_s: float) -> dict:
    """Poll the request, printing each state it passes through, until `until` or a final state."""
    path = f"/api/v1/{'mints' if kind == 'mint' else 'redemptions'}/{request_id}"
    deadline, last = time.monotonic() + timeout_s, None
    while True:
        body = client.ok("GET", path)
        if body["state"] != last:
            print(f"{kind} {request_id}: {body['state']}")
            last = body["state"]
        if body["state"] == until or body["state"] in FINAL_STATES[kind] or time.monotonic() > deadline:
            return body
        time.sleep(1)


def _print(status: int | None, body) -> None:
    """The answer's HTTP status on the first line, its JSON body after it."""
    print(status)
    print(json.dumps(body, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--credentials", default=str(ROOT / ".data" / "demo-credentials.json"))
    parser.add_argument("--market-maker", type=int, default=0, help="index in the credentials file")
    parser.add_argument("--key-file", help="the wallet's private key (hex), for wallet-add and redeem")
    parser.add_argument("--rpc", action="append", default=[], metavar="CHAIN=URL", help="a chain's JSON-RPC URL")
    parser.add_argument("--wait", metavar="STATE", help="mint/redeem: follow the request until STATE")
    parser.add_argument("--timeout", type=float, default=120, help="seconds --wait and follow wait at most")
    parser.add_argument("--idempotency-key", help="POSTs: the key to send (default: a new random one)")
    parser.add_argument("command", choices=["products", "wallets", "wallet-add", "mint", "redeem", "follow",
                                            "webhook-add", "get"])
    parser.add_argument("args", nargs="*")
    options = parser.parse_args(argv)
    creds = json.loads(Path(options.credentials).read_text())["market_makers"][options.market_maker]
    client = Client(creds)
    rpc = dict(item.split("=", 1) for item in options.rpc)
    key_arg = {"idempotency_key": options.idempotency_key}
    try:
        return _run(options, client, creds, rpc, key_arg)
    except ApiError as exc:
        try:
            _print(exc.response.status_code, exc.response.json())
        except ValueError:
            print(exc.response.status_code, exc.response.text[:500])
        return 1


def _answer(client: Client, method: str, path: str) -> tuple[int | None, dict]:
    body = client.ok(method, path)
    return client.last_status, body


def _run(options, client: Client, creds: dict, rpc: dict, key_arg: dict) -> int:
    command, args = options.command, options.args
    if command == "products":
        _print(*_answer(client, "GET", "/api/v1/products"))
    elif command == "wallets":
        _print(200, client.all("/api/v1/wallets"))
    elif command == "get":
        _print(*_answer(client, "GET", _path(args[0])))
    elif command == "follow":
        follow(client, args[0], int(args[1]), until=options.wait, timeout_s=options.timeout)
    elif command == "webhook-add":
        endpoint = client.ok("POST", "/api/v1/webhooks", {"url": args[0]}, **key_arg)
        _print(client.last_status, endpoint)  # the signing secret is in this answer only: keep it for webhook_verify
    elif command == "wallet-add":
        (chain,) = args
        key = wallet_key(chain, key_file=options.key_file, creds=creds)
        address = _evm_account(key).address if chain in EVM_CHAINS else SOLANA.address(key)
        wallet = next((w for w in client.all("/api/v1/wallets") if w["chain"] == chain and w["address"] == address),
                      None) or client.ok("POST", "/api/v1/wallets", {"chain": chain, "address": address}, **key_arg)
        if not wallet.get("verified"):
            challenge = client.ok("POST", f"/api/v1/wallets/{wallet['id']}/challenge", {})
            wallet = client.ok("POST", f"/api/v1/wallets/{wallet['id']}/verify",
                               {"signature": sign_challenge(chain, key, challenge["message"])})
        _print(client.last_status, wallet)
    elif command in ("mint", "redeem"):
        product, chain, quantity, mode = args
        wallet = client.wallet_for(chain)
        if command == "redeem":  # what sending the tokens needs, checked before the request exists
            key, url = wallet_key(chain, key_file=options.key_file, creds=creds), rpc_url(chain, rpc)
        if command == "mint":
            body = client.ok("POST", "/api/v1/mints", {"product": product, "chain": chain, "quantity": quantity,
                                                       "wallet": wallet["id"], "funding": mode}, **key_arg)
        else:
            body = client.ok("POST", "/api/v1/redemptions", {"product": product, "chain": chain, "quantity": quantity,
                                                             "wallet": wallet["id"], "payout": mode}, **key_arg)
        _print(client.last_status, body)
        kind = "mint" if command == "mint" else "redemption"
        if command == "redeem" and body["state"] == "requested":
            if chain in EVM_CHAINS:
                tx_hash = evm_redeem(url=url, key=key, instructions=body["redeem_on_chain"])
            else:
                tx_hash = SOLANA.redeem(url=url, key=key, redemption=body)
            instructions = body["redeem_on_chain"]
            print(f"tokens sent to {body['redemption_address']} with reference "
                  f"{instructions.get('ref') or instructions['memo']}: {tx_hash}")
        if options.wait:
            final = follow(client, kind, body["id"], until=options.wait, timeout_s=options.timeout)
            return 0 if final["state"] == options.wait else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
