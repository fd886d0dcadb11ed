// Load one page in headless Chromium and print, as one JSON line, what the browser saw:
// every <img> (its src, what it loaded and its natural width), every response (URL, status,
// content type, resource type), the page's visible text and its title (an SVG document has a
// title but no body). Used by tests/it/html.rs:
//   node tests/browser/load-page.mjs http://127.0.0.1:8080/html/gallery.html
import { chromium } from 'playwright-core';

const url = process.argv[2];
if (!url) {
  console.error('usage: node load-page.mjs <url>');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.IMGATE_CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  const responses = [];
  page.on('response', (r) => {
    responses.push({
      url: r.url(),
      status: r.status(),
      contentType: r.headers()['content-type'] || '',
      resourceType: r.request().resourceType(),
    });
  });
  await page.goto(url, { waitUntil: 'load' });
  // Lazy images load only near the viewport: bring each into view and wait for it.
  await page.evaluate(async () => {
    for (const img of document.images) {
      img.scrollIntoView();
      if (!img.complete) {
        await new Promise((done) => {
          img.addEventListener('load', done, { once: true });
          img.addEventListener('error', done, { once: true });
        });
      }
    }
  });
  await page.waitForLoadState('networkidle');
  const images = await page.evaluate(() => [...document.images].map((img) => ({
    src: img.getAttribute('src'),
    currentSrc: img.currentSrc,
    naturalWidth: img.naturalWidth,
  })));
  const text = await page.evaluate(() => (document.body ? document.body.innerText : ''));
  const title = await page.evaluate(() => document.title);
  console.log(JSON.stringify({ images, responses, text, title }));
} finally {
  await browser.close();
}
