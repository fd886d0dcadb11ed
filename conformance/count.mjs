// Count cache-tests results the way cache-tests.fyi shows them: passes (✅: required and
// optimal tests that passed) and required failures (⛔️), honouring test dependencies.
//   node count.mjs <http-cache-tests package dir> <results.json>... [--check]
// With --check, exit 1 unless the first file beats every published reverse proxy:
// more than 202 passes (Apache Traffic Server) and fewer than 12 required failures (httpd).
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import path from 'node:path'

const args = process.argv.slice(2)
const check = args.includes('--check')
const [pkg, ...files] = args.filter(a => a !== '--check')
const load = (rel) => import(pathToFileURL(path.join(pkg, rel)).href)
const suites = (await load('tests/index.mjs')).default
suites.push((await load('tests/surrogate-control.mjs')).default)
const display = await load('lib/display.mjs')

const LABELS = {
  '✅': 'passed',
  '⛔️': 'required failures',
  '⚠️': 'optional failures',
  '⚪️': 'dependency failures',
  '🔹': 'setup failures',
  Y: 'checks yes',
  N: 'checks no'
}

let first
for (const file of files) {
  const results = JSON.parse(readFileSync(file, 'utf8'))
  const counts = {}
  const failed = []
  for (const suite of suites) {
    for (const test of suite.tests) {
      const [, , label] = display.determineTestResult(suites, test.id, results)
      counts[label] = (counts[label] || 0) + 1
      if (label === '⛔️') failed.push(test.id)
    }
  }
  first = first || counts
  const parts = Object.entries(LABELS).map(([k, name]) => `${name} ${counts[k] || 0}`)
  console.log(`${path.basename(file)}: ${parts.join(', ')}`)
  if (failed.length) console.log(`  required failures: ${failed.join(' ')}`)
}
if (check) {
  const passed = first['✅'] || 0
  const required = first['⛔️'] || 0
  if (passed <= 202 || required >= 12) {
    console.log(`FAIL: ${passed} passed / ${required} required failures; need > 202 and < 12`)
    process.exit(1)
  }
  console.log(`OK: ${passed} passed / ${required} required failures beats every published reverse proxy`)
}
