#!/usr/bin/env node
// solc-shim: lets py-solc-x drive solc-js (npm `solc`), because no native solc
// can be downloaded here. Two traps shape it:
//  * `--version` is called before every compile; loading soljson costs ~0.4 s, so the
//    version string is cached beside node_modules, keyed by the compiler file's size
//    and mtime, and answered without loading the compiler.
//  * piped stdout is truncated at 64 KiB if written asynchronously before exit, so the
//    JSON result is written with fs.writeSync.
// Imports (`@openzeppelin/...`, `contracts/...`) resolve against the project root and
// its node_modules only.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const solcDir = path.join(root, 'node_modules', 'solc');
const cacheFile = path.join(root, 'node_modules', '.provnet-solc-version');

function versionString() {
  const st = fs.statSync(path.join(solcDir, 'soljson.js'));
  const key = `${st.size}:${st.mtimeMs}`;
  try {
    const cached = JSON.parse(fs.readFileSync(cacheFile, 'utf8'));
    if (cached.key === key) return cached.version;
  } catch (_) { /* no cache yet */ }
  const version = require(solcDir).version();
  fs.writeFileSync(cacheFile, JSON.stringify({ key, version }));
  return version;
}

function findImports(importPath) {
  const candidates = [path.join(root, importPath), path.join(root, 'node_modules', importPath)];
  for (const candidate of candidates) {
    const resolved = path.resolve(candidate);
    if (!resolved.startsWith(root + path.sep)) continue;
    if (fs.existsSync(resolved)) return { contents: fs.readFileSync(resolved, 'utf8') };
  }
  return { error: `import not found: ${importPath}` };
}

const args = process.argv.slice(2);
if (args.includes('--version')) {
  fs.writeSync(1, `solc, the solidity compiler commandline interface\nVersion: ${versionString()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  fs.writeSync(2, 'solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}
const input = fs.readFileSync(0, 'utf8');
const output = require(solcDir).compile(input, { import: findImports });
fs.writeSync(1, output);
process.exit(0);
