// The blocklist: chat containing any listed word (case-insensitive) is refused at ingress,
// before it reaches the tick or the review webhook.
export function createBlocklist(words: readonly string[]): ((room: string, body: string) => boolean) | undefined {
  if (words.length === 0) return undefined;
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const re = new RegExp(escaped.join('|'), 'iu');
  return (_room, body) => !re.test(body);
}
