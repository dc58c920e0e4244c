// docs/bench.png: requests/s per system (median, min-max whiskers) from one `make bench` run,
// drawn as SVG in a page and screenshotted with the system Chromium (playwright-core).
import { writeFileSync } from "node:fs";
import { launchBrowser } from "../tests/browser/helpers.mjs";

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const fmt = (n) => Math.round(n).toLocaleString("en-US");

/** The chart as a standalone SVG string (exported for checking without a browser). */
export function chartSvg(result) {
  const groups = [
    ["protected", "Protected request (verify + policy + forward)"],
    ["issuance", "Token issuance (client_credentials)"],
  ].map(([part, title]) => ({ title, rows: result.http.filter((s) => s.part === part) }));
  const W = 900;
  const rowH = 34;
  const left = 230;
  const right = 120;
  const max = Math.max(...result.http.map((s) => s.rps.max)) * 1.05;
  const x = (v) => left + (v / max) * (W - left - right);
  let y = 60;
  const parts = [];
  parts.push(`<text x="20" y="32" font-size="20" font-weight="600">Requests/s per system (median of ${result.config.ROUNDS} interleaved rounds, min-max whiskers)</text>`);
  for (const g of groups) {
    parts.push(`<text x="20" y="${y + 12}" font-size="15" font-weight="600">${esc(g.title)}</text>`);
    y += 24;
    for (const s of g.rows) {
      const color = s.ours ? "#d9480f" : "#495057";
      parts.push(`<text x="${left - 10}" y="${y + 20}" font-size="14" text-anchor="end">${esc(s.name)}</text>`);
      parts.push(`<rect x="${left}" y="${y + 5}" width="${x(s.rps.median) - left}" height="${rowH - 12}" fill="${color}" rx="2"/>`);
      const cy = y + rowH / 2 - 1;
      parts.push(`<line x1="${x(s.rps.min)}" x2="${x(s.rps.max)}" y1="${cy}" y2="${cy}" stroke="#000" stroke-width="1.5"/>`);
      for (const v of [s.rps.min, s.rps.max]) {
        parts.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${cy - 6}" y2="${cy + 6}" stroke="#000" stroke-width="1.5"/>`);
      }
      parts.push(`<text x="${x(s.rps.max) + 8}" y="${y + 20}" font-size="14">${fmt(s.rps.median)}</text>`);
      y += rowH;
    }
    y += 16;
  }
  const env = result.env;
  parts.push(`<text x="20" y="${y + 6}" font-size="12" fill="#555">${esc(`${result.startedAt} · ${env.cpus} × ${env.cpu} · node ${env.node} · workerd ${env.workerd} · ${result.config.DURATION} s × ${result.config.CONNECTIONS} connections (autocannon)`)}</text>`);
  const H = y + 24;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif"><rect width="100%" height="100%" fill="#fff"/>${parts.join("")}</svg>`;
}

export async function renderPlot(result, file) {
  const svg = chartSvg(result);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ deviceScaleFactor: 1 });
    await page.setContent(`<!doctype html><html><body style="margin:0">${svg}</body></html>`);
    const png = await page.locator("svg").screenshot({ type: "png" });
    writeFileSync(file, png);
  } finally {
    await browser.close();
  }
}
