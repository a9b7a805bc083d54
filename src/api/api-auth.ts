// Bearer tokens for the corral API (decision 0012): read from a file (one token per line,
// `#` comments; a mounted Kubernetes Secret works as is), compared in constant time. Without a
// tokens file the API serves only on loopback: the embedded default, and it says so.
import crypto from 'node:crypto';
import fs from 'node:fs';

export class ApiConfigError extends Error {
  override readonly name = 'ApiConfigError';
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
  }
}

/** Shorter tokens are refused: they could be guessed. */
export const minTokenLength = 24;

export function loadApiTokens(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ApiConfigError(
      'CORRAL_API_TOKENS_FILE',
      `cannot read ${file} (${(err as { code?: string }).code ?? err})`,
    );
  }
  const tokens = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
  if (tokens.length === 0) throw new ApiConfigError('CORRAL_API_TOKENS_FILE', `${file} holds no token`);
  const short = tokens.findIndex((token) => token.length < minTokenLength);
  if (short >= 0) {
    throw new ApiConfigError(
      'CORRAL_API_TOKENS_FILE',
      `token ${short + 1} in ${file} is shorter than ${minTokenLength} characters`,
    );
  }
  return tokens;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * A matcher for `Authorization: Bearer <token>`. Every known token is compared (digests of equal
 * length, timingSafeEqual), so the time taken says nothing about which token or how much matched.
 */
export function bearerTokenMatcher(tokens: string[]): (authorization: string | undefined) => boolean {
  const digest = (value: string) => crypto.createHash('sha256').update(value).digest();
  const known = tokens.map(digest);
  return (authorization) => {
    const match = /^Bearer (\S+)$/.exec(authorization ?? '');
    const presented = digest(match?.[1] ?? '');
    let ok = false;
    for (const token of known) ok = crypto.timingSafeEqual(token, presented) || ok;
    return ok && match !== null;
  };
}
