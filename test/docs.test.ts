import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { settingNames } from '../src/config.ts';

// The README is the front page; the rest of the documentation is docs/*.md, bench/README.md and bench/HISTORY.md.
const root = resolve(import.meta.dirname, '..');
const pages = ['README.md', 'bench/README.md', 'bench/HISTORY.md', ...readdirSync(join(root, 'docs')).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)];

/** Markdown without fenced code blocks and code spans, where brackets are code, not links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchorsIn(file: string): Set<string> {
  const headings = readFileSync(file, 'utf8').replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '').match(/^#{1,6} .*$/gm) ?? [];
  return new Set(headings.map((line) => anchorOf(line.replace(/^#+ /, ''))));
}

function relativeLinks(page: string): string[] {
  const links = [...prose(readFileSync(join(root, page), 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!);
  return links.filter((link) => !/^[a-z][a-z0-9+.-]*:/i.test(link));
}

describe('documentation', () => {
  it.each(pages)('%s: every relative link points to a file (and heading) that exists', (page) => {
    const broken: string[] = [];
    for (const link of relativeLinks(page)) {
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path === '' ? join(root, page) : resolve(dirname(join(root, page)), decodeURIComponent(path));
      if (!existsSync(target)) broken.push(`${link} (no ${relative(root, target)})`);
      else if (anchor !== undefined && target.endsWith('.md') && !anchorsIn(target).has(anchor)) broken.push(`${link} (no heading #${anchor})`);
    }
    expect(broken).toEqual([]);
  });

  it('docs/configuration.md lists every setting', () => {
    const configuration = readFileSync(join(root, 'docs/configuration.md'), 'utf8');
    const missing = settingNames.filter((name) => name !== 'NODE_ENV' && !configuration.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });
});
