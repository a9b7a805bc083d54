// The Prometheus text exposition format (version 0.0.4), just enough of it: parse a scrape into
// families and samples, and merge a second exposition (the Temporal SDK's) into corral's without
// two families of the same name. Used by /metrics and by the tests that read a scrape.

export interface MetricFamily {
  name: string;
  help?: string;
  type?: string;
}

export interface Sample {
  /** The sample's own name: a histogram's `_bucket`, `_sum` and `_count` are three names. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  families: Map<string, MetricFamily>;
  samples: Sample[];
}

const unescapeLabel = (value: string) =>
  value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === '\\' ? '\\' : c === '"' ? '"' : `\\${c}`));

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/** Labels of `{a="x",b="y"}` starting at `open` (the brace); returns them and the index after `}`. */
function parseLabels(line: string, open: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = open + 1;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0 || line[eq + 1] !== '"') throw new Error(`malformed labels: ${line}`);
    const name = line.slice(i, eq).trim();
    let j = eq + 2;
    let raw = '';
    while (j < line.length && line[j] !== '"') {
      if (line[j] === '\\') {
        raw += line.slice(j, j + 2);
        j += 2;
      } else {
        raw += line[j];
        j++;
      }
    }
    if (j >= line.length) throw new Error(`unterminated label value: ${line}`);
    labels[name] = unescapeLabel(raw);
    i = j + 1;
  }
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, MetricFamily>();
  const samples: Sample[] = [];
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name }));
    return f;
  };
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(line);
      if (!match) continue; // a plain comment
      const f = family(match[2]!);
      if (match[1] === 'HELP') f.help = match[3];
      else f.type = match[3];
      continue;
    }
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    let name: string;
    let labels: Record<string, string> = {};
    let rest: string;
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace);
      const parsed = parseLabels(line, brace);
      labels = parsed.labels;
      rest = line.slice(parsed.end).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    samples.push({ name, labels, value: parseValue(rest.split(/\s+/)[0]!) });
  }
  return { families, samples };
}

/** Sum of every sample called `name` whose labels include `labels` (a subset match). */
export function sampleSum(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** The family a sample name belongs to, given the families declared (`x_bucket` → `x`). */
function familyOf(sampleName: string, declared: Set<string>): string {
  if (declared.has(sampleName)) return sampleName;
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (sampleName.endsWith(suffix) && declared.has(sampleName.slice(0, -suffix.length))) {
      return sampleName.slice(0, -suffix.length);
    }
  }
  return sampleName;
}

/**
 * Appends `extra` to `base`, leaving out every family of `extra` whose name `base` already
 * declares (a scrape must not declare one name twice). Returns the merged text and the names
 * left out.
 */
export function mergeExposition(base: string, extra: string): { text: string; dropped: string[] } {
  const baseFamilies = new Set(parseExposition(base).families.keys());
  const extraDeclared = new Set(parseExposition(extra).families.keys());
  const dropped = new Set<string>();
  const kept: string[] = [];
  for (const line of extra.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    let name: string | undefined;
    const meta = /^#\s+(?:HELP|TYPE)\s+(\S+)/.exec(trimmed);
    if (meta) name = meta[1];
    else if (!trimmed.startsWith('#')) name = familyOf(trimmed.split(/[{\s]/)[0]!, extraDeclared);
    if (name !== undefined && baseFamilies.has(name)) {
      dropped.add(name);
      continue;
    }
    kept.push(line);
  }
  const head = base.endsWith('\n') || base === '' ? base : `${base}\n`;
  return { text: kept.length > 0 ? `${head}${kept.join('\n')}\n` : head, dropped: [...dropped] };
}
