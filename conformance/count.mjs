// Count cache-tests results the way cache-tests.fyi shows them, for imgate and for the published
// results shipped with the same test set, so the two are compared like for like.
//   node count.mjs <cache-tests dir> <imgate results.json> [--check] [--markdown]
// A pass (✅) is a required or optimal test that passed; a required failure (⛔️) a required
// test that failed. Both come from the suite's own `determineTestResult` over `tests/index.mjs`,
// which honours test dependencies (a test whose dependency failed is ⚪️, not ⛔️).
// With --check, exit 1 unless imgate has no required failure and more passes than every
// published shared cache (reverse proxies and CDNs in the suite's `results/index.mjs`).
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import path from 'node:path'

const args = process.argv.slice(2)
const check = args.includes('--check')
const markdown = args.includes('--markdown')
const [suiteDir, ours] = args.filter(a => !a.startsWith('--'))
if (!suiteDir || !ours) {
  console.error('usage: node count.mjs <cache-tests dir> <imgate results.json> [--check] [--markdown]')
  process.exit(2)
}
const load = async (rel) => (await import(pathToFileURL(path.join(suiteDir, rel)).href))
const suites = (await load('tests/index.mjs')).default
const { determineTestResult } = await load('test-engine/lib/results.mjs')
const published = (await load('results/index.mjs')).default.filter(r => r.type !== 'browser')

function count (file) {
  const results = JSON.parse(readFileSync(file, 'utf8'))
  const counts = {}
  const failed = []
  for (const suite of suites) {
    for (const test of suite.tests) {
      const label = determineTestResult(suites, test.id, results)[2]
      counts[label] = (counts[label] || 0) + 1
      if (label === '⛔️') failed.push(test.id)
    }
  }
  return { passed: counts['✅'] || 0, required: counts['⛔️'] || 0, counts, failed }
}

const mine = count(ours)
const rows = published.map(r => ({ name: r.name, version: r.version, ...count(path.join(suiteDir, 'results', r.file)) }))
rows.sort((a, b) => b.passed - a.passed || a.required - b.required)

const others = Object.entries(mine.counts)
  .filter(([label]) => label !== '✅' && label !== '⛔️')
  .map(([label, n]) => `${label} ${n}`)
  .join(', ')
if (markdown) {
  console.log('| cache | passed | required failures |\n|---|---|---|')
  console.log(`| **imgate** | **${mine.passed}** | **${mine.required}** |`)
  for (const r of rows) console.log(`| ${r.name} ${r.version} (published) | ${r.passed} | ${r.required} |`)
} else {
  console.log(`imgate: ${mine.passed} passed, ${mine.required} required failures (${others})`)
  if (mine.failed.length) console.log(`  required failures: ${mine.failed.join(' ')}`)
  for (const r of rows) console.log(`${r.name} (published): ${r.passed} passed, ${r.required} required failures`)
}

if (check) {
  const best = rows[0]
  if (mine.required > 0 || (best && mine.passed <= best.passed)) {
    console.log(`FAIL: imgate ${mine.passed} passed / ${mine.required} required failures; ` +
      `needs 0 required failures and more than ${best ? `${best.passed} passes (${best.name})` : 'any published cache'}`)
    process.exit(1)
  }
  console.log(`OK: imgate ${mine.passed} passed / 0 required failures beats every published shared cache` +
    (best ? ` (best: ${best.name}, ${best.passed} passed)` : ''))
}
