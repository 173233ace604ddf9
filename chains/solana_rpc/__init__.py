"""A small local Solana JSON-RPC server over solders' LiteSVM: the development and test stand-in for a
validator (architecture section 5), as anvil is for EVM chains.

LiteSVM executes the real Token-2022, associated-token-account and Memo programs; this package adds
what a validator has around them and the adapter relies on: slots that advance on a clock, a recent
blockhash per slot valid for a fixed number of blocks (so "last valid block height" means what it
means on a cluster), commitment levels, a signature history with statuses, and persistence of every
account a transaction wrote (and of that history) to `.data/solana/`, so a restart keeps the chain as
the database keeps its rows. `node` holds the state, `server` speaks JSON-RPC over HTTP.
"""
