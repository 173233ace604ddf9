"""One executor run of the Solana chain in a process of its own that SIGKILLs itself at a given
moment, as a worker dies: `before_send` (the operations signed and recorded, nothing sent) or
`after_send` (sent, the broadcast not recorded, nothing followed).

    DATABASE_URL=... python -m tests.chains.solana_dying_executor before_send
"""

from __future__ import annotations

import os
import signal
import sys

import django


def main(point: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from chains import executor
    from chains.solana import SolanaChain

    real_send = SolanaChain.send

    def send(self, wire: bytes) -> str:
        if point == "before_send":
            os.kill(os.getpid(), signal.SIGKILL)
        signature = real_send(self, wire)
        os.kill(os.getpid(), signal.SIGKILL)
        return signature

    SolanaChain.send = send
    executor.execute_pending(chain_name="solana")
    sys.exit(3)  # never reached: the run must send something


if __name__ == "__main__":
    main(sys.argv[1])
