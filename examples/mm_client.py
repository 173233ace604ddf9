#!/usr/bin/env python
"""A minimal market-maker client: API key + RFC 9421 signature + Idempotency-Key.

    .venv/bin/python examples/mm_client.py products
    .venv/bin/python examples/mm_client.py mint AAPLx ethereum 2.5 cash
    .venv/bin/python examples/mm_client.py get /api/v1/mints/1

Reads the demo credentials `make run` wrote to .data/demo-credentials.json (or --credentials FILE);
BASE_URL defaults to http://127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from http_message_signatures import HTTPMessageSigner, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:8000")


def signed_request(creds: dict, method: str, path: str, payload: dict | None = None) -> requests.Response:
    body = json.dumps(payload).encode() if payload is not None else b""
    request = requests.Request(method, BASE_URL + path, data=body or None, headers={
        "Authorization": f"ApiKey {creds['key_id']}.{creds['secret']}",
        "Content-Type": "application/json",
    }).prepare()
    if method != "GET":
        request.headers["Idempotency-Key"] = secrets.token_hex(16)  # reuse it when you retry the same request
        hmac_key = base64.urlsafe_b64decode(creds["hmac_key"] + "=" * (-len(creds["hmac_key"]) % 4))
        signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256,
                                   key_resolver=MappingKeyResolver(public_keys={}, private_keys={creds["key_id"]: hmac_key}))
        signer.sign(request, key_id=creds["key_id"], created=datetime.now(tz=UTC), nonce=secrets.token_hex(16),
                    label="sig", covered_component_ids=("@method", "@path", "content-digest"), body=body)
    return requests.Session().send(request, timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--credentials", default=str(Path(__file__).resolve().parent.parent / ".data" /
                                                     "demo-credentials.json"))
    parser.add_argument("--market-maker", type=int, default=0, help="index in the credentials file")
    parser.add_argument("command", choices=["products", "mint", "redeem", "get", "wallets"])
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    creds = json.loads(Path(options.credentials).read_text())["market_makers"][options.market_maker]

    if options.command == "products":
        response = signed_request(creds, "GET", "/api/v1/products")
    elif options.command == "wallets":
        response = signed_request(creds, "GET", "/api/v1/wallets")
    elif options.command == "get":
        response = signed_request(creds, "GET", urlsplit(options.args[0]).path)
    else:
        product, chain, quantity, mode = options.args
        wallets = signed_request(creds, "GET", "/api/v1/wallets").json()
        wallet = next(w["id"] for w in (wallets["results"] if isinstance(wallets, dict) else wallets)
                      if w["chain"] == chain)
        if options.command == "mint":
            response = signed_request(creds, "POST", "/api/v1/mints", {
                "product": product, "chain": chain, "quantity": quantity, "wallet": wallet, "funding": mode})
        else:
            response = signed_request(creds, "POST", "/api/v1/redemptions", {
                "product": product, "chain": chain, "quantity": quantity, "wallet": wallet, "payout": mode})
    print(response.status_code)
    print(json.dumps(response.json(), indent=2))
    return 0 if response.ok else 1


if __name__ == "__main__":
    sys.exit(main())
