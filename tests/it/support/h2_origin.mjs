// A real TLS origin speaking HTTP/2 (and HTTP/1.1 for clients that do not offer h2), serving a
// directory. Used by tests/it/tls_origin.rs. Prints "listening <port>" once ready, then one line
// per request: "<httpVersion> <method> <path>", so the test can see which protocol imgate used.
//   node h2_origin.mjs <root dir> <cert.pem> <key.pem>
import http2 from 'node:http2'
import { readFileSync, promises as fs } from 'node:fs'
import path from 'node:path'

const [dir, cert, key] = process.argv.slice(2)
const root = path.resolve(dir)
const types = { '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.gif': 'image/gif' }

const server = http2.createSecureServer(
  { cert: readFileSync(cert), key: readFileSync(key), allowHTTP1: true },
  async (req, res) => {
    const url = new URL(req.url, 'https://localhost')
    console.log(`${req.httpVersion} ${req.method} ${url.pathname}`)
    const file = path.join(root, path.normalize(decodeURIComponent(url.pathname)))
    if (!file.startsWith(root + path.sep)) {
      res.writeHead(400).end()
      return
    }
    try {
      const body = await fs.readFile(file)
      res.writeHead(200, {
        'content-type': types[path.extname(file)] || 'application/octet-stream',
        'cache-control': 'public, max-age=3600',
        'content-length': body.length
      })
      res.end(req.method === 'HEAD' ? undefined : body)
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
    }
  }
)
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`))
