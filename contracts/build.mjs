// Compile the contracts with solc-js from node_modules and write contracts/artifacts/<Name>.json.
//
//   node contracts/build.mjs          write the artifacts
//   node contracts/build.mjs --check  exit 1 if the committed artifacts differ from a fresh build
//
// Deterministic: fixed compiler (the exact solc pinned in package.json), fixed settings, source unit
// names relative to the project (never absolute paths, which would leak into the metadata hash), and
// JSON written in a fixed key order. The artifact carries the sha256 of every source compiled,
// OpenZeppelin's included, and one hash over them all (the drift test recomputes it in Python).
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(ROOT, 'package.json'))
const solc = require('solc')

// Each compiled on its own, so one contract's artifact never changes with another's source.
const CONTRACTS = ['IssuerToken', 'ReserveFeed']
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  // Cancun: supported by Ethereum, Arbitrum and Base alike; anvil runs it too.
  evmVersion: 'cancun',
  viaIR: false,
  metadata: { bytecodeHash: 'ipfs', appendCBOR: true },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
}

const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex')

function resolveImport(path) {
  // Only OpenZeppelin, only from node_modules: nothing is fetched and nothing else is importable.
  if (!path.startsWith('@openzeppelin/contracts/')) return { error: `import not allowed: ${path}` }
  try {
    return { contents: readFileSync(join(ROOT, 'node_modules', path), 'utf8') }
  } catch (err) {
    return { error: `cannot read ${path}: ${err.message}` }
  }
}

// One hash over every source unit: sha256 of "<unit name>\n<sha256 of its text>\n" lines in name order.
// tests/chains/test_artifacts.py recomputes exactly this.
function sourcesHash(sources) {
  return sha256(Object.keys(sources).sort().map((name) => `${name}\n${sources[name]}\n`).join(''))
}

function build() {
  const artifacts = {}
  for (const name of CONTRACTS) Object.assign(artifacts, buildOne(name))
  return artifacts
}

function buildOne(name) {
  const pinned = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies.solc
  const version = solc.version()
  if (!version.startsWith(`${pinned}+`)) throw new Error(`solc ${version} is not the pinned ${pinned}`)
  const ozVersion = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', '@openzeppelin', 'contracts', 'package.json'), 'utf8')).version

  const input = { language: 'Solidity', sources: {}, settings: SETTINGS }
  const unit = `contracts/${name}.sol`
  input.sources[unit] = { content: readFileSync(join(ROOT, unit), 'utf8') }
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport }))
  const errors = (output.errors || []).filter((e) => e.severity === 'error')
  for (const e of output.errors || []) console.error(e.formattedMessage)
  if (errors.length) throw new Error(`compilation failed with ${errors.length} error(s)`)

  // Every unit the compiler used, read again from disk so the hashes are of what is there now.
  const sourceHashes = {}
  for (const unit of Object.keys(output.sources).sort()) {
    const path = unit.startsWith('@openzeppelin/') ? join(ROOT, 'node_modules', unit) : join(ROOT, unit)
    sourceHashes[unit] = sha256(readFileSync(path, 'utf8'))
  }

  const artifacts = {}
  {
    const compiled = output.contracts[`contracts/${name}.sol`][name]
    const artifact = {
      contractName: name,
      sourceUnit: `contracts/${name}.sol`,
      compiler: { name: 'solc-js', version },
      openzeppelinVersion: ozVersion,
      settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, viaIR: SETTINGS.viaIR,
        metadata: SETTINGS.metadata },
      sourcesSha256: sourcesHash(sourceHashes),
      sources: sourceHashes,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    }
    artifacts[name] = `${JSON.stringify(artifact, null, 2)}\n`
  }
  return artifacts
}

const check = process.argv.includes('--check')
const artifacts = build()
let drifted = false
for (const [name, text] of Object.entries(artifacts)) {
  const path = join(ROOT, 'contracts', 'artifacts', `${name}.json`)
  if (check) {
    let committed = ''
    try { committed = readFileSync(path, 'utf8') } catch { /* missing counts as drift */ }
    if (committed !== text) {
      console.error(`${path} differs from a fresh build: run node contracts/build.mjs and commit it`)
      drifted = true
    }
  } else {
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, text)
    console.log(`wrote ${path}`)
  }
}
if (check && !drifted) console.log('artifacts match the sources')
process.exit(drifted ? 1 : 0)
