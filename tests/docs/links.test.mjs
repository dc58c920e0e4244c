// README.md is the door into docs/: every docs/*.md page must be linked from it, and every
// relative link (and #anchor) in README.md and docs/*.md must lead to a file that exists and,
// for a Markdown file, to a heading it has (GitHub's anchors). A renamed page or heading then
// breaks `make test` instead of the reader's click. No build needed:
//
//   node --test tests/docs/links.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The page's lines outside fenced code blocks (fences of ``` or ~~~), with their numbers. */
function proseLines(text) {
  const out = [];
  let fence = null;
  text.split(/\r?\n/).forEach((line, i) => {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length && /^ {0,3}[`~]+\s*$/.test(line)) fence = null;
      return;
    }
    if (m) {
      fence = m[1];
      return;
    }
    out.push({ n: i + 1, line });
  });
  return out;
}

/** GitHub's heading anchor: lowercase, punctuation dropped, spaces to "-", repeats numbered. */
export function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const { line } of proseLines(text)) {
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const plain = h[1]
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
      .replace(/<[^>]+>/g, ""); // inline HTML
    let slug = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** Inline links and images `[text](target)` of the page's prose, outside `code spans`. */
function links(text) {
  const out = [];
  for (const { n, line } of proseLines(text)) {
    const prose = line.replace(/(`+)[^`]*?\1/g, (m) => " ".repeat(m.length));
    for (const m of prose.matchAll(/!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ line: n, target: m[1] });
    }
  }
  return out;
}

/** The Markdown pages checked: README.md and docs/*.md under root. */
function pages(root) {
  const docs = path.join(root, "docs");
  const list = [path.join(root, "README.md")];
  if (existsSync(docs)) for (const f of readdirSync(docs).sort()) if (f.endsWith(".md")) list.push(path.join(docs, f));
  return list;
}

/** Every problem of the tree under root, as "file:line: message" strings. */
export function checkLinks(root) {
  const problems = [];
  const rel = (f) => path.relative(root, f);
  const anchorCache = new Map();
  const anchorsOf = (f) => {
    if (!anchorCache.has(f)) anchorCache.set(f, anchors(readFileSync(f, "utf8")));
    return anchorCache.get(f);
  };
  const readme = path.join(root, "README.md");
  const linkedFromReadme = new Set();

  for (const page of pages(root)) {
    const text = readFileSync(page, "utf8");
    for (const { line, target } of links(text)) {
      if (target === "" || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const hash = target.indexOf("#");
      const file = hash >= 0 ? target.slice(0, hash) : target;
      const anchor = hash >= 0 ? decodeURIComponent(target.slice(hash + 1)) : null;
      const dest = file === "" ? page : path.resolve(path.dirname(page), decodeURIComponent(file));
      if (!existsSync(dest)) {
        problems.push(`${rel(page)}:${line}: ${target}: no such file ${rel(dest)}`);
        continue;
      }
      if (page === readme) linkedFromReadme.add(dest);
      if (anchor !== null && anchor !== "") {
        if (!dest.endsWith(".md") || statSync(dest).isDirectory()) {
          problems.push(`${rel(page)}:${line}: ${target}: an anchor into a file that is not Markdown`);
        } else if (!anchorsOf(dest).has(anchor)) {
          problems.push(`${rel(page)}:${line}: ${target}: ${rel(dest)} has no heading #${anchor}`);
        }
      }
    }
  }
  for (const page of pages(root).slice(1)) {
    if (!linkedFromReadme.has(page)) problems.push(`README.md: does not link ${rel(page)}`);
  }
  return problems;
}

test("every docs page is linked from README.md, and every relative link and anchor resolves", () => {
  assert.ok(existsSync(path.join(ROOT, "docs")), "no docs/ directory");
  assert.deepEqual(checkLinks(ROOT), []);
});

test("the checker finds a missing file, a missing anchor and a page README does not link", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "links-"));
  try {
    mkdirSync(path.join(dir, "docs"));
    writeFileSync(
      path.join(dir, "README.md"),
      [
        "# Door",
        "[a](docs/a.md) [a's part](docs/a.md#the-part-two) [gone](docs/gone.md) [here](#door)",
        "[no such heading](docs/a.md#nowhere) `[in code](docs/code.md)` [web](https://example.com/x.md)",
        "```sh",
        "echo '[in a fence](docs/fence.md)'",
        "```",
      ].join("\n"),
    );
    writeFileSync(
      path.join(dir, "docs", "a.md"),
      "# A\n\n## The part: two\n\n## Run `make dev`\n\n[back](../README.md#door) [self](#run-make-dev) [bad](#the-part)\n",
    );
    writeFileSync(path.join(dir, "docs", "b.md"), "# B\n\n[a](a.md#a)\n");
    assert.deepEqual(checkLinks(dir), [
      "README.md:2: docs/gone.md: no such file docs/gone.md",
      "README.md:3: docs/a.md#nowhere: docs/a.md has no heading #nowhere",
      "docs/a.md:7: #the-part: docs/a.md has no heading #the-part",
      "README.md: does not link docs/b.md",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("anchors follow GitHub: punctuation dropped, spaces to dashes, repeats numbered", () => {
  const a = anchors(
    "# Token endpoint: `POST /auth/token`\n## Issue 17 — native apps and PAR\n## Scale\n## Scale\n```\n# not a heading\n```\n### [Link](x.md) text\n",
  );
  assert.deepEqual([...a], ["token-endpoint-post-authtoken", "issue-17--native-apps-and-par", "scale", "scale-1", "link-text"]);
});
